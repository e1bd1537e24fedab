"""The model catalogue behind `emobench models`: every backbone's two pipelines, built once on
the CPU, with their parameter counts, final feature maps and weight sources."""

from __future__ import annotations

from functools import partial

from emobench.results.schema import ModelInfo


def model_catalogue(extra: tuple[str, ...] = ()) -> list[ModelInfo]:
    """Every registered backbone x pipeline, built on the meta device: no weights, no compute.

    Installed plugins (entry points) follow the registered backbones, then `extra` (e.g. a
    `module:function` given as --model).
    """
    import torch  # here, not at the top: loading and merging reports needs no torch

    from emobench.measure.flops import count_flops
    from emobench.models import BACKBONES, FAMILIES, PIPELINES, build_model, get_backbone
    from emobench.models.plugin import entry_point_backbones

    names = dict.fromkeys([*BACKBONES, *entry_point_backbones(), *extra])
    infos = []
    for backbone in names:
        spec = get_backbone(backbone)
        rule = "" if spec.is_plugin else FAMILIES[spec.family].rule
        for pipeline, size in PIPELINES.items():
            with torch.device("meta"):
                model = build_model(backbone, pipeline)
                x = torch.zeros(1, 3, size, size)
            model.eval()
            flops = count_flops(partial(model, x))  # the one forward: a count needs none
            params_total = sum(p.numel() for p in model.parameters())  # shared tensors once
            infos.append(
                ModelInfo(
                    backbone,
                    pipeline,
                    size,
                    params_total,
                    flops,
                    list(model.feature_map),
                    spec.family,
                    rule,
                )
            )
    return infos
