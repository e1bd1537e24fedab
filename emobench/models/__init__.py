"""Backbone registry and the two pipelines' model builders."""

from emobench.models.build import FAMILIES, build_model
from emobench.models.lookup import check_backbone, get_backbone
from emobench.models.net import EmotionNet, TransferReport
from emobench.models.registry import (
    ALL,
    BACKBONES,
    PIPELINES,
    BackboneSpec,
    expand_backbones,
    input_size,
)

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
