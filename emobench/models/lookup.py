"""Find a backbone by name: the registry's, or a plugin's (`module:function` or an entry point);
check a plugin's models before anything is measured."""

from __future__ import annotations

from emobench.errors import UsageError
from emobench.models.plugin import check_plugin, plugin_spec
from emobench.models.registry import BACKBONES, BackboneSpec
from emobench.names import PIPELINE_NAMES


def get_backbone(name: str) -> BackboneSpec:
    """The registered backbone, or a plugin's spec (its module imported, its function found)."""
    if name in BACKBONES:
        return BACKBONES[name]
    spec = plugin_spec(name)
    if spec is None:
        known = ", ".join(sorted(BACKBONES))
        raise UsageError(
            f"unknown backbone {name!r}; choose one of: {known}, or a plugin as module:function"
        )
    return spec


def check_backbone(
    backbone: str, pipelines: tuple[str, ...] = PIPELINE_NAMES, num_classes: int = 7
) -> BackboneSpec:
    """Fail early, before any measurement: an unknown name, or a plugin that does not import or
    whose models do not map N x 3 x S x S to (N, num_classes) (checked on the meta device)."""
    spec = get_backbone(backbone)
    if spec.is_plugin:
        for pipeline in pipelines:
            check_plugin(spec, pipeline, num_classes)
    return spec
