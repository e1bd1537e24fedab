"""Backbone registry and the two pipelines' model builders."""

from emobench.models.build import PIPELINES, build_model, input_size
from emobench.models.net import EmotionNet, TransferReport
from emobench.models.registry import BACKBONES, BackboneSpec, get_backbone

__all__ = [
    "BACKBONES",
    "PIPELINES",
    "BackboneSpec",
    "EmotionNet",
    "TransferReport",
    "build_model",
    "get_backbone",
    "input_size",
]
