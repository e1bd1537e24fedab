"""The emobench command line: parse options, call one core function, render the result.

Nothing heavy is imported at module level, and each command checks its options, paths and
input files before it imports torch (about 4 s and 800 MB): a usage error is answered in a
fraction of a second. Errors are one `error:` line on stderr and an exit code (2 for bad
input, 1 for a failed run, 130 for Ctrl-C, 143 for SIGTERM), click's own usage errors included.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from types import FrameType
from typing import Annotated, Any, TypeVar

import typer
from typer.core import TyperGroup

from emobench import files as fileio
from emobench.errors import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    EXIT_USAGE,
    EmobenchError,
    Terminated,
    UsageError,
)
from emobench.names import BASELINE_DIR, FINETUNE_DIR, MODES, PIPELINE_NAMES, RESULTS_DIR

try:  # typer vendors click from 0.20 on
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - older typer with click installed
    from click import exceptions as click_exceptions  # type: ignore[no-redef]

ROOT_HELP = """Benchmark 48x48 emotion-recognition CNNs: upscale-to-224 vs direct 48x48.

\b
Examples:
  emobench compare --backbone vgg16 --device cpu --quick
  emobench compare --backbone resnet18 --device cuda --batch-size 16 --batch-size 64
  emobench maxbatch --backbone vgg16 --device cuda --mode train --budget 8GiB
  emobench run configs/ci.toml --out results/ci.json
  emobench check results/ci.json --baseline ci --rule portable:30%
  emobench report results/*.json --csv all.csv --plot curves.png
  emobench <command> --help   (every option of one command)
"""


def _one_line(message: str) -> str:
    """Error text on one line, however many lines the underlying message had."""
    return "; ".join(part.strip() for part in message.splitlines() if part.strip())


def _usage_message(exc: Any) -> str:
    message = exc.format_message()
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        message += f" (see '{ctx.command_path} --help')"
    return _one_line(message)


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """While inside, SIGTERM raises Terminated in the main thread, so it unwinds like Ctrl-C:
    `finally` blocks remove temporary files and subprocess.run kills a running child."""

    def handler(_signum: int, _frame: FrameType | None) -> None:
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals to whoever owns it
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class HouseGroup(TyperGroup):
    """Typer's group in the house style: click's own usage errors (`--batch-size abc`, an
    unknown option) are one `error:` line and exit 2, not a boxed panel; SIGTERM unwinds like
    Ctrl-C and exits 143."""

    def main(  # type: ignore[override]
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        with sigterm_raises():
            try:
                code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            except click_exceptions.NoArgsIsHelpError as exc:
                exc.show()
                sys.exit(exc.exit_code)
            except click_exceptions.ClickException as exc:
                typer.echo(f"error: {_usage_message(exc)}", err=True)
                usage = isinstance(exc, click_exceptions.UsageError)
                sys.exit(EXIT_USAGE if usage else exc.exit_code)
            except typer.Abort:
                typer.echo("error: aborted", err=True)
                sys.exit(EXIT_FAILURE)
            except Terminated:
                typer.echo("error: terminated (SIGTERM)", err=True)
                sys.exit(EXIT_TERMINATED)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=HouseGroup,
    help=ROOT_HELP,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    # click's plain help: it wraps long lines instead of cutting option names at 80 columns
    rich_markup_mode=None,
    context_settings={"max_content_width": 100},
)

THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


@app.callback()
def _root() -> None:
    """Benchmark 48x48 emotion-recognition CNNs: upscale-to-224 vs direct 48x48."""


F = TypeVar("F", bound=Callable[..., Any])
_written: list[Path] = []  # files this command has written, for the interruption message


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {_one_line(message)}", err=True)
    return typer.Exit(code)


def _written_note() -> str:
    if not _written:
        return "no report was written"
    return "written before that: " + ", ".join(str(p) for p in _written)


def clean_errors(fn: F) -> F:
    """Turn EmobenchError into one line on stderr and its exit code; Ctrl-C into exit 130,
    SIGTERM into 143, running out of memory into exit 1: one line each, no traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _written.clear()
        try:
            return fn(*args, **kwargs)
        except EmobenchError as exc:
            raise _fail(str(exc), exc.exit_code) from None
        except Terminated:
            raise _fail(f"terminated (SIGTERM); {_written_note()}", EXIT_TERMINATED) from None
        except KeyboardInterrupt:
            raise _fail(f"interrupted; {_written_note()}", EXIT_INTERRUPTED) from None
        except MemoryError:
            raise _fail("out of memory; use a smaller batch", EXIT_FAILURE) from None

    return wrapper  # type: ignore[return-value]


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def _stdout_console() -> Any:
    from rich.console import Console

    # Wide enough for the tables when piped to a file or a CI log.
    return Console() if sys.stdout.isatty() else Console(width=160)


def default_report_path(backbone: str, device: str, kind: str = "") -> Path:
    """results/<UTC time>-[kind-]<backbone>-<device>-<6 hex>.json: the random suffix keeps two
    runs started in the same second from writing the same file."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    safe_device = device.replace(":", "")
    parts = [stamp, kind, backbone, safe_device] if kind else [stamp, backbone, safe_device]
    return RESULTS_DIR / ("-".join([*parts, fileio.unique_suffix()]) + ".json")


def check_report_out(out: Path | None, force: bool) -> None:
    """--out (or the results/ folder when it is not given) before any work."""
    if out is not None:
        fileio.check_output(out, "--out", report=True, force=force)
    else:
        fileio.check_folder(RESULTS_DIR, "--out (default results/)")


def _save_report(report: Any, path: Path) -> None:
    from emobench import results as report_mod

    report_mod.save(report, path)
    _written.append(path)


def _write_text(path: Path, text: str) -> None:
    from emobench.errors import ReportError

    try:
        fileio.write_atomic(path, text)
    except OSError as exc:
        raise ReportError(f"{path}: cannot write ({exc.strerror or exc})") from None
    _written.append(path)


DeviceOpt = Annotated[
    str, typer.Option("--device", help="auto, cpu, cuda or cuda:N (auto = cuda:0 when present).")
]
OutOpt = Annotated[
    Path | None,
    typer.Option(
        "--out",
        help="Report path (default: results/<UTC time>-<backbone>-<device>-<6 hex>.json). "
        "An existing file is replaced only when it is an emobench report (or with --force).",
    ),
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print the JSON report to stdout instead of the table.")
]
ForceOpt = Annotated[
    bool,
    typer.Option("--force", help="Overwrite an existing --out file that is not a report."),
]


DEFAULT_BACKBONE = "vgg16"
ModelOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--model",
        help="Your own backbone as module:function (imported from the current folder or "
        "PYTHONPATH); function(pipeline, num_classes=7) returns the nn.Module. Repeatable.",
    ),
]


def check_model_refs(refs: list[str] | None) -> list[str]:
    """--model values: module:function syntax and a findable module, without importing torch."""
    import importlib.util
    import re

    out = []
    for ref in refs or []:
        module, sep, function = ref.partition(":")
        if (
            not sep
            or not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", module)
            or not (function.isidentifier())
        ):
            raise UsageError(f"--model {ref!r}: expected module:function, e.g. mymodels:build")
        if str(Path.cwd()) not in sys.path and "" not in sys.path:
            sys.path.append(str(Path.cwd()))
        try:
            found = importlib.util.find_spec(module)
        except ImportError as exc:
            raise UsageError(f"--model {ref}: {exc}") from None
        if found is None:
            raise UsageError(
                f"--model {ref}: no module named {module!r} in the current folder ({Path.cwd()}) "
                "or on PYTHONPATH"
            )
        out.append(ref)
    return out


def backbone_names(backbones: list[str] | None, models: list[str] | None) -> tuple[str, ...]:
    """--backbone (repeatable, `all` = every registered one) then --model; vgg16 if neither."""
    refs = check_model_refs(models)
    names = list(backbones or ([] if refs else [DEFAULT_BACKBONE]))
    if "all" in names:
        from emobench.models import expand_backbones

        return expand_backbones([*names, *refs])
    return tuple(dict.fromkeys([*names, *refs]))


def file_label(names: tuple[str, ...]) -> str:
    """A report file name's backbone part: one name, or how many; no ':' from a plugin."""
    label = names[0] if len(names) == 1 else f"{len(names)}backbones"
    return label.replace(":", "-").replace(".", "-")


@app.command()
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
    _run_and_write(config, out, json_out, kind="compare", label=file_label(backbones), force=force)


@app.command()
@clean_errors
def maxbatch(
    backbone: Annotated[
        str, typer.Option(help="Backbone (see `emobench models`) or module:function.")
    ] = DEFAULT_BACKBONE,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="Your own backbone as module:function (replaces --backbone); "
            "function(pipeline, num_classes=7) returns the nn.Module.",
        ),
    ] = None,
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
    force: ForceOpt = False,
) -> None:
    """Find the largest batch each pipeline really fits, for inference or training.

    \b
    Example:
      emobench maxbatch --backbone vgg16 --device cuda --mode train --budget 8GiB
    """
    if model is not None:
        backbone = check_model_refs([model])[0]
    pipelines = PIPELINE_NAMES if pipeline == "both" else (pipeline,)
    _check_maxbatch_options(backbone, device, mode, pipelines, budget, max_batch, margin)
    check_report_out(out, force)

    from emobench.device import resolve_device
    from emobench.render.compare import render_maxbatch
    from emobench.render.progress import progress_display
    from emobench.scenarios.maxbatch import MaxBatchConfig, resolve_budget, run_maxbatch

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
    path = out or default_report_path(
        file_label((backbone,)), str(resolved), kind=f"maxbatch-{mode}"
    )
    with progress_display(_stderr_console()) as progress:
        result = run_maxbatch(config, progress=progress)
    _save_report(result, path)
    from emobench import results as report_mod

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
    from emobench.config import check_backbone, check_pipeline
    from emobench.device import parse_device_spec
    from emobench.measure import search as mb

    check_backbone(backbone)
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


def _positive_repeat(value: int) -> int:
    if value < 1:
        raise typer.BadParameter(f"must be >= 1, got {value}")
    return value


RepeatOpt = Annotated[
    int,
    typer.Option(
        "--repeat",
        help="Run the suite N times: the report keeps every run's ratios and the check compares "
        "their geometric mean with the baseline runs' (the run, not the sample, is the unit of "
        "noise; the N runs share the machine's state, so they damp one disturbed run but do not "
        "tighten the threshold).",
        callback=_positive_repeat,
    ),
]


@app.command("run")
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
    _run_and_write(config, out, json_out, kind="run", label=config.name, force=force, repeat=repeat)


baseline_app = typer.Typer()
app.add_typer(baseline_app, name="baseline")


@baseline_app.callback()
def _baseline_root() -> None:
    """Manage stored baselines: results/baselines/NAME/<machine class>.json.

    \b
    Example:
      emobench baseline save results/ci.json --name ci
    """


BaselineDirOpt = Annotated[
    Path,
    typer.Option("--dir", help="Folder that holds the baselines, one subfolder per name."),
]


@baseline_app.command("save")
@clean_errors
def baseline_save(
    report_files: Annotated[
        list[Path],
        typer.Argument(help="A compare or run report, or several runs of one suite and class."),
    ],
    name: Annotated[
        str, typer.Option(help="Baseline name: stored as results/baselines/NAME/<class>.json.")
    ],
    force: Annotated[bool, typer.Option(help="Overwrite an existing baseline.")] = False,
    directory: BaselineDirOpt = BASELINE_DIR,
) -> None:
    """Store a report as the baseline of its machine class (refuses to overwrite without --force).

    \b
    Several reports (runs of one suite on one machine) make one baseline that keeps every
    run's ratios; the check compares with their median.

    \b
    Example:
      emobench baseline save results/ci.json --name ci
    """
    from emobench import results as report_mod
    from emobench.gate.store import machine_class, save_baseline
    from emobench.machine import describe

    target = save_baseline(list(report_files), name, force=force, directory=directory)
    stored = report_mod.load(target)
    typer.echo(
        f"baseline written to {target} "
        f"(machine class {machine_class(stored)}: {describe(stored.environment)})"
    )


@baseline_app.command("list")
@clean_errors
def baseline_list(directory: BaselineDirOpt = BASELINE_DIR) -> None:
    """List stored baselines: name, machine class, creation date and backbones.

    \b
    Example:
      emobench baseline list
    """
    from emobench.gate.store import list_baselines
    from emobench.render.gate import baselines_table

    stored = list_baselines(directory)
    if not stored:
        typer.echo(f"no baselines in {directory}; store one with `emobench baseline save`")
        return
    _stdout_console().print(baselines_table(stored, directory))


RuleOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--rule",
        help="METRIC:THRESHOLD, e.g. latency_b1_median_ms:15% or portable:30%. Repeatable.",
    ),
]
MarkdownOpt = Annotated[
    Path | None, typer.Option("--markdown", help="Also write the verdict table as Markdown.")
]
FailOnOpt = Annotated[
    str,
    typer.Option(
        "--fail-on",
        help="Comma-separated kinds whose failures set exit 1: exact, portable, machine, "
        "invariant.",
    ),
]
BaselineOpt = Annotated[
    str,
    typer.Option(
        "--baseline",
        help="A baseline name (ci), a folder of per-class baselines (results/baselines/ci), "
        "or one baseline file. A name or folder gives the file of the report's machine class.",
    ),
]
CandidateOpt = Annotated[
    Path | None,
    typer.Option(
        "--candidate-out",
        help="Where to write the report as its class's candidate baseline when no baseline of "
        "that class exists (default: results/baseline-candidate-<class>.json).",
    ),
]
DEFAULT_FAIL_ON = "exact,portable,machine,invariant"


@app.command("check")
@clean_errors
def check_cmd(
    report_file: Annotated[Path, typer.Argument(help="The fresh report.")],
    baseline: BaselineOpt,
    rule: RuleOpt = None,
    markdown: MarkdownOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the verdicts as JSON.")] = False,
    fail_on: FailOnOpt = DEFAULT_FAIL_ON,
    candidate_out: CandidateOpt = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite a --candidate-out file that is not a report.")
    ] = False,
) -> None:
    """Compare a report with a baseline: exit 0 if all pass, 1 on a regression, 2 on bad input.

    \b
    Example:
      emobench check results/ci.json --baseline ci --rule portable:30%
    """
    from emobench import results as report_mod

    gating = _check_gate_options(rule or [], fail_on, markdown, candidate_out, force)
    kind, _data = report_mod.load_header(report_file)
    if kind not in TIMING_KINDS:
        raise UsageError(
            f"{report_file}: a {kind} report; check compares a compare or run report with a "
            "baseline"
        )
    prepared = _prepare_check(baseline, rule or [], gating, markdown, candidate_out)
    _check_and_exit(report_mod.load(report_file), prepared, json_out)


@app.command("ci")
@clean_errors
def ci_cmd(
    config_file: Annotated[Path, typer.Argument(help="Suite file, e.g. configs/ci.toml.")],
    baseline: BaselineOpt,
    rule: RuleOpt = None,
    markdown: MarkdownOpt = None,
    out: OutOpt = None,
    fail_on: FailOnOpt = DEFAULT_FAIL_ON,
    candidate_out: CandidateOpt = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Overwrite an --out or --candidate-out file that is not a report."
        ),
    ] = False,
    repeat: RepeatOpt = 1,
) -> None:
    """Run a suite and check it against a baseline in one step, for CI jobs.

    With no baseline of this machine's class it gates on exact metrics and invariants and,
    when those pass, writes the report as the class's candidate baseline.

    \b
    Example:
      emobench ci configs/ci.toml --baseline ci --markdown summary.md
    """
    from emobench.config import load_suite

    config = load_suite(config_file)
    # bad options, output paths, a missing baseline or one of another suite fail here, before
    # the suite runs and before anything is written
    gating = _check_gate_options(rule or [], fail_on, markdown, candidate_out, force)
    check_report_out(out, force)
    prepared = _prepare_check(baseline, rule or [], gating, markdown, candidate_out)
    _check_same_suite(prepared.source, config, config_file)
    current = _measure_and_save(
        config, out, kind="run", label=f"ci-{config.name}", force=force, repeat=repeat
    )
    _check_and_exit(current, prepared, False)


TIMING_KINDS = ("compare", "run")


def _parse_fail_on(text: str, kinds: tuple[str, ...]) -> set[str]:
    chosen = {k.strip() for k in text.split(",") if k.strip()}
    if not chosen:
        raise UsageError(
            f"--fail-on {text!r} names no kind, which would disable the gate; name at least one "
            f"of: {', '.join(kinds)}"
        )
    unknown = chosen - set(kinds)
    if unknown:
        raise UsageError(f"--fail-on: unknown kind {sorted(unknown)[0]!r}; use {', '.join(kinds)}")
    return chosen


def _check_gate_options(
    rules: list[str],
    fail_on: str,
    markdown: Path | None,
    candidate_out: Path | None,
    force: bool,
) -> set[str]:
    """What check and ci can check before loading anything: --fail-on, the form of each --rule
    (their metric names need the baseline) and the output paths. Returns the gating kinds."""
    from emobench.gate.verdicts import KINDS, parse_rules

    gating = _parse_fail_on(fail_on, KINDS)
    parse_rules(rules, None)
    if markdown is not None:
        fileio.check_output(markdown, "--markdown")
    if candidate_out is not None:
        fileio.check_output(candidate_out, "--candidate-out", report=True, force=force)
    else:
        fileio.check_folder(RESULTS_DIR, "--candidate-out (default results/)")
    return gating


@dataclass(frozen=True)
class _PreparedCheck:
    source: Any  # baseline.BaselineSource
    rules: dict[str, float]
    gating: set[str]
    markdown: Path | None
    candidate_out: Path | None


def _prepare_check(
    baseline: str,
    rules: list[str],
    gating: set[str],
    markdown: Path | None,
    candidate_out: Path | None,
) -> _PreparedCheck:
    """Find and load the baseline(s) and check the --rule metric names against them, once."""
    from emobench.gate.store import resolve_baseline
    from emobench.gate.verdicts import parse_rules

    source = resolve_baseline(baseline)
    parsed = parse_rules(rules, source.metric_keys)
    return _PreparedCheck(source, parsed, gating, markdown, candidate_out)


def _check_same_suite(source: Any, config: Any, config_file: Path) -> None:
    """UsageError before the run when no stored baseline covers this suite's backbones x
    pipelines (the check after the run would refuse it anyway)."""
    suite = {(b, p) for b in config.backbones for p in config.pipelines}
    covered = [{(r.backbone, r.pipeline) for r in b.report.results} for b in source.stored]
    if suite not in covered:
        first = source.stored[0]
        raise UsageError(
            f"--baseline {source.name}: {first.path} covers {_suite_text(covered[0])}, but "
            f"{config_file} runs {_suite_text(suite)}; give a baseline of this suite"
        )


def _suite_text(suite: set[tuple[str, str]]) -> str:
    return ", ".join(f"{b}/{p}" for b, p in sorted(suite)) or "nothing"


def _check_and_exit(current: Any, prepared: _PreparedCheck, json_out: bool) -> None:
    """Check against the baseline of the report's class (else any, plus the invariants);
    without one of its class, a report that passes becomes that class's candidate baseline."""
    import dataclasses
    import json

    from emobench.gate.store import candidate_path
    from emobench.gate.verdicts import check
    from emobench.render.gate import check_summary, render_verdicts, verdicts_markdown

    selection = prepared.source.select(current)
    verdicts = check(current, selection.baseline.report, prepared.rules)
    failed = any(v.failed and v.kind in prepared.gating for v in verdicts)
    if not selection.same_class and failed:
        selection = dataclasses.replace(selection, candidate_withheld=True)
    elif not selection.same_class:
        candidate = prepared.candidate_out or candidate_path(current)
        _save_report(current, candidate)
        selection = dataclasses.replace(selection, candidate=candidate)
    if prepared.markdown is not None:
        _write_text(prepared.markdown, verdicts_markdown(verdicts, selection))
    if json_out:
        sys.stdout.write(json.dumps([dataclasses.asdict(v) for v in verdicts], indent=2) + "\n")
        for line in check_summary(verdicts, selection):
            typer.echo(line, err=True)
    else:
        render_verdicts(verdicts, _stdout_console(), selection)
    if failed:
        raise typer.Exit(1)


@app.command("report")
@clean_errors
def report_cmd(
    files: Annotated[
        list[Path], typer.Argument(help="compare, run, maxbatch or finetune report files.")
    ],
    markdown: Annotated[Path | None, typer.Option(help="Write the table as Markdown.")] = None,
    csv_out: Annotated[
        Path | None,
        typer.Option("--csv", help="Write one row per measurement, environment as columns."),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(help="Draw latency/throughput curves and ratio bars to a PNG (matplotlib)."),
    ] = None,
) -> None:
    """Merge reports from several runs and machines into one side-by-side table.

    Reports of two or more machine classes also get their upscale224/direct48 ratios side by
    side, one column per class.

    With a finetune report among them, prints the speed/accuracy trade-off table instead
    (accuracy from the fine-tune; latency, throughput, memory, max batch from the others) and
    --plot draws accuracy against latency and time per epoch with the Pareto front.

    \b
    Example:
      emobench report results/*.json --csv all.csv --plot curves.png
    """
    from emobench.readout import merge as readout

    for target, option in ((markdown, "--markdown"), (csv_out, "--csv"), (plot, "--plot")):
        if target is not None:
            fileio.check_output(target, option)
    if plot is not None:
        from emobench.render.plot import require_matplotlib

        require_matplotlib()
    if readout.has_finetune(files):  # the speed/accuracy trade-off table
        _tradeoff_report(files, markdown, csv_out, plot)
        return
    family = readout.check_reports(files)  # every header, before anything is written
    if plot is not None and family == "maxbatch":
        raise UsageError("--plot draws compare/run reports; maxbatch reports have no curves")
    loaded = readout.load_reports(files)
    from emobench.render.readout import (
        class_ratio_markdown,
        class_ratio_table,
        merged_markdown,
        merged_table,
    )

    rows = readout.merged_rows(loaded)
    columns = readout.MAXBATCH_COLUMNS if family == "maxbatch" else readout.TIMING_COLUMNS
    ratios = readout.class_ratios(loaded)  # None unless two or more machine classes
    _stdout_console().print(merged_table(rows, columns))
    if ratios is not None:
        _stdout_console().print(class_ratio_table(ratios))
    if markdown is not None:
        text = merged_markdown(rows, columns)
        if ratios is not None:
            text += "\n" + class_ratio_markdown(ratios)
        _write_text(markdown, text)
        typer.echo(f"markdown written to {markdown}", err=True)
    if csv_out is not None:
        _write_text(csv_out, readout.to_csv(readout.flat_rows(loaded)))
        typer.echo(f"csv written to {csv_out}", err=True)
    if plot is not None:
        from emobench.render.plot import plot_reports

        plot_reports(loaded, plot)
        _written.append(plot)
        typer.echo(f"plot written to {plot}", err=True)


def _tradeoff_report(
    files: list[Path], markdown: Path | None, csv_out: Path | None, plot: Path | None
) -> None:
    """`emobench report` with a finetune report: the trade-off table, Markdown, CSV, plot."""
    from emobench.readout import merge as readout
    from emobench.readout.tradeoff import build_tradeoff
    from emobench.render.readout import tradeoff_lines, tradeoff_markdown, tradeoff_table
    from emobench.results import write_atomic

    loaded = readout.load_any_reports(files)
    tradeoff = build_tradeoff(loaded)
    console = _stdout_console()
    console.print(tradeoff_table(tradeoff))
    for line in tradeoff_lines(tradeoff):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    if markdown is not None:
        write_atomic(markdown, tradeoff_markdown(tradeoff))
        typer.echo(f"markdown written to {markdown}", err=True)
    if csv_out is not None:
        write_atomic(csv_out, readout.to_csv(readout.tradeoff_csv_rows(tradeoff)))
        typer.echo(f"csv written to {csv_out}", err=True)
    if plot is not None:
        from emobench.render.plot import plot_tradeoff

        plot_tradeoff(tradeoff, plot)
        typer.echo(f"plot written to {plot}", err=True)


@app.command("claims")
@clean_errors
def claims_cmd(
    report_file: Annotated[Path, typer.Argument(help="A compare, run or finetune report.")],
    maxbatch_reports: Annotated[
        list[Path] | None,
        typer.Option("--maxbatch", help="maxbatch report(s) for the batch-size claim."),
    ] = None,
    markdown: Annotated[Path | None, typer.Option(help="Write the table as Markdown.")] = None,
) -> None:
    """Check the original write-up's claims (22x memory, 8.6x, 29x, 16x, 22x) against a report.

    \b
    Example:
      emobench claims results/vgg16-cpu.json --maxbatch results/maxbatch-infer.json
    """
    from emobench import results as report_mod

    if markdown is not None:
        fileio.check_output(markdown, "--markdown")
    kind, _data = report_mod.load_header(report_file)
    if kind not in (*TIMING_KINDS, "finetune"):
        raise UsageError(
            f"{report_file}: a {kind} report; claims need a compare or run report "
            "(or a finetune report for the training claim)"
        )
    for path in maxbatch_reports or []:
        other, _data = report_mod.load_header(path)
        if other != "maxbatch":
            raise UsageError(f"{path}: --maxbatch needs a maxbatch report, got {other}")
    from emobench.readout.claims import evaluate
    from emobench.render.readout import claims_markdown, claims_table

    timing = report_mod.load(report_file)
    extra = [report_mod.load(path) for path in maxbatch_reports or []]
    if timing.kind == "finetune":  # the training-speed claim
        from emobench.readout.claims import evaluate_training

        verdicts = evaluate_training(timing)
    else:
        verdicts = evaluate(timing, extra)
    _stdout_console().print(claims_table(verdicts))
    if markdown is not None:
        _write_text(markdown, claims_markdown(verdicts))


@app.command("finetune")
@clean_errors
def finetune_cmd(
    data: Annotated[
        Path,
        typer.Option(
            help="FER2013 CSV (emotion, pixels, optional Usage) or a folder with one sub-folder "
            "per class (optionally under train/, val/, test/)."
        ),
    ],
    backbone: Annotated[str, typer.Option(help="Backbone: vgg16, vgg19 or resnet18.")] = "vgg16",
    device: DeviceOpt = "auto",
    pipeline: Annotated[
        list[str] | None,
        typer.Option(help="upscale224 or direct48; repeat for both (default: both)."),
    ] = None,
    epochs: Annotated[int, typer.Option(help="Training epochs per pipeline.")] = 10,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Training batch size.")] = 64,
    optimizer: Annotated[str, typer.Option(help="sgd (momentum 0.9) or adamw.")] = "sgd",
    lr: Annotated[
        float | None, typer.Option(help="Peak learning rate (default sgd 0.01, adamw 0.001).")
    ] = None,
    weight_decay: Annotated[
        float | None, typer.Option(help="Weight decay (default sgd 5e-4, adamw 0.05).")
    ] = None,
    schedule: Annotated[
        str, typer.Option(help="cosine (to 0 over the epochs) or step (/10 every third).")
    ] = "cosine",
    label_smoothing: Annotated[
        float, typer.Option(help="Cross-entropy label smoothing, 0 to <1.")
    ] = 0.0,
    pretrained: Annotated[
        bool,
        typer.Option(
            help="ImageNet weights from the torchvision cache; --no-pretrained: random init."
        ),
    ] = True,
    freeze_backbone: Annotated[
        bool, typer.Option(help="Linear probing: train only the head.")
    ] = False,
    precision: Annotated[str, typer.Option(help="fp32, fp16 or bf16 (autocast).")] = "fp32",
    channels_last: Annotated[
        bool, typer.Option(help="Run the model in channels-last memory format.")
    ] = False,
    compile_mode: Annotated[
        str,
        typer.Option(
            "--compile", help="torch.compile mode: none, default, reduce-overhead, max-autotune."
        ),
    ] = "none",
    workers: Annotated[int, typer.Option(help="DataLoader worker processes.")] = 2,
    seed: Annotated[int, typer.Option(help="First seed (weights, order, augmentation).")] = 0,
    seeds: Annotated[
        int, typer.Option(help="Repeat the whole fine-tune with this many seeds.")
    ] = 1,
    target_acc: Annotated[
        float | None,
        typer.Option(help="Report the training time until validation accuracy reaches this."),
    ] = None,
    val_fraction: Annotated[
        float, typer.Option(help="Validation share when the data has no given splits.")
    ] = 0.1,
    test_fraction: Annotated[
        float, typer.Option(help="Test share when the data has no given splits.")
    ] = 0.1,
    checkpoint_dir: Annotated[
        Path | None,
        typer.Option(help="Where best/last checkpoints go (default results/finetune/<run>)."),
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue an interrupted run from its checkpoints.")
    ] = False,
    out: OutOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Fine-tune upscale224 and direct48 with one recipe; score both on the same test images.

    Example: emobench finetune --backbone vgg16 --data fer2013.csv --device cuda --epochs 10
    """
    import torch

    from emobench import results as report_mod
    from emobench.data.labeled import load_labeled
    from emobench.device import compile_unavailable, resolve_device
    from emobench.models import get_backbone
    from emobench.render.compare import render_finetune
    from emobench.render.progress import finetune_progress
    from emobench.scenarios.finetune import FinetuneConfig, run_finetune

    get_backbone(backbone)  # an unknown backbone fails here
    folder = checkpoint_dir or FINETUNE_DIR / f"{backbone}-{data.stem}"
    config = FinetuneConfig(
        backbone=backbone,
        data=str(data),
        device=device,
        pipelines=tuple(pipeline or PIPELINE_NAMES),
        epochs=epochs,
        batch_size=batch_size,
        optimizer=optimizer,
        lr=lr,
        weight_decay=weight_decay,
        schedule=schedule,
        label_smoothing=label_smoothing,
        pretrained=pretrained,
        freeze_backbone=freeze_backbone,
        precision=precision,
        channels_last=channels_last,
        compile=compile_mode,
        workers=workers,
        seed=seed,
        seeds=seeds,
        target_acc=target_acc,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        checkpoint_dir=str(folder),
        resume=resume,
    )
    resolved = resolve_device(device)
    if compile_mode != "none" and (why := compile_unavailable(resolved)):
        raise UsageError(f"--compile {compile_mode}: {why}")
    path = out or default_report_path(backbone, str(resolved), "finetune")
    fileio.check_output(path, "--out", report=True, force=False)
    labeled = load_labeled(data, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if cores and torch.get_num_threads() > cores:
        torch.set_num_threads(cores)
    try:
        with finetune_progress(_stderr_console()) as progress:
            result = run_finetune(config, labeled, resolved, progress=progress)
    except KeyboardInterrupt:
        raise _fail(
            f"interrupted; checkpoints are in {folder}: rerun with --resume to continue", 130
        ) from None
    _save_report(result, path)
    typer.echo(f"report written to {path} ({result.wall_time_s:.1f} s)", err=True)
    if json_out:
        sys.stdout.write(report_mod.to_json(result))
    else:
        render_finetune(result, _stdout_console())


@app.command("models")
@clean_errors
def models_cmd(
    model: ModelOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """List every backbone (registered, installed plugins, --model): parameters, FLOPs per image
    and final feature map of both pipelines, built on the meta device.

    \b
    Example:
      emobench models --json
    """
    import dataclasses
    import json

    from emobench.render.readout import models_table
    from emobench.scenarios.catalogue import model_catalogue

    infos = model_catalogue(tuple(check_model_refs(model)))
    if json_out:
        sys.stdout.write(json.dumps([dataclasses.asdict(i) for i in infos], indent=2) + "\n")
    else:
        _stdout_console().print(models_table(infos))


@app.command("calibrate")
@clean_errors
def calibrate_cmd(
    config_file: Annotated[
        Path | None, typer.Argument(help="Suite file, e.g. configs/ci.toml (or --from).")
    ] = None,
    runs: Annotated[
        int, typer.Option(help="Back-to-back runs of the unchanged tree (at least 3).")
    ] = 5,
    from_reports: Annotated[
        list[Path] | None,
        typer.Option(
            "--from",
            help="Calibrate on runs already made (reports of one suite and machine class, "
            "e.g. earlier CI runs or a baseline; a --repeat report gives each of its runs) "
            "instead of running the suite; repeat for several.",
        ),
    ] = None,
    alpha: Annotated[
        float,
        typer.Option(
            help="False-alarm rate of the whole gate (split over the ratios, Bonferroni)."
        ),
    ] = 0.05,
    save_baseline: Annotated[
        str | None,
        typer.Option(
            "--save-baseline",
            help="Store the runs as baseline NAME carrying these thresholds, so `check` and "
            "`ci` need no --rule lines.",
        ),
    ] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing baseline.")] = False,
    directory: BaselineDirOpt = BASELINE_DIR,
    out: Annotated[
        Path | None, typer.Option("--out", help="Also write the calibration table as JSON.")
    ] = None,
) -> None:
    """A/A calibration: run a suite N times unchanged; per ratio, the run-to-run spread and
    the smallest regression the gate can detect at the false-alarm rate.

    \b
    Example:
      emobench calibrate configs/ci.toml --runs 20 --save-baseline ci --force
      emobench calibrate --from results/ci-run.json --from old.json --save-baseline ci --force
    """
    import math

    if (config_file is None) == (not from_reports):
        raise UsageError("give a suite file to run, or --from report files, not both")
    if runs < 3:
        raise UsageError(f"--runs must be >= 3 to estimate a spread, got {runs}")
    if not (math.isfinite(alpha) and 0 < alpha < 1):
        raise UsageError(f"--alpha must be a probability in (0, 1), got {alpha}")
    if out is not None:
        check_report_out(out, True)
    if save_baseline is not None:
        from emobench.gate.store import check_baseline_name

        check_baseline_name(save_baseline)
    if from_reports:
        from emobench.gate.store import load_runs

        reports = load_runs(from_reports)
    else:
        from emobench.config import load_suite

        assert config_file is not None
        reports, _device = _measure_runs(load_suite(config_file), runs)
    from emobench.gate.calibrate import calibrated_baseline
    from emobench.render.gate import calibration_table

    base, calibrations = calibrated_baseline(reports, alpha)
    _stdout_console().print(calibration_table(calibrations, alpha))
    busy = sum(bool(r.contention and r.contention.busy) for r in reports)
    if busy:
        typer.echo(f"warning: {busy} of {len(reports)} reports shared a busy machine", err=True)
    if out is not None:
        import dataclasses
        import json

        _write_text(out, json.dumps([dataclasses.asdict(c) for c in calibrations], indent=2))
    if save_baseline is not None:
        import tempfile

        from emobench import results as report_mod
        from emobench.gate.store import save_baseline as store

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "calibrated.json"
            report_mod.save(base, path)
            target = store(path, save_baseline, force=force, directory=directory)
        typer.echo(f"baseline written to {target} with calibrated thresholds")


@app.command("env")
@clean_errors
def env_cmd(
    device: DeviceOpt = "auto",
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for bug reports.")] = False,
) -> None:
    """Print the environment fingerprint that reports record (torch, CUDA, GPU, CPU, threads).

    \b
    Example:
      emobench env --device cuda --json
    """
    import json

    from emobench.device import parse_device_spec, resolve_device

    parse_device_spec(device)  # a misspelt device fails before torch is imported
    from emobench.measure.env import fingerprint
    from emobench.render.readout import env_class_line, env_table

    env = fingerprint(resolve_device(device))
    if json_out:
        sys.stdout.write(json.dumps(env, indent=2) + "\n")
    else:
        console = _stdout_console()
        console.print(env_table(env))
        console.print(env_class_line(env), markup=False, highlight=False, soft_wrap=True)


def _measure_and_save(
    config: Any, out: Path | None, kind: str, label: str, force: bool, repeat: int = 1
) -> Any:
    """Check the output path, measure `repeat` runs, write the (combined) report; return it."""
    check_report_out(out, force)
    runs, device = _measure_runs(config, repeat, kind)
    from emobench.gate.calibrate import combine_runs

    result = combine_runs(runs)
    path = out or default_report_path(label, str(device))
    _save_report(result, path)
    typer.echo(f"report written to {path} ({result.wall_time_s:.1f} s)", err=True)
    return result


def _measure_runs(config: Any, repeat: int, kind: str = "run") -> tuple[list[Any], Any]:
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
        with progress_display(_stderr_console()) as progress:
            runs.append(run_benchmark(config, progress=progress, kind=kind, images=images))
    return runs, device


def _run_and_write(
    config: Any,
    out: Path | None,
    json_out: bool,
    kind: str,
    label: str,
    force: bool,
    repeat: int = 1,
) -> None:
    result = _measure_and_save(config, out, kind, label, force, repeat)
    from emobench import results as report_mod
    from emobench.render.compare import render_compare

    if json_out:
        sys.stdout.write(report_mod.to_json(result))
    else:
        render_compare(result, _stdout_console())


if __name__ == "__main__":  # pragma: no cover
    app()
