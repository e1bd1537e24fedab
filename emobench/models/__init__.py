"""Backbone registry and the two pipelines' model builders."""

from emobench.models.build import FAMILIES, PIPELINES, build_model, check_backbone, input_size
from emobench.models.net import EmotionNet, TransferReport
from emobench.models.registry import ALL, BACKBONES, BackboneSpec, expand_backbones, get_backbone

__all__ = [
    "ALL",
    "BACKBONES",
    "FAMILIES",
    "PIPELINES",
    "BackboneSpec",
    "EmotionNet",
    "TransferReport",
    "build_model",
    "check_backbone",
    "expand_backbones",
    "get_backbone",
    "input_size",
]
