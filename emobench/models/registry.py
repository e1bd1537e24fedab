"""Registry of supported backbones: one entry per torchvision model, no if-chains elsewhere.

A name that is not registered here may still be a plugin backbone: `module:function` or the name
of an `emobench.backbones` entry point (plugin.py; lookup.py finds either). This module is the
wing's leaf: it imports nothing else of emobench.models.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn
from torchvision import models as tvm
from torchvision.models import WeightsEnum

from emobench.errors import UsageError
from emobench.names import INPUT_SIZES


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    family: str  # selects the direct48 adaptation rule (build._FAMILIES); "plugin" for plugins
    builder: Callable[..., nn.Module]
    weights: WeightsEnum | None  # None: a plugin, which brings its own weights
    plugin_path: str | None = None  # sys.path entry a child process needs to import a plugin

    def torchvision_model(self, weights: WeightsEnum | None) -> nn.Module:
        # progress=False: no download bar in the middle of a benchmark's progress display
        kwargs: dict[str, Any] = {"weights": weights, "progress": False}
        return self.builder(**kwargs)

    @property
    def is_plugin(self) -> bool:
        return self.weights is None


BACKBONES: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in (
        BackboneSpec("vgg11", "vgg", tvm.vgg11, tvm.VGG11_Weights.IMAGENET1K_V1),
        BackboneSpec("vgg13", "vgg", tvm.vgg13, tvm.VGG13_Weights.IMAGENET1K_V1),
        BackboneSpec("vgg16", "vgg", tvm.vgg16, tvm.VGG16_Weights.IMAGENET1K_V1),
        BackboneSpec("vgg19", "vgg", tvm.vgg19, tvm.VGG19_Weights.IMAGENET1K_V1),
        BackboneSpec("resnet18", "resnet", tvm.resnet18, tvm.ResNet18_Weights.IMAGENET1K_V1),
        BackboneSpec("resnet34", "resnet", tvm.resnet34, tvm.ResNet34_Weights.IMAGENET1K_V1),
        BackboneSpec("resnet50", "resnet", tvm.resnet50, tvm.ResNet50_Weights.IMAGENET1K_V1),
        BackboneSpec(
            "mobilenet_v3_small",
            "mobilenet_v3",
            tvm.mobilenet_v3_small,
            tvm.MobileNet_V3_Small_Weights.IMAGENET1K_V1,
        ),
        BackboneSpec(
            "mobilenet_v3_large",
            "mobilenet_v3",
            tvm.mobilenet_v3_large,
            tvm.MobileNet_V3_Large_Weights.IMAGENET1K_V1,
        ),
        BackboneSpec(
            "efficientnet_b0",
            "efficientnet",
            tvm.efficientnet_b0,
            tvm.EfficientNet_B0_Weights.IMAGENET1K_V1,
        ),
        BackboneSpec(
            "convnext_tiny", "convnext", tvm.convnext_tiny, tvm.ConvNeXt_Tiny_Weights.IMAGENET1K_V1
        ),
    )
}
ALL = "all"  # on the command line: every registered backbone
PIPELINES: dict[str, int] = dict(INPUT_SIZES)  # pipeline -> the side of its square input


def expand_backbones(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """`all` -> every registered backbone; duplicates dropped, order kept."""
    out: list[str] = []
    for name in names:
        out += list(BACKBONES) if name == ALL else [name]
    return tuple(dict.fromkeys(out))


def input_size(pipeline: str) -> int:
    try:
        return PIPELINES[pipeline]
    except KeyError:
        known = ", ".join(PIPELINES)
        raise UsageError(f"unknown pipeline {pipeline!r}; choose one of: {known}") from None
