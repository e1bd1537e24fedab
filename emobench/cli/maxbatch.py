"""`maxbatch`: the largest batch each pipeline really fits."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from emobench.cli.compare import plugins_named
from emobench.cli.options import (
    BudgetOpt,
    DeviceOpt,
    ForceOpt,
    JsonOpt,
    MarginOpt,
    MaxBatchOpt,
    OneBackboneOpt,
    OneModelOpt,
    OutOpt,
    PipelineOrBothOpt,
    RuntimeOpt,
    StepModeOpt,
    check_model_refs,
    file_label,
)
from emobench.cli.shell import (
    check_report_out,
    clean_errors,
    default_report_path,
    save_report,
)
from emobench.config import DEFAULT_BACKBONE
from emobench.errors import UsageError
from emobench.names import MODES, ORT_RUNTIME, PIPELINE_NAMES, TORCH_RUNTIME
from emobench.render.console import stderr_console, stdout_console


@clean_errors
def maxbatch(
    backbone: OneBackboneOpt = DEFAULT_BACKBONE,
    model: OneModelOpt = None,
    device: DeviceOpt = "auto",
    mode: StepModeOpt = "infer",
    pipeline: PipelineOrBothOpt = "both",
    budget: BudgetOpt = None,
    max_batch: MaxBatchOpt = 65536,
    margin: MarginOpt = 0.05,
    runtime: RuntimeOpt = None,
    out: OutOpt = None,
    json_out: JsonOpt = False,
    force: ForceOpt = False,
) -> None:
    """Find the largest batch each pipeline really fits, for inference or training.

    \b
    Example:
      emobench maxbatch --backbone vgg16 --device cuda --mode train --budget 8GiB
      emobench maxbatch --backbone resnet18 --device cpu --runtime torch --runtime onnxruntime
    """
    if model is not None:
        backbone = check_model_refs([model])[0]
    pipelines = PIPELINE_NAMES if pipeline == "both" else (pipeline,)
    with plugins_named({backbone: "--model" if model is not None else "--backbone"}):
        runtimes = tuple(runtime) if runtime else (TORCH_RUNTIME,)
        _check_maxbatch_options(backbone, device, mode, pipelines, budget, max_batch, margin)
        _check_runtimes(runtimes, mode, device)
        check_report_out(out, force)

        from emobench.scenarios.maxbatch import MaxBatchConfig

        config = MaxBatchConfig(
            backbone=backbone,
            pipelines=pipelines,
            mode=mode,
            device=device,
            budget=budget,
            max_batch=max_batch,
            margin=margin,
            runtimes=runtimes,
        ).validate()
        result, path = _search(config, out)
    _show(result, path, json_out)


def _search(config: Any, out: Path | None) -> tuple[Any, Path]:
    """Resolve the device and budget (a bad budget fails before any model is built), run the
    search with a progress display, write the report: (report, path)."""
    from emobench.device import resolve_device
    from emobench.render.progress import progress_display
    from emobench.scenarios.maxbatch import resolve_budget, run_maxbatch

    resolved = resolve_device(config.device)
    resolve_budget(config, resolved)
    label = file_label((config.backbone,))
    path = out or default_report_path(label, str(resolved), kind=f"maxbatch-{config.mode}")
    with progress_display(stderr_console()) as progress:
        result = run_maxbatch(config, progress=progress)
    save_report(result, path)
    return result, path


def _show(result: Any, path: Path, json_out: bool) -> None:
    """The table (or JSON), where the report went, and exit 1 when a search stopped early."""
    from emobench import results as report_mod
    from emobench.render.compare import render_maxbatch

    if json_out:
        sys.stdout.write(report_mod.to_json(result))
    else:
        render_maxbatch(result, stdout_console())
    typer.echo(f"report written to {path}", err=True)
    failed = [r for r in result.maxbatch if r.error]
    if failed:
        for r in failed:
            typer.echo(f"error: {r.pipeline}: search stopped: {r.error}", err=True)
        raise typer.Exit(1)


def _check_maxbatch_options(
    backbone: str,
    device: str,
    mode: str,
    pipelines: tuple[str, ...],
    budget: str | None,
    max_batch: int,
    margin: float,
) -> None:
    """The maxbatch options that can be checked without torch (MaxBatchConfig.validate and
    resolve_budget check them again, with the device known)."""
    from emobench.config import check_backbone, check_pipeline, is_plugin
    from emobench.device import parse_device_spec
    from emobench.measure import search as mb

    check_backbone(backbone)
    if is_plugin(backbone):
        from emobench.models import check_backbone as check_plugin

        check_plugin(backbone)  # its module and models, before any output path is looked at
    for p in pipelines:
        check_pipeline(p)
    if mode not in MODES:
        raise UsageError(f"unknown mode {mode!r}; choose infer or train")
    if max_batch < 1:
        raise UsageError(f"--max-batch must be >= 1, got {max_batch}")
    mb.apply_margin(1, margin)  # [0, 1): nan and inf fail too
    parse_device_spec(device)
    if budget is not None:
        mb.parse_budget(budget, 2**62, "any memory")  # its form only; its size needs the device


def _check_runtimes(runtimes: tuple[str, ...], mode: str, device: str) -> None:
    """--runtime without torch: known names, once each; onnxruntime infers, on the CPU."""
    from emobench.config import check_runtime_names

    check_runtime_names(runtimes, mode)
    if ORT_RUNTIME in runtimes and device.startswith("cuda"):
        raise UsageError(
            f"maxbatch --runtime {ORT_RUNTIME} measures the CPU (peak RSS of a fresh process); "
            "on a GPU, ONNX Runtime's own memory arena is not the allocator the search caps: "
            f"use --device cpu, or --runtime {TORCH_RUNTIME} on the GPU"
        )
