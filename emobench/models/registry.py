"""Registry of supported backbones: one entry per torchvision model, no if-chains elsewhere."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn
from torchvision import models as tvm
from torchvision.models import WeightsEnum

from emobench.errors import UsageError


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    family: str  # "vgg" or "resnet": selects the direct48 adaptation
    builder: Callable[..., nn.Module]
    weights: WeightsEnum

    def torchvision_model(self, weights: WeightsEnum | None) -> nn.Module:
        # progress=False: no download bar in the middle of a benchmark's progress display
        kwargs: dict[str, Any] = {"weights": weights, "progress": False}
        return self.builder(**kwargs)


BACKBONES: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in (
        BackboneSpec("vgg16", "vgg", tvm.vgg16, tvm.VGG16_Weights.IMAGENET1K_V1),
        BackboneSpec("vgg19", "vgg", tvm.vgg19, tvm.VGG19_Weights.IMAGENET1K_V1),
        BackboneSpec("resnet18", "resnet", tvm.resnet18, tvm.ResNet18_Weights.IMAGENET1K_V1),
    )
}


def get_backbone(name: str) -> BackboneSpec:
    try:
        return BACKBONES[name]
    except KeyError:
        known = ", ".join(sorted(BACKBONES))
        raise UsageError(f"unknown backbone {name!r}; choose one of: {known}") from None
