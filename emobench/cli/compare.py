"""`compare` and `run`: measure both pipelines into a report (and the measuring path that
`ci` and `calibrate` share)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from emobench.cli.options import (
    THREAD_ENV_VARS,
    DeviceOpt,
    ForceOpt,
    JsonOpt,
    ModelOpt,
    OutOpt,
    RepeatOpt,
    backbone_names,
    file_label,
)
from emobench.cli.shell import (
    check_report_out,
    clean_errors,
    default_report_path,
    save_report,
)
from emobench.render.console import stderr_console, stdout_console


@clean_errors
def compare(
    backbone: Annotated[
        list[str] | None,
        typer.Option(
            help="Backbone (see `emobench models`), module:function, or all; repeat for several "
            "(default vgg16)."
        ),
    ] = None,
    model: ModelOpt = None,
    device: DeviceOpt = "auto",
    batch_size: Annotated[
        list[int] | None,
        typer.Option(
            "--batch-size", help="Throughput batch size; repeat for several (default 16)."
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(help="FER2013-style CSV (pixels column) or a folder of 48x48 images."),
    ] = None,
    pretrained: Annotated[
        bool,
        typer.Option(help="Load ImageNet weights (from the torchvision cache under TORCH_HOME)."),
    ] = False,
    warmup: Annotated[
        int | None, typer.Option(help="Untimed calls before each measurement (default 1).")
    ] = None,
    min_iters: Annotated[
        int | None, typer.Option(help="Minimum timed calls per measurement (default 3).")
    ] = None,
    min_time: Annotated[
        float | None, typer.Option(help="Minimum seconds of timed calls per measurement.")
    ] = None,
    max_time: Annotated[
        float | None,
        typer.Option(help="Cap on the seconds of one measurement's timed calls (default 2)."),
    ] = None,
    target_ci: Annotated[
        float | None,
        typer.Option(
            help="Stop a measurement once its median's 95% interval is within +-this fraction "
            "(default 0.02)."
        ),
    ] = None,
    limits_time: Annotated[
        float | None,
        typer.Option(
            "--limits-time",
            help="Seconds for the device-limit measurements (matmul rate, copy bandwidth; "
            "default 2).",
        ),
    ] = None,
    time_budget: Annotated[
        float | None,
        typer.Option(
            "--time-budget",
            help="Seconds for the whole run; the measurements left share what remains.",
        ),
    ] = None,
    quick: Annotated[
        bool,
        typer.Option(
            help="Fewer, shorter loops (min 1 sample, 0.5 s cap, +-5% target, 0.5 s of device "
            "limits): about half the default's cost."
        ),
    ] = False,
    preprocess_images: Annotated[
        int | None, typer.Option(help="Images per timed preprocessing call (default 64).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic images.")] = 0,
    mode: Annotated[
        str, typer.Option(help="infer, train (one SGD step per batch) or both.")
    ] = "infer",
    precision: Annotated[
        str, typer.Option(help="fp32, or fp16/bf16 under autocast (fp16 on CUDA only).")
    ] = "fp32",
    channels_last: Annotated[
        bool, typer.Option(help="Model and inputs in channels-last memory format.")
    ] = False,
    compile_mode: Annotated[
        str,
        typer.Option(
            "--compile",
            help="torch.compile mode: none, default, reduce-overhead or max-autotune; "
            "compile time is reported apart from steady-state timings.",
        ),
    ] = "none",
    cudnn_benchmark: Annotated[
        bool | None,
        typer.Option(
            "--cudnn-benchmark/--no-cudnn-benchmark", help="Set cudnn.benchmark (CUDA only)."
        ),
    ] = None,
    tf32: Annotated[
        bool | None, typer.Option("--tf32/--no-tf32", help="Allow TF32 matmul/conv (CUDA only).")
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(help="torch.set_num_threads (and OMP/MKL_NUM_THREADS) for CPU runs."),
    ] = None,
    allow_emulated: Annotated[
        bool,
        typer.Option(
            help="Measure a precision the device only emulates (e.g. bf16 on an AVX2-only CPU)."
        ),
    ] = False,
    out: OutOpt = None,
    json_out: JsonOpt = False,
    force: ForceOpt = False,
) -> None:
    """Measure both pipelines per backbone: preprocessing, latency, throughput, FLOPs, memory.

    \b
    Examples:
      emobench compare --backbone vgg16 --device cuda --precision bf16 --batch-size 64
      emobench compare --backbone all --model mymodels:tiny --device cpu --quick
    """
    if threads is not None and threads >= 1 and "torch" not in sys.modules:
        # before torch is imported: its OpenMP/MKL pools read these once
        for var in THREAD_ENV_VARS:
            os.environ[var] = str(threads)
    from emobench.config import QUICK, RunConfig

    preset: dict[str, Any] = dict(QUICK) if quick else {}
    given = {
        "warmup_iters": warmup,
        "min_iters": min_iters,
        "min_time_s": min_time,
        "max_time_s": max_time,
        "target_ci": target_ci,
        "preprocess_images": preprocess_images,
        "limits_time_s": limits_time,
    }
    preset |= {k: v for k, v in given.items() if v is not None}
    backbones = backbone_names(backbone, model)
    config = RunConfig(
        backbones=backbones,
        device=device,
        batch_sizes=tuple(batch_size) if batch_size else (16,),
        pretrained=pretrained,
        data=str(data) if data is not None else None,
        seed=seed,
        mode=mode,
        precision=precision,
        channels_last=channels_last,
        compile=compile_mode,
        cudnn_benchmark=cudnn_benchmark,
        tf32=tf32,
        threads=threads,
        time_budget_s=time_budget,
        quick=quick,
        allow_emulated=allow_emulated,
        **preset,
    ).validate()
    run_and_write(config, out, json_out, kind="compare", label=file_label(backbones), force=force)


@clean_errors
def run_suite(
    config_file: Annotated[Path, typer.Argument(help="Suite file, e.g. configs/ci.toml.")],
    out: OutOpt = None,
    json_out: JsonOpt = False,
    force: ForceOpt = False,
    repeat: RepeatOpt = 1,
) -> None:
    """Run a suite file (backbones x pipelines) into one report.

    \b
    Example:
      emobench run configs/ci.toml --out results/ci.json
    """
    from emobench.config import load_suite

    config = load_suite(config_file)
    run_and_write(config, out, json_out, kind="run", label=config.name, force=force, repeat=repeat)


def measure_and_save(
    config: Any, out: Path | None, kind: str, label: str, force: bool, repeat: int = 1
) -> Any:
    """Check the output path, measure `repeat` runs, write the (combined) report; return it."""
    check_report_out(out, force)
    runs, device = measure_runs(config, repeat, kind)
    from emobench.gate.calibrate import combine_runs

    result = combine_runs(runs)
    path = out or default_report_path(label, str(device))
    save_report(result, path)
    typer.echo(f"report written to {path} ({result.wall_time_s:.1f} s)", err=True)
    return result


def measure_runs(config: Any, repeat: int, kind: str = "run") -> tuple[list[Any], Any]:
    """Check the inputs' memory and --data, then the device (this is where torch is imported),
    and measure `repeat` runs with a progress display: (reports, device)."""
    from emobench.config import check_input_memory

    check_input_memory(config)  # a batch whose inputs cannot fit fails before allocating
    from emobench.data.images import input_images

    images = input_images(config.data, config.seed, config.images_needed)  # bad --data here

    from emobench.render.progress import progress_display
    from emobench.scenarios.compare import preflight, run_benchmark

    device = preflight(config)  # options this device cannot run fail here, before any model
    if device.type == "cuda":
        check_input_memory(config, device)
    runs = []
    for i in range(repeat):
        if repeat > 1:
            typer.echo(f"run {i + 1} of {repeat}", err=True)
        with progress_display(stderr_console()) as progress:
            runs.append(run_benchmark(config, progress=progress, kind=kind, images=images))
    return runs, device


def run_and_write(
    config: Any,
    out: Path | None,
    json_out: bool,
    kind: str,
    label: str,
    force: bool,
    repeat: int = 1,
) -> None:
    result = measure_and_save(config, out, kind, label, force, repeat)
    from emobench import results as report_mod
    from emobench.render.compare import render_compare

    if json_out:
        sys.stdout.write(report_mod.to_json(result))
    else:
        render_compare(result, stdout_console())
