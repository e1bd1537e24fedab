"""The emobench command line: parse options, call one core function, render the result."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from emobench.errors import EmobenchError, UsageError

app = typer.Typer(
    help="Benchmark 48x48 emotion-recognition CNNs: upscale-to-224 vs direct 48x48.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)

RESULTS_DIR = Path("results")


@app.callback()
def _root() -> None:
    """Benchmark 48x48 emotion-recognition CNNs: upscale-to-224 vs direct 48x48."""


F = TypeVar("F", bound=Callable[..., Any])


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def clean_errors(fn: F) -> F:
    """Turn EmobenchError into one line on stderr and its exit code; Ctrl-C into exit 130."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except EmobenchError as exc:
            raise _fail(str(exc), exc.exit_code) from None
        except KeyboardInterrupt:
            raise _fail("interrupted; no report was written", 130) from None

    return wrapper  # type: ignore[return-value]


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def _stdout_console() -> Any:
    from rich.console import Console

    # Wide enough for the tables when piped to a file or a CI log.
    return Console() if sys.stdout.isatty() else Console(width=120)


def default_report_path(backbone: str, device: str, kind: str = "") -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    safe_device = device.replace(":", "")
    parts = [stamp, kind, backbone, safe_device] if kind else [stamp, backbone, safe_device]
    return RESULTS_DIR / ("-".join(parts) + ".json")


def check_writable(path: Path) -> None:
    """Fail before any work when the report could not be written there."""
    import tempfile

    if path.is_dir():
        raise UsageError(f"--out {path}: is a folder, expected a file path")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        raise UsageError(f"--out {path}: cannot write in {parent} ({exc.strerror})") from None


DeviceOpt = Annotated[
    str, typer.Option("--device", help="auto, cpu, cuda or cuda:N (auto = cuda:0 when present).")
]
OutOpt = Annotated[
    Path | None,
    typer.Option(
        "--out", help="Report path (default: results/<UTC time>-<backbone>-<device>.json)."
    ),
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print the JSON report to stdout instead of the table.")
]


@app.command()
@clean_errors
def compare(
    backbone: Annotated[str, typer.Option(help="Backbone: vgg16, vgg19 or resnet18.")] = "vgg16",
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
    warmup: Annotated[int, typer.Option(help="Untimed calls before each measurement.")] = 2,
    min_iters: Annotated[int, typer.Option(help="Minimum timed calls per measurement.")] = 5,
    min_time: Annotated[
        float, typer.Option(help="Minimum seconds of timed calls per measurement.")
    ] = 1.0,
    preprocess_images: Annotated[
        int, typer.Option(help="Images per timed preprocessing call.")
    ] = 64,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic images.")] = 0,
    out: OutOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Measure both pipelines for one backbone: preprocessing, latency, throughput, FLOPs, memory.

    Example: emobench compare --backbone vgg16 --device cuda --batch-size 16 --batch-size 64
    """
    from emobench.config import RunConfig

    config = RunConfig(
        backbones=(backbone,),
        device=device,
        batch_sizes=tuple(batch_size) if batch_size else (16,),
        warmup_iters=warmup,
        min_iters=min_iters,
        min_time_s=min_time,
        preprocess_images=preprocess_images,
        pretrained=pretrained,
        data=str(data) if data is not None else None,
        seed=seed,
    ).validate()
    _run_and_write(config, out, json_out, kind="compare", label=backbone)


@app.command()
@clean_errors
def maxbatch(
    backbone: Annotated[str, typer.Option(help="Backbone: vgg16, vgg19 or resnet18.")] = "vgg16",
    device: DeviceOpt = "auto",
    mode: Annotated[
        str, typer.Option(help="infer (forward) or train (forward, backward, SGD step).")
    ] = "infer",
    pipeline: Annotated[str, typer.Option(help="upscale224, direct48 or both.")] = "both",
    budget: Annotated[
        str | None,
        typer.Option(
            help="Memory budget: 8GiB, 512MiB, or a fraction like 0.5 "
            "(default: the whole GPU; on CPU half the available RAM)."
        ),
    ] = None,
    max_batch: Annotated[int, typer.Option(help="Largest batch to try.")] = 65536,
    margin: Annotated[
        float, typer.Option(help="Safety margin: safe batch = max batch x (1 - margin).")
    ] = 0.05,
    out: OutOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Find the largest batch each pipeline really fits, for inference or training.

    Example: emobench maxbatch --backbone vgg16 --device cuda --mode train --budget 8GiB
    """
    from emobench import report as report_mod
    from emobench.config import resolve_device
    from emobench.maxbatch import MaxBatchConfig, resolve_budget, run_maxbatch
    from emobench.render import progress_display, render_maxbatch

    pipelines = ("upscale224", "direct48") if pipeline == "both" else (pipeline,)
    config = MaxBatchConfig(
        backbone=backbone,
        pipelines=pipelines,
        mode=mode,
        device=device,
        budget=budget,
        max_batch=max_batch,
        margin=margin,
    ).validate()
    resolved = resolve_device(device)
    resolve_budget(config, resolved)  # a bad budget fails before any model is built
    path = out or default_report_path(backbone, str(resolved), kind=f"maxbatch-{mode}")
    check_writable(path)
    with progress_display(_stderr_console()) as progress:
        result = run_maxbatch(config, progress=progress)
    report_mod.save(result, path)
    if json_out:
        sys.stdout.write(report_mod.to_json(result))
    else:
        render_maxbatch(result, _stdout_console())
    typer.echo(f"report written to {path}", err=True)
    failed = [r for r in result.maxbatch if r.error]
    if failed:
        for r in failed:
            typer.echo(f"error: {r.pipeline}: search stopped: {r.error}", err=True)
        raise typer.Exit(1)


def _run_and_write(config: Any, out: Path | None, json_out: bool, kind: str, label: str) -> None:
    from emobench import report as report_mod
    from emobench.config import resolve_device
    from emobench.render import progress_display, render_compare
    from emobench.runner import load_input_images, run_benchmark

    device = resolve_device(config.device)
    if config.data is not None:
        load_input_images(config)  # a bad --data file fails here, before any model is built
    path = out or default_report_path(label, str(device))
    check_writable(path)
    with progress_display(_stderr_console()) as progress:
        result = run_benchmark(config, progress=progress, kind=kind)
    report_mod.save(result, path)
    if json_out:
        sys.stdout.write(report_mod.to_json(result))
    else:
        render_compare(result, _stdout_console())
    typer.echo(f"report written to {path}", err=True)


if __name__ == "__main__":  # pragma: no cover
    app()
