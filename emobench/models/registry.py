"""Registry of supported backbones: one entry per torchvision model, no if-chains elsewhere.

A name that is not registered here may still be a plugin backbone: `module:function` or the name
of an `emobench.backbones` entry point (see emobench/models/plugin.py).
"""

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


def get_backbone(name: str) -> BackboneSpec:
    """The registered backbone, or a plugin's spec (its module imported, its function found)."""
    if name in BACKBONES:
        return BACKBONES[name]
    from emobench.models.plugin import plugin_spec

    spec = plugin_spec(name)
    if spec is None:
        known = ", ".join(sorted(BACKBONES))
        raise UsageError(
            f"unknown backbone {name!r}; choose one of: {known}, or a plugin as module:function"
        )
    return spec


def expand_backbones(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """`all` -> every registered backbone; duplicates dropped, order kept."""
    out: list[str] = []
    for name in names:
        out += list(BACKBONES) if name == ALL else [name]
    return tuple(dict.fromkeys(out))
