"""`compare` and `run`: measure both pipelines into a report (and the measuring path that
`ci` and `calibrate` share)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from emobench.cli.options import (
    AllowEmulatedOpt,
    BackbonesOpt,
    BatchSizesOpt,
    ChannelsLastOpt,
    CompileOpt,
    CudnnBenchmarkOpt,
    DeviceOpt,
    ForceOpt,
    ImageSeedOpt,
    ImagesOpt,
    JsonOpt,
    LimitsTimeOpt,
    MaxTimeOpt,
    MinItersOpt,
    MinTimeOpt,
    ModelOpt,
    OutOpt,
    PrecisionOpt,
    PreprocessImagesOpt,
    PretrainedOpt,
    QuantizeOpt,
    QuickOpt,
    RepeatOpt,
    RunModeOpt,
    RuntimeOpt,
    SuiteFileArg,
    TargetCiOpt,
    Tf32Opt,
    ThreadsSweepOpt,
    TimeBudgetOpt,
    WarmupOpt,
    backbone_names,
    checked_plugins,
    file_label,
    set_thread_env,
    thread_options,
)
from emobench.cli.shell import (
    check_report_out,
    clean_errors,
    default_report_path,
    save_report,
)
from emobench.errors import PluginError
from emobench.render.console import stderr_console, stdout_console


@contextmanager
def plugins_named(by_option: dict[str, str], default: str | None = None) -> Iterator[None]:
    """A PluginError names its plugin the way the user gave it: `by_option` maps a name to the
    option (or suite entry) it came from; `default` is for the others (else `plugin NAME`)."""
    try:
        yield
    except PluginError as exc:
        option = by_option.get(exc.name, default)
        if option is not None:
            exc.named_by(option)
        raise


def option_of_each(backbone: list[str] | None, model: list[str] | None) -> dict[str, str]:
    """Which option each backbone name came from: --model, else --backbone."""
    return {name: "--backbone" for name in backbone or []} | {ref: "--model" for ref in model or []}


@clean_errors
def compare(
    backbone: BackbonesOpt = None,
    model: ModelOpt = None,
    device: DeviceOpt = "auto",
    batch_size: BatchSizesOpt = None,
    data: ImagesOpt = None,
    pretrained: PretrainedOpt = False,
    warmup: WarmupOpt = None,
    min_iters: MinItersOpt = None,
    min_time: MinTimeOpt = None,
    max_time: MaxTimeOpt = None,
    target_ci: TargetCiOpt = None,
    limits_time: LimitsTimeOpt = None,
    time_budget: TimeBudgetOpt = None,
    quick: QuickOpt = False,
    preprocess_images: PreprocessImagesOpt = None,
    seed: ImageSeedOpt = 0,
    mode: RunModeOpt = "infer",
    precision: PrecisionOpt = "fp32",
    channels_last: ChannelsLastOpt = False,
    compile_mode: CompileOpt = "none",
    cudnn_benchmark: CudnnBenchmarkOpt = None,
    tf32: Tf32Opt = None,
    threads: ThreadsSweepOpt = None,
    runtime: RuntimeOpt = None,
    quantize: QuantizeOpt = None,
    allow_emulated: AllowEmulatedOpt = False,
    out: OutOpt = None,
    json_out: JsonOpt = False,
    force: ForceOpt = False,
) -> None:
    """Measure both pipelines per backbone: preprocessing, latency, throughput, FLOPs, memory.

    \b
    Examples:
      emobench compare --backbone vgg16 --device cuda --precision bf16 --batch-size 64
      emobench compare --backbone all --model mymodels:tiny --device cpu --quick
      emobench compare --backbone resnet18 --runtime torch --runtime onnxruntime \\
          --quantize int8 --threads 1 --threads 2
    """
    thread_settings = thread_options(threads)
    set_thread_env(thread_settings["threads"])
    with plugins_named(option_of_each(backbone, model)):
        from emobench.config import RunConfig

        backbones = backbone_names(backbone, model)
        config = RunConfig.from_options(
            quick,
            warmup_iters=warmup,
            min_iters=min_iters,
            min_time_s=min_time,
            max_time_s=max_time,
            target_ci=target_ci,
            preprocess_images=preprocess_images,
            limits_time_s=limits_time,
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
            **thread_settings,
            runtimes=tuple(runtime) if runtime else None,
            quantize=quantize,
            time_budget_s=time_budget,
            allow_emulated=allow_emulated,
        ).validate()
        checked_plugins(config)
        run_and_write(
            config, out, json_out, kind="compare", label=file_label(backbones), force=force
        )


@clean_errors
def run_suite(
    config_file: SuiteFileArg,
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

    with plugins_named({}, default=f"{config_file}: backbone"):
        suite = load_suite(config_file)
        set_thread_env(suite.threads)  # before torch: its pools read OMP/MKL_NUM_THREADS once
        config = checked_plugins(suite)
        run_and_write(
            config, out, json_out, kind="run", label=config.name, force=force, repeat=repeat
        )


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
