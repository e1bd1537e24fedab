"""The emobench command line: parse options, call one core function, render the result."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
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
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
BASELINE_DIR = RESULTS_DIR / "baselines"  # baseline.BASELINE_DIR, without importing torch here


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
    return Console() if sys.stdout.isatty() else Console(width=160)


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
) -> None:
    """Measure both pipelines for one backbone: preprocessing, latency, throughput, FLOPs, memory.

    Example: emobench compare --backbone vgg16 --device cuda --precision bf16 --batch-size 64
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
    config = RunConfig(
        backbones=(backbone,),
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


@app.command("run")
@clean_errors
def run_suite(
    config_file: Annotated[Path, typer.Argument(help="Suite file, e.g. configs/ci.toml.")],
    out: OutOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Run a suite file (backbones x pipelines) into one report.

    Example: emobench run configs/ci.toml --out results/ci.json
    """
    from emobench.config import load_suite

    config = load_suite(config_file)
    _run_and_write(config, out, json_out, kind="run", label=config.name)


baseline_app = typer.Typer()
app.add_typer(baseline_app, name="baseline")


@baseline_app.callback()
def _baseline_root() -> None:
    """Manage stored baselines: results/baselines/NAME/<machine class>.json.

    Example: emobench baseline save results/ci.json --name ci
    """


BaselineDirOpt = Annotated[
    Path,
    typer.Option("--dir", help="Folder that holds the baselines, one subfolder per name."),
]


@baseline_app.command("save")
@clean_errors
def baseline_save(
    report_file: Annotated[Path, typer.Argument(help="A compare, run or finetune report.")],
    name: Annotated[
        str, typer.Option(help="Baseline name: stored as results/baselines/NAME/<class>.json.")
    ],
    force: Annotated[bool, typer.Option(help="Overwrite an existing baseline.")] = False,
    directory: BaselineDirOpt = BASELINE_DIR,
) -> None:
    """Store a report as the baseline of its machine class (refuses to overwrite without --force).

    Example: emobench baseline save results/ci.json --name ci
    """
    from emobench import report as report_mod
    from emobench.baseline import machine_class, save_baseline
    from emobench.machine import describe

    target = save_baseline(report_file, name, force=force, directory=directory)
    stored = report_mod.load(target)
    typer.echo(
        f"baseline written to {target} "
        f"(machine class {machine_class(stored)}: {describe(stored.environment)})"
    )


@baseline_app.command("list")
@clean_errors
def baseline_list(directory: BaselineDirOpt = BASELINE_DIR) -> None:
    """List stored baselines: name, machine class, creation date and backbones.

    Example: emobench baseline list
    """
    from emobench.baseline import list_baselines
    from emobench.render import baselines_table

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
) -> None:
    """Compare a report with a baseline: exit 0 if all pass, 1 on a regression, 2 on bad input.

    Example: emobench check results/ci.json --baseline ci --rule portable:30%
    """
    from emobench import report as report_mod

    current = report_mod.load(report_file)
    prepared = _prepare_check(baseline, rule or [], fail_on, markdown, candidate_out)
    _check_and_exit(current, prepared, json_out)


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
) -> None:
    """Run a suite and check it against a baseline in one step, for CI jobs.

    With no baseline of this machine's class it gates on exact metrics and invariants and,
    when those pass, writes the report as the class's candidate baseline.

    Example: emobench ci configs/ci.toml --baseline ci --markdown summary.md
    """
    from emobench.config import load_suite

    config = load_suite(config_file)
    # a bad baseline, rule or output path fails here, before the suite runs
    prepared = _prepare_check(baseline, rule or [], fail_on, markdown, candidate_out)
    current = _measure_and_save(config, out, kind="run", label=f"ci-{config.name}")
    _check_and_exit(current, prepared, False)


def _parse_fail_on(text: str, kinds: tuple[str, ...]) -> set[str]:
    chosen = {k.strip() for k in text.split(",") if k.strip()}
    unknown = chosen - set(kinds)
    if unknown:
        raise UsageError(f"--fail-on: unknown kind {sorted(unknown)[0]!r}; use {', '.join(kinds)}")
    return chosen


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
    fail_on: str,
    markdown: Path | None,
    candidate_out: Path | None,
) -> _PreparedCheck:
    """Find and load the baseline(s), parse --rule/--fail-on, check the output paths, once."""
    from emobench.baseline import KINDS, parse_rules, resolve_baseline

    gating = _parse_fail_on(fail_on, KINDS)
    source = resolve_baseline(baseline)
    parsed = parse_rules(rules, source.metric_keys)
    if markdown is not None:
        check_writable(markdown)
    check_writable(candidate_out or RESULTS_DIR / "baseline-candidate.json")
    return _PreparedCheck(source, parsed, gating, markdown, candidate_out)


def _check_and_exit(current: Any, prepared: _PreparedCheck, json_out: bool) -> None:
    """Check against the baseline of the report's class (else any, plus the invariants);
    without one of its class, a report that passes becomes that class's candidate baseline."""
    import dataclasses
    import json

    from emobench import report as report_mod
    from emobench.baseline import candidate_path, check
    from emobench.render import check_summary, render_verdicts, verdicts_markdown

    selection = prepared.source.select(current)
    verdicts = check(current, selection.baseline.report, prepared.rules)
    failed = any(v.failed and v.kind in prepared.gating for v in verdicts)
    if not selection.same_class and failed:
        selection = dataclasses.replace(selection, candidate_withheld=True)
    elif not selection.same_class:
        candidate = prepared.candidate_out or candidate_path(current)
        report_mod.save(current, candidate)
        selection = dataclasses.replace(selection, candidate=candidate)
    if prepared.markdown is not None:
        report_mod.write_atomic(prepared.markdown, verdicts_markdown(verdicts, selection))
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

    Example: emobench report results/*.json --csv all.csv --plot curves.png
    """
    from emobench import readout
    from emobench.render import (
        class_ratio_markdown,
        class_ratio_table,
        merged_markdown,
        merged_table,
    )

    for target in (markdown, csv_out, plot):
        if target is not None:
            check_writable(target)
    if plot is not None:
        from emobench.plot import require_matplotlib

        require_matplotlib()
    if readout.has_finetune(files):  # the speed/accuracy trade-off table
        _tradeoff_report(files, markdown, csv_out, plot)
        return
    loaded = readout.load_reports(files)
    rows = readout.merged_rows(loaded)
    columns = (
        readout.MAXBATCH_COLUMNS if loaded[0][1].kind == "maxbatch" else readout.TIMING_COLUMNS
    )
    ratios = readout.class_ratios(loaded)  # None unless two or more machine classes
    _stdout_console().print(merged_table(rows, columns))
    if ratios is not None:
        _stdout_console().print(class_ratio_table(ratios))
    from emobench.report import write_atomic

    if markdown is not None:
        text = merged_markdown(rows, columns)
        if ratios is not None:
            text += "\n" + class_ratio_markdown(ratios)
        write_atomic(markdown, text)
        typer.echo(f"markdown written to {markdown}", err=True)
    if csv_out is not None:
        write_atomic(csv_out, readout.to_csv(readout.flat_rows(loaded)))
        typer.echo(f"csv written to {csv_out}", err=True)
    if plot is not None:
        if loaded[0][1].kind == "maxbatch":
            raise UsageError("--plot draws compare/run reports; maxbatch reports have no curves")
        from emobench.plot import plot_reports

        plot_reports(loaded, plot)
        typer.echo(f"plot written to {plot}", err=True)


def _tradeoff_report(
    files: list[Path], markdown: Path | None, csv_out: Path | None, plot: Path | None
) -> None:
    """`emobench report` with a finetune report: the trade-off table, Markdown, CSV, plot."""
    from emobench import readout
    from emobench.render import tradeoff_lines, tradeoff_markdown, tradeoff_table
    from emobench.report import write_atomic
    from emobench.tradeoff import build_tradeoff

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
        from emobench.plot import plot_tradeoff

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

    Example: emobench claims results/vgg16-cpu.json --maxbatch results/maxbatch-infer.json
    """
    from emobench import report as report_mod
    from emobench.claims import evaluate
    from emobench.render import claims_markdown, claims_table

    if markdown is not None:
        check_writable(markdown)
    timing = report_mod.load(report_file)
    if timing.kind not in ("compare", "run", "finetune"):
        raise UsageError(
            f"{report_file}: a {timing.kind} report; claims need a compare or run report "
            "(or a finetune report for the training claim)"
        )
    extra = []
    for path in maxbatch_reports or []:
        rep = report_mod.load(path)
        if rep.kind != "maxbatch":
            raise UsageError(f"{path}: --maxbatch needs a maxbatch report, got {rep.kind}")
        extra.append(rep)
    if timing.kind == "finetune":  # the training-speed claim
        from emobench.claims import evaluate_training

        verdicts = evaluate_training(timing)
    else:
        verdicts = evaluate(timing, extra)
    _stdout_console().print(claims_table(verdicts))
    if markdown is not None:
        report_mod.write_atomic(markdown, claims_markdown(verdicts))


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

    from emobench import report as report_mod
    from emobench.config import compile_unavailable, resolve_device
    from emobench.datasets import load_labeled
    from emobench.finetune import FinetuneConfig, run_finetune
    from emobench.models import get_backbone
    from emobench.render import finetune_progress, render_finetune

    get_backbone(backbone)  # an unknown backbone fails here
    folder = checkpoint_dir or RESULTS_DIR / "finetune" / f"{backbone}-{data.stem}"
    config = FinetuneConfig(
        backbone=backbone,
        data=str(data),
        device=device,
        pipelines=tuple(pipeline or ("upscale224", "direct48")),
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
    check_writable(path)
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
    report_mod.save(result, path)
    typer.echo(f"report written to {path} ({result.wall_time_s:.1f} s)", err=True)
    if json_out:
        sys.stdout.write(report_mod.to_json(result))
    else:
        render_finetune(result, _stdout_console())


@app.command("models")
@clean_errors
def models_cmd(
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """List every registered backbone: parameters, FLOPs per image and final feature map.

    Example: emobench models --json
    """
    import dataclasses
    import json

    from emobench.readout import model_catalogue
    from emobench.render import models_table

    infos = model_catalogue()
    if json_out:
        sys.stdout.write(json.dumps([dataclasses.asdict(i) for i in infos], indent=2) + "\n")
    else:
        _stdout_console().print(models_table(infos))


@app.command("env")
@clean_errors
def env_cmd(
    device: DeviceOpt = "auto",
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for bug reports.")] = False,
) -> None:
    """Print the environment fingerprint that reports record (torch, CUDA, GPU, CPU, threads).

    Example: emobench env --device cuda --json
    """
    import json

    from emobench.config import resolve_device
    from emobench.measure.env import fingerprint
    from emobench.render import env_class_line, env_table

    env = fingerprint(resolve_device(device))
    if json_out:
        sys.stdout.write(json.dumps(env, indent=2) + "\n")
    else:
        console = _stdout_console()
        console.print(env_table(env))
        console.print(env_class_line(env), markup=False, highlight=False, soft_wrap=True)


def _measure_and_save(config: Any, out: Path | None, kind: str, label: str) -> Any:
    """Validate, measure with a progress display, write the report; return it."""
    from emobench import report as report_mod
    from emobench.render import progress_display
    from emobench.runner import load_input_images, preflight, run_benchmark

    device = preflight(config)  # bad options fail here, before any model is built
    images = load_input_images(config)  # and a bad --data file here
    path = out or default_report_path(label, str(device))
    check_writable(path)
    with progress_display(_stderr_console()) as progress:
        result = run_benchmark(config, progress=progress, kind=kind, images=images)
    report_mod.save(result, path)
    typer.echo(f"report written to {path} ({result.wall_time_s:.1f} s)", err=True)
    return result


def _run_and_write(config: Any, out: Path | None, json_out: bool, kind: str, label: str) -> None:
    from emobench import report as report_mod
    from emobench.render import render_compare

    result = _measure_and_save(config, out, kind, label)
    if json_out:
        sys.stdout.write(report_mod.to_json(result))
    else:
        render_compare(result, _stdout_console())


if __name__ == "__main__":  # pragma: no cover
    app()
