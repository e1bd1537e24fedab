"""`stream`: both pipelines driven by MLPerf LoadGen as a deployment sees them (camera streams
at a frame rate, a deadline per frame, the most streams served), with LoadGen's own logs kept
next to the report."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from emobench import files as fileio
from emobench.cli.compare import plugins_named
from emobench.cli.options import (
    DeviceOpt,
    ForceOpt,
    ImageSeedOpt,
    ImagesOpt,
    JsonOpt,
    OneBackboneOpt,
    OutOpt,
    file_label,
    set_thread_env,
)
from emobench.cli.shell import (
    check_report_out,
    clean_errors,
    default_report_path,
    save_report,
)
from emobench.config import DEFAULT_BACKBONE
from emobench.errors import ReportError, UsageError
from emobench.names import TORCH_RUNTIME
from emobench.render.console import stderr_console, stdout_console
from emobench.scenarios.stream.settings import (
    DEFAULT_BATCH_WINDOW_MS,
    DEFAULT_FPS,
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_STREAMS,
    DEFAULT_PROBE_S,
    DEFAULT_TIME_BUDGET_S,
    MLPERF_MIN_DURATION_S,
    StreamConfig,
    check_loadgen,
)

LOG_SUFFIX = ".loadgen"  # LoadGen's logs: <report stem>.loadgen/ beside the JSON report
LOG_MARKER = (
    ".emobench-loadgen"  # the file that says emobench made a log folder (and may replace it)
)
DEFAULT_SCENARIOS = ("server",)

# `stream`'s own options (no other command shares them)
StreamRuntimeOpt = Annotated[
    str,
    typer.Option(
        "--runtime",
        help="torch (default) or onnxruntime: what runs the model behind LoadGen's system "
        "under test.",
    ),
]
ScenarioOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--scenario",
        help="LoadGen scenario: single-stream (one frame at a time, p90), multi-stream "
        "(--faces-per-frame samples per query, p99), server (Poisson arrivals at streams x fps, "
        "p99 within the deadline; the most streams is searched) or offline (throughput); "
        "repeat for several (default server).",
    ),
]
FpsOpt = Annotated[
    float,
    typer.Option(
        "--fps",
        help="Frames per second of one camera stream; the deadline is one frame (1000/fps ms) "
        "unless --deadline-ms.",
    ),
]
DeadlineOpt = Annotated[
    float | None,
    typer.Option(
        "--deadline-ms",
        help="Latency each frame must meet at the scenario's percentile (default: one frame, "
        "1000/fps).",
    ),
]
FacesOpt = Annotated[
    int,
    typer.Option(
        "--faces-per-frame",
        help="Faces (48x48 crops) per frame: multi-stream's samples per query; server: the "
        "images each frame brings.",
    ),
]
StreamMaxBatchOpt = Annotated[
    int,
    typer.Option(
        "--max-batch",
        help="Dynamic batching in the server's system under test: a batch is cut when it "
        "holds this many images (whole frames, at least one) ...",
    ),
]
BatchWindowOpt = Annotated[
    float,
    typer.Option(
        "--batch-window-ms",
        help="... or when its first frame has waited this long (shorter than the deadline).",
    ),
]
StreamBudgetOpt = Annotated[
    float,
    typer.Option(
        "--time-budget",
        help="Seconds for the whole command, the server's max-streams search included; the "
        f"search stops at what it has found when it runs out (--mlperf: >= "
        f"{MLPERF_MIN_DURATION_S:g}).",
    ),
]
ProbeOpt = Annotated[
    float,
    typer.Option(
        "--probe-s",
        help="Seconds one LoadGen run lasts at least without --mlperf (bounded probes, not "
        "MLPerf-compliant).",
    ),
]
MaxStreamsOpt = Annotated[
    int, typer.Option("--max-streams", help="The server search's ceiling, in streams.")
]
MlperfOpt = Annotated[
    bool,
    typer.Option(
        "--mlperf/--no-mlperf",
        help=f"Apply the MLPerf inference rules' minimums ({MLPERF_MIN_DURATION_S:g} s per run, "
        "the query counts for the percentile at 99% confidence, early stopping): only then "
        "does the report call itself MLPerf-style.",
    ),
]
StreamThreadsOpt = Annotated[
    int | None,
    typer.Option(
        "--threads",
        help="torch.set_num_threads (and OMP/MKL_NUM_THREADS) for CPU runs, and ONNX Runtime's "
        "intra-op threads.",
    ),
]


@clean_errors
def stream(
    backbone: OneBackboneOpt = DEFAULT_BACKBONE,
    device: DeviceOpt = "auto",
    runtime: StreamRuntimeOpt = TORCH_RUNTIME,
    scenario: ScenarioOpt = None,
    fps: FpsOpt = DEFAULT_FPS,
    deadline_ms: DeadlineOpt = None,
    faces_per_frame: FacesOpt = 1,
    max_batch: StreamMaxBatchOpt = DEFAULT_MAX_BATCH,
    batch_window_ms: BatchWindowOpt = DEFAULT_BATCH_WINDOW_MS,
    time_budget: StreamBudgetOpt = DEFAULT_TIME_BUDGET_S,
    probe_s: ProbeOpt = DEFAULT_PROBE_S,
    max_streams: MaxStreamsOpt = DEFAULT_MAX_STREAMS,
    mlperf: MlperfOpt = False,
    data: ImagesOpt = None,
    seed: ImageSeedOpt = 0,
    threads: StreamThreadsOpt = None,
    out: OutOpt = None,
    json_out: JsonOpt = False,
    force: ForceOpt = False,
) -> None:
    """Drive both pipelines with MLPerf LoadGen as camera streams: tail latency against the
    frame deadline, and the most streams one device serves.

    Server: Poisson arrivals at streams x fps frames per second, dynamic batching in the system
    under test; the most streams whose run is VALID with p99 within the deadline is searched,
    and its ratio direct48 / upscale224 is the headline. Without --mlperf each LoadGen run is a
    bounded probe of --probe-s seconds (not MLPerf-compliant; the report says so). LoadGen's
    own logs are kept beside the report, in <report name>.loadgen/.

    \b
    Examples:
      emobench stream --backbone resnet18 --device cpu
      emobench stream --backbone resnet18 --device cpu --scenario server --scenario single-stream
      emobench stream --backbone vgg16 --device cuda --fps 30 --faces-per-frame 4 \\
          --scenario multi-stream --mlperf --time-budget 7200
    """
    config = StreamConfig(
        backbone=backbone,
        device=device,
        runtime=runtime,
        scenarios=tuple(scenario) if scenario else DEFAULT_SCENARIOS,
        fps=fps,
        deadline_ms=deadline_ms,
        faces_per_frame=faces_per_frame,
        max_batch=max_batch,
        batch_window_ms=batch_window_ms,
        time_budget_s=time_budget,
        probe_s=probe_s,
        max_streams=max_streams,
        mlperf=mlperf,
        data=str(data) if data is not None else None,
        seed=seed,
        threads=threads,
    )
    with plugins_named({backbone: "--backbone"}):
        config.validate()
        from emobench.device import parse_device_spec

        parse_device_spec(device)  # a misspelt device fails before torch is imported
        check_loadgen()
        _check_plugin(backbone)
        check_report_out(out, force)
        if out is not None:
            _check_not_input(out, data)
            check_log_root(log_root_of(out))
        report, path = _run(config, out)
    _show(report, path, json_out)


def _check_plugin(backbone: str) -> None:
    """A plugin backbone imports and maps its input to logits (this imports torch: a registered
    backbone needs nothing here)."""
    from emobench.config import is_plugin

    if is_plugin(backbone):
        from emobench.models import check_backbone

        check_backbone(backbone)


def _check_not_input(out: Path, data: Path | None) -> None:
    if data is not None and fileio.same_file(out, data):
        raise UsageError(f"--out {out}: is this command's --data; write somewhere else")


def log_root_of(report: Path) -> Path:
    """Where LoadGen's logs of the report at `report` go: `<stem>.loadgen/` beside it."""
    return report.with_name(report.stem + LOG_SUFFIX)


def check_log_root(folder: Path) -> None:
    """The log folder may be missing, empty, or one emobench made for an earlier report (it is
    replaced with the report); anything else is refused before any work."""
    try:
        st = folder.lstat()
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as exc:
        raise UsageError(f"{folder}: cannot check ({exc.strerror or exc})") from None
    import stat

    label = f"LoadGen's logs go to {folder} (beside --out)"
    if not stat.S_ISDIR(st.st_mode):
        raise UsageError(f"{label}: it exists and is not a folder; choose another --out")
    try:
        held = [p.name for p in folder.iterdir()]
    except OSError as exc:
        raise UsageError(f"{label}: cannot read it ({exc.strerror or exc})") from None
    if held and LOG_MARKER not in held:
        raise UsageError(
            f"{label}: it holds files emobench did not write; choose another --out or empty it"
        )


def _swap_in(folder: Path) -> Path | None:
    """A fresh log folder with emobench's marker; an earlier report's logs there are moved
    aside (returned), to be removed once the new report is written or put back if it is not."""
    old = None
    created = False
    try:
        if folder.is_dir():
            old = folder.with_name(f"{folder.name}.old-{fileio.unique_suffix()}")
            folder.rename(old)
        folder.mkdir(parents=True)
        created = True
        (folder / LOG_MARKER).write_text(
            "MLPerf LoadGen's logs of an `emobench stream` report; replaced with that report\n"
        )
    except OSError as exc:
        if created:
            shutil.rmtree(folder, ignore_errors=True)
        if old is not None:
            old.rename(folder)
        raise ReportError(f"{folder}: cannot hold LoadGen's logs ({exc.strerror or exc})") from None
    return old


def _run(config: StreamConfig, out: Path | None) -> tuple[Any, Path]:
    """Resolve the device (torch is imported here), run LoadGen with a progress display, write
    the report: (report, path). An interrupted or failed run leaves neither a report nor logs
    (an earlier report's logs at that path are put back)."""
    set_thread_env(config.threads)
    from emobench.device import resolve_device
    from emobench.render.progress import progress_display
    from emobench.scenarios.stream.run import run_stream

    resolved = resolve_device(config.device)
    path = out or default_report_path(file_label((config.backbone,)), str(resolved), kind="stream")
    logs = log_root_of(path)
    check_log_root(logs)
    old = _swap_in(logs)
    try:
        with progress_display(stderr_console()) as progress:
            report = run_stream(config, progress=progress, log_root=logs)
        save_report(report, path)
    except BaseException:
        shutil.rmtree(logs, ignore_errors=True)
        if old is not None:
            old.rename(logs)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return report, path


def _show(report: Any, path: Path, json_out: bool) -> None:
    """The tables (or JSON), where the report and logs went; exit 1 when a pipeline failed."""
    from emobench import results as report_mod
    from emobench.render.stream import render_stream

    if json_out:
        sys.stdout.write(report_mod.to_json(report))
    else:
        render_stream(report, stdout_console())
    typer.echo(
        f"report written to {path} ({report.wall_time_s:.1f} s); LoadGen's logs in "
        f"{log_root_of(path)}",
        err=True,
    )
    failed = [r for r in report.stream.results if r.error] if report.stream else []
    if failed:
        for r in failed:
            typer.echo(f"error: {r.backbone} {r.pipeline} {r.scenario}: {r.error}", err=True)
        raise typer.Exit(1)
