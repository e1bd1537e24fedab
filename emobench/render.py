"""Everything the terminal shows: Rich tables, the progress display, Markdown. Nothing else
imports rich."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from emobench import machine
from emobench.baseline import OTHER_CLASS, PASS, SKIPPED, Selection, StoredBaseline, Verdict
from emobench.calibrate import Calibration
from emobench.claims import ClaimVerdict
from emobench.readout import ClassRatios, MergedRow
from emobench.results import (
    MetricRow,
    ModelInfo,
    PipelineResult,
    Report,
    metric_rows,
    stats_for,
)
from emobench.results.progress import FinetuneProgress, ProgressFn
from emobench.stats.summary import MIN_SAMPLES_FOR
from emobench.tradeoff import TRADEOFF_COLUMNS, Tradeoff, TradeoffRow

ABSENT = "—"  # a measurement this device cannot take
BYTE_UNITS = (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10))


def fmt_value(value: float | None, unit: str) -> str:
    """A value with its unit, sized for reading: bytes in KiB/MiB/GiB, counts with separators."""
    if value is None:
        return ABSENT
    if unit == "bytes":
        for name, size in BYTE_UNITS:
            if abs(value) >= size:
                return f"{value / size:,.2f} {name}"
        return f"{value:,.0f} B"
    if unit == "count":
        return f"{value:,.0f}"
    if unit == "FLOP":
        return f"{value / 1e9:,.3f} GFLOP"
    if unit in ("FLOP/s", "bytes/s"):
        base = unit.split("/")[0].replace("bytes", "B")
        for prefix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6)):
            if abs(value) >= scale:
                return f"{value / scale:,.2f} {prefix}{base}/s"
        return f"{value:,.0f} {base}/s"
    if unit == "fraction":
        return f"{value:.1%}"
    return f"{_sig(value)} {unit}"


def _sig(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"


def fmt_ratio(value: float | None) -> str:
    return ABSENT if value is None else f"{value:.2f}x"


RATIO_BAR_WIDTH = 12  # cells for a 2**12 = 4096x ratio


def ratio_bar(value: float | None) -> str:
    """A small log2-scaled bar: one cell per doubling; '▏' marks < 1 (direct48 loses)."""
    if value is None or value <= 0:
        return ""
    import math

    cells = min(RATIO_BAR_WIDTH, round(abs(math.log2(value))))
    if value < 1:
        return "[red]" + "◀" * max(cells, 1) + "[/red]"
    return "[green]" + "█" * cells + "[/green]"


def _machine_line(report: Report) -> str:
    env = report.environment
    device = env.get("gpu_name") or env.get("device_name") or env.get("device")
    return (
        f"{env.get('device')} ({device}), torch {env.get('torch')}, "
        f"{env.get('num_threads')} threads, machine class {machine.class_id(env)}"
    )


def compare_table(report: Report, backbone: str, rows: list[MetricRow]) -> Table:
    table = Table(
        title=f"{backbone}: upscale224 vs direct48 on {_machine_line(report)}",
        caption=(
            "ratio = upscale224 / direct48, oriented so > 1 means direct48 wins (bar: one block "
            "per doubling); "
            f"~ = noisy (IQR/median > 10%); {ABSENT} = not measurable on this device"
        ),
        caption_justify="left",
    )
    table.add_column("metric")
    table.add_column("upscale224", justify="right")
    table.add_column("direct48", justify="right")
    table.add_column("ratio", justify="right")
    table.add_column("", justify="left", no_wrap=True)
    up, dn = report.result(backbone, "upscale224"), report.result(backbone, "direct48")
    for row in rows:
        mark = " ~" if row.noisy else ""
        table.add_row(
            row.label + mark,
            fmt_value(row.upscale224, row.unit) + _ci_text(up, row),
            fmt_value(row.direct48, row.unit) + _ci_text(dn, row),
            fmt_ratio(row.ratio),
            ratio_bar(row.ratio),
        )
    return table


def _ci_text(result: PipelineResult | None, row: MetricRow) -> str:
    """' ±x%': the larger side of the median's 95% interval, for median-based timing rows."""
    if row.unit not in ("ms", "us/image"):
        return ""
    stats = stats_for(result, row.key)
    if stats is None or stats.median_ci_low is None or stats.median_ci_high is None:
        return ""
    if "p90" in row.key or "p99" in row.key or stats.median <= 0:
        return ""
    half = max(stats.median - stats.median_ci_low, stats.median_ci_high - stats.median)
    return f" ±{half / stats.median:.0%}" if half / stats.median >= 0.005 else " ±<1%"


def percentile_line(report: Report) -> str | None:
    """Why tail latencies are missing: too few samples for the rule in MIN_SAMPLES_FOR."""
    ns = [r.latency.stats.n for r in report.results if r.latency]
    if not ns or all(n >= MIN_SAMPLES_FOR[99] for n in ns):
        return None
    return (
        f"latency p90 needs >= {MIN_SAMPLES_FOR[90]} samples and p99 >= {MIN_SAMPLES_FOR[99]}; "
        f"batch-1 latency has {', '.join(str(n) for n in ns)}: n too small where not shown; "
        "± = the median's 95% confidence interval (order statistics)"
    )


def render_compare(report: Report, console: Console) -> None:
    rows = metric_rows(report)
    for backbone in report.backbones:
        console.print(compare_table(report, backbone, [r for r in rows if r.backbone == backbone]))
    console.print(settings_line(report))
    console.print(stopping_line(report))
    if (line := percentile_line(report)) is not None:
        console.print(line)
    if report.limits is not None:
        lim = report.limits
        extra = ""
        if lim.host_copy_bytes_per_s is not None and lim.h2d_bytes_per_s is not None:
            extra = (
                f", host memcpy {fmt_value(lim.host_copy_bytes_per_s, 'bytes/s')}, pinned "
                f"host-to-device {fmt_value(lim.h2d_bytes_per_s, 'bytes/s')}"
            )
        console.print(
            f"device limits measured in this run: {lim.matmul_math or lim.matmul_dtype} matmul "
            f"{fmt_value(lim.matmul_flops_per_s, 'FLOP/s')} (n={lim.matmul_n}), copy bandwidth "
            f"{fmt_value(lim.copy_bytes_per_s, 'bytes/s')} ({fmt_value(lim.copy_bytes, 'bytes')})"
            + extra
        )
    for r in report.results:
        if r.error:
            console.print(f"[red]{r.backbone}/{r.pipeline}: {r.error}[/red]")
    for note in report.notes:
        console.print(note)
    console.print(f"wall time: {report.wall_time_s:.1f} s")


def settings_line(report: Report) -> str:
    c = report.config
    in_force = c.get("in_force", {})
    precision = str(c.get("precision", "fp32"))
    if c.get("precision_emulated"):
        precision += " (EMULATED: not native on this device)"
    return (
        f"settings: mode {c.get('mode', 'infer')}, precision {precision}, "
        f"channels-last {c.get('channels_last', False)}, compile {c.get('compile', 'none')}, "
        f"threads {in_force.get('num_threads')}, cudnn.benchmark "
        f"{in_force.get('cudnn_benchmark')}, tf32 {in_force.get('tf32_matmul')}"
    )


def stopping_line(report: Report) -> str:
    """How the timed loops ended: the stopping rule and how many stopped for each reason."""
    c = report.config
    reasons: dict[str, int] = {}
    for r in report.results:
        timings = [r.latency] if r.latency else []
        timings += [b.timing for b in r.throughput + r.end_to_end]
        timings += [t.timing for t in r.train]
        ended = [t.stop_reason for t in timings] + [p.stop_reason for p in r.preprocess]
        for reason in ended:
            if reason:
                reasons[reason] = reasons.get(reason, 0) + 1
    counts = ", ".join(f"{n} by {reason}" for reason, n in sorted(reasons.items()))
    quick = " (--quick)" if c.get("quick") else ""
    return (
        f"stopping rule{quick}: >= {c.get('min_iters')} samples, then stop when the median's 95% "
        f"interval is within +-{c.get('target_ci', 0):.0%} or after {c.get('max_time_s')} s"
        + (" (paired loops of both pipelines: twice that)" if report.paired else "")
        + (f"; loops ended: {counts}" if counts else "")
    )


@contextmanager
def progress_display(console: Console) -> Iterator[ProgressFn]:
    """Progress on `console` (stderr): a live line on a terminal, else one plain line per step
    with the elapsed time, so a CI log or a redirected run is never silent."""
    if not console.is_terminal:
        started = time.perf_counter()

        def plain(description: str, done: int, total: int) -> None:
            console.print(
                f"[{time.perf_counter() - started:7.1f} s] {done}/{total} {description}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )

        yield plain
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("starting", total=None)

        def update(description: str, done: int, total: int) -> None:
            progress.update(task, description=description, completed=done, total=total)

        yield update


def render_maxbatch(report: Report, console: Console) -> None:
    """Summary (max batch per pipeline and the ratio) and the probe trace of every search."""
    results = report.maxbatch
    table = Table(
        title=f"largest batch, {report.config.get('mode')} mode, on {_machine_line(report)}",
        caption=(
            f"budget {fmt_value(report.config.get('budget_bytes'), 'bytes')}; safe = max less "
            f"the {report.config.get('margin', 0):.0%} margin; ratio = direct48 / upscale224"
        ),
        caption_justify="left",
    )
    for col in ("pipeline", "method", "max batch", "safe batch", "peak memory at max"):
        table.add_column(col, justify="left" if col in ("pipeline", "method") else "right")
    table.add_column("bytes per extra image", justify="right")
    table.add_column("note")
    for r in results:
        note = r.error or ("capped at --max-batch" if r.capped else "")
        if r.fit_error is not None:
            note = (note + "; " if note else "") + f"fit error {r.fit_error:+.1%}"
        if r.reserved_bytes_at_max is not None:
            note = (note + "; " if note else "") + (
                f"reserved {fmt_value(r.reserved_bytes_at_max, 'bytes')}, outside allocator "
                f"{fmt_value(r.non_allocator_bytes, 'bytes')}"
            )
        table.add_row(
            r.pipeline,
            r.method,
            f"{r.max_batch:,}" + (" (capped)" if r.capped else ""),
            f"{r.safe_batch:,}",
            fmt_value(r.peak_bytes_at_max, "bytes"),
            fmt_value(r.bytes_per_extra_image, "bytes"),
            note,
        )
    console.print(table)
    by_name = {r.pipeline: r for r in results}
    if "upscale224" in by_name and "direct48" in by_name:
        up, dn = by_name["upscale224"], by_name["direct48"]
        ratio_text = fmt_ratio(dn.max_batch / up.max_batch if up.max_batch else None)
        console.print(f"max batch ratio (direct48 / upscale224): {ratio_text}")
    trace = Table(title="search trace (every probe)")
    for col in ("pipeline", "batch", "outcome", "peak memory", "seconds", "note"):
        trace.add_column(col, justify="right" if col in ("batch", "seconds") else "left")
    for r in results:
        for p in r.probes:
            trace.add_row(
                r.pipeline,
                f"{p.batch_size:,}",
                p.outcome,
                fmt_value(p.peak_bytes, "bytes"),
                f"{p.seconds:.2f}",
                p.message or "",
            )
    console.print(trace)
    console.print(f"wall time: {report.wall_time_s:.1f} s")


def _cell(value: float | str | None) -> str:
    if value is None:
        return ABSENT
    if isinstance(value, str):
        return value
    return f"{value:,.0f}" if float(value).is_integer() and abs(value) >= 1000 else _sig(value)


def _verdict_cells(v: Verdict) -> list[str]:
    return [
        v.backbone,
        v.pipeline,
        f"{v.metric} ({v.unit})" if v.unit else v.metric,
        v.kind,
        _cell(v.baseline),
        _cell(v.current),
        ABSENT if v.delta is None else f"{v.delta:+.1%}",
        ABSENT if v.threshold is None else f"{v.threshold:.1%}",
        v.verdict + (f" ({v.note})" if v.note else ""),
    ]


VERDICT_COLUMNS = (
    "backbone",
    "pipeline",
    "metric",
    "kind",
    "baseline",
    "current",
    "delta",
    "threshold",
    "verdict",
)


NOT_COMPARED = (SKIPPED, OTHER_CLASS)  # shown for reading, never a pass or a fail


def check_summary(
    verdicts: list[Verdict], selection: Selection | None, code: str = ""
) -> list[str]:
    """The lines under a verdict table: the count, and which machine classes were compared.

    `code` wraps commands and paths (a backtick for Markdown).
    """
    failed = sum(v.failed for v in verdicts)
    shown = sum(v.verdict in NOT_COMPARED for v in verdicts)
    compared = len(verdicts) - shown
    first = f"regression check: {compared - failed} of {compared} checks pass"
    if shown:
        first += f"; {shown} shown, not compared (different machine class)"
    lines = [first]
    if selection is None:
        return lines
    base = selection.baseline
    if selection.same_class:
        lines.append(
            f"baseline {code}{base.path}{code}: machine class {base.machine_class}, "
            "the same as this report's"
        )
        return lines
    if selection.searched is not None:
        lines.append(
            f"no baseline of machine class {selection.current_class} in "
            f"{code}{selection.searched}{code}: exact metrics and invariants gate, against "
            f"{code}{base.path}{code} (the newest there); ratios shown beside it, "
            "machine-bound figures skipped"
        )
    else:
        lines.append(
            f"baseline {code}{base.path}{code} is of another machine class: exact metrics "
            "and invariants gate; ratios shown beside it, machine-bound figures skipped"
        )
    lines.append(f"baseline class {base.machine_class}: {selection.baseline_description}")
    lines.append(f"this report's class {selection.current_class}: {selection.current_description}")
    lines.append(
        "what differs (baseline vs this report): " + "; ".join(selection.differences or ["?"])
    )
    if selection.candidate_withheld:
        lines.append(
            f"no candidate baseline written for {selection.current_class}: this report failed "
            "a gating check; adopt a report that passes"
        )
    if selection.candidate is not None:
        lines.append(
            f"candidate baseline for {selection.current_class} written to "
            f"{code}{selection.candidate}{code}; adopt it with: "
            f"{code}{selection.adopt_command(selection.candidate)}{code}"
        )
    return lines


def render_verdicts(
    verdicts: list[Verdict], console: Console, selection: Selection | None = None
) -> None:
    table = Table(title="regression check")
    for col in VERDICT_COLUMNS:
        table.add_column(
            col,
            justify="right" if col in ("baseline", "current", "delta") else "left",
            overflow="fold",  # metric names and notes wrap instead of being cut off
        )
    for v in verdicts:
        style = "red" if v.failed else ("yellow" if v.verdict != PASS else None)
        if v.verdict in NOT_COMPARED:
            style = "dim"
        table.add_row(*_verdict_cells(v), style=style)
    console.print(table)
    for line in check_summary(verdicts, selection):
        # soft_wrap: a command stays on one line, ready to copy
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def verdicts_markdown(verdicts: list[Verdict], selection: Selection | None = None) -> str:
    """The same table as Markdown, for a CI job summary."""
    lines = [
        "| " + " | ".join(VERDICT_COLUMNS) + " |",
        "|" + "---|" * len(VERDICT_COLUMNS),
    ]
    for v in verdicts:
        cells = [c.replace("|", "\\|") for c in _verdict_cells(v)]
        if v.failed:
            cells[-1] = f"**{cells[-1]}**"
        lines.append("| " + " | ".join(cells) + " |")
    summary = check_summary(verdicts, selection, code="`")
    lines.append("")
    lines.append(summary[0][0].upper() + summary[0][1:] + ".")
    if summary[1:]:
        lines += ["", *[f"* {line}" for line in summary[1:]]]
    return "\n".join(lines) + "\n"


def baselines_table(stored: list[StoredBaseline], directory: Path) -> Table:
    table = Table(title=f"stored baselines in {directory}: NAME/<machine class>.json")
    for col in ("name", "machine class", "created (UTC)", "backbones"):
        table.add_column(col, overflow="fold")
    for b in stored:
        # a file whose name is not its class (the older NAME.json layout, or a renamed one)
        odd = b.path.name != f"{b.machine_class}.json"
        table.add_row(
            b.name + (f"\n({b.path.name})" if odd else ""),
            f"{b.machine_class}\n{machine.describe(b.report.environment)}",
            b.report.created_utc,
            ", ".join(b.report.backbones),
        )
    return table


def _class_ratio_cells(ratios: ClassRatios) -> list[list[str]]:
    return [
        [
            r.backbone,
            f"{r.label} ({r.key})",
            *[fmt_ratio(r.ratios.get(c.id)) for c in ratios.classes],
            fmt_ratio(r.spread),
        ]
        for r in ratios.rows
    ]


def class_ratio_table(ratios: ClassRatios) -> Table:
    """upscale224/direct48 ratios, one column per machine class: what 'portable' is worth."""
    table = Table(
        title="upscale224 / direct48 ratios by machine class (> 1: direct48 wins)",
        caption="\n".join(
            f"{c.id}: {c.description} ({', '.join(c.sources)})" for c in ratios.classes
        )
        + "\nspread = largest / smallest ratio across classes",
        caption_justify="left",
    )
    table.add_column("backbone")
    table.add_column("metric")
    for c in ratios.classes:
        table.add_column(c.id, justify="right", overflow="fold")
    table.add_column("spread", justify="right")
    for cells in _class_ratio_cells(ratios):
        table.add_row(*cells)
    return table


def class_ratio_markdown(ratios: ClassRatios) -> str:
    head = ["backbone", "metric", *[c.id for c in ratios.classes], "spread"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for cells in _class_ratio_cells(ratios):
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines.append("")
    lines += [f"* `{c.id}`: {c.description} ({', '.join(c.sources)})" for c in ratios.classes]
    return "\n".join(lines) + "\n"


def merged_table(rows: list[MergedRow], columns: tuple[tuple[str, str], ...]) -> Table:
    table = Table(title="reports side by side")
    for col in ("backbone", "pipeline", "machine", "report"):
        table.add_column(col)
    for key, unit in columns:
        table.add_column(f"{key} ({unit})", justify="right")
    for r in rows:
        table.add_row(
            r.backbone,
            r.pipeline,
            r.machine,
            f"{r.source}\n{r.created_utc}",
            *[fmt_value(r.values.get(k), u) for k, u in columns],
        )
    return table


def merged_markdown(rows: list[MergedRow], columns: tuple[tuple[str, str], ...]) -> str:
    head = ["backbone", "pipeline", "machine", "report", *[f"{k} ({u})" for k, u in columns]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r.backbone, r.pipeline, r.machine, f"{r.source} {r.created_utc}"]
        cells += [fmt_value(r.values.get(k), u) for k, u in columns]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def claims_table(verdicts: list[ClaimVerdict]) -> Table:
    table = Table(title="the write-up's claims against measurements")
    for col in ("backbone", "claim", "claimed", "measured", "verdict", "why"):
        table.add_column(col, justify="right" if col in ("claimed", "measured") else "left")
    colour = {"holds": "green", "does not hold": "red", "not measured": "yellow"}
    for v in verdicts:
        table.add_row(
            v.backbone,
            v.claim,
            fmt_ratio(v.claimed),
            fmt_ratio(v.measured),
            f"[{colour[v.verdict]}]{v.verdict}[/{colour[v.verdict]}]",
            v.reason,
        )
    return table


def claims_markdown(verdicts: list[ClaimVerdict]) -> str:
    lines = [
        "| backbone | claim | claimed | measured | verdict | why |",
        "|---|---|---|---|---|---|",
    ]
    for v in verdicts:
        lines.append(
            f"| {v.backbone} | {v.claim} | {fmt_ratio(v.claimed)} | {fmt_ratio(v.measured)} "
            f"| {v.verdict} | {v.reason} |"
        )
    return "\n".join(lines) + "\n"


def models_table(infos: list[ModelInfo]) -> Table:
    rules = {m.family: m.direct48_rule for m in infos if m.direct48_rule}
    table = Table(
        title="registered backbones (random weights; FLOPs at batch 1, 1 MAC = 2 FLOPs)",
        caption="\n".join(f"direct48 {family}: {rule}" for family, rule in rules.items()),
        caption_justify="left",
    )
    for col in ("backbone", "pipeline", "input", "parameters", "FLOPs per image", "final map"):
        table.add_column(col, justify="left" if col in ("backbone", "pipeline") else "right")
    for m in infos:
        table.add_row(
            m.backbone,
            m.pipeline,
            f"{m.input_size}x{m.input_size}",
            fmt_value(m.params_total, "count"),
            fmt_value(m.flops_per_image, "FLOP"),
            "x".join(map(str, m.feature_map)),
        )
    return table


def env_table(env: dict[str, object]) -> Table:
    table = Table(title="environment fingerprint")
    table.add_column("field")
    table.add_column("value")
    for key, value in env.items():
        table.add_row(key, ABSENT if value is None else str(value))
    return table


def env_class_line(env: dict[str, object]) -> str:
    """The machine class under the fingerprint: baselines and ratios are kept per class."""
    return f"machine class {machine.class_id(env)}: {machine.describe(env)}"


def calibration_table(calibrations: list[Calibration], alpha: float) -> Table:
    """Per ratio: the runs' centre and spread, the gate's threshold and the detectable change."""
    table = Table(
        title=f"A/A calibration: run-to-run spread of the ratios (false-alarm rate {alpha:g} "
        "for the whole gate)",
        caption="mean: geometric mean of the runs' ratios; spread: largest / smallest - 1; "
        "log sd: run-to-run standard deviation of log(ratio); threshold: the move that fails "
        "a check (Student's t on the runs' log-ratio spread, Bonferroni over the ratios; a "
        "check's repeated runs count as one, as they share the machine's state); detectable: "
        "the change it catches 80% of the time",
        caption_justify="left",
    )
    cols = ("backbone", "ratio", "runs", "mean", "spread", "log sd", "threshold", "detectable")
    for col in cols:
        table.add_column(col, justify="left" if col in ("backbone", "ratio") else "right")
    for c in sorted(calibrations, key=lambda c: (c.backbone, c.key)):
        table.add_row(
            c.backbone,
            c.key,
            str(c.runs),
            fmt_ratio(c.mean_ratio),
            f"{c.spread:.1%}",
            f"{c.log_sd:.1%}",
            f"{c.threshold:.1%}",
            f"{c.detectable:.1%}",
        )
    return table


# -- fine-tuning -------------------------------------------------------------------------------


@contextmanager
def finetune_progress(console: Console) -> Iterator[FinetuneProgress]:
    """A Rich bar per epoch with the running loss (and validation accuracy at its end) on a
    terminal; one plain line per finished epoch otherwise."""
    if not console.is_terminal:
        started = time.perf_counter()

        def plain(
            pipeline: str,
            seed: int,
            epoch: int,
            epochs: int,
            batch: int,
            batches: int,
            loss: float,
            val_acc: float | None,
        ) -> None:
            if val_acc is None:
                return
            console.print(
                f"[{time.perf_counter() - started:7.1f} s] {pipeline} seed {seed} epoch "
                f"{epoch}/{epochs}: loss {loss:.4f}, val acc {val_acc:.1%}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )

        yield plain
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        tasks: dict[tuple[str, int, int], TaskID] = {}

        def update(
            pipeline: str,
            seed: int,
            epoch: int,
            epochs: int,
            batch: int,
            batches: int,
            loss: float,
            val_acc: float | None,
        ) -> None:
            key = (pipeline, seed, epoch)
            if key not in tasks:
                tasks[key] = progress.add_task(
                    f"{pipeline} seed {seed} epoch {epoch}/{epochs}", total=batches, status=""
                )
            status = f"loss {loss:.4f}" + ("" if val_acc is None else f"  val acc {val_acc:.1%}")
            progress.update(tasks[key], completed=batch, status=status)

        yield update


def finetune_table(report: Report) -> Table:
    ft = report.finetune
    table = Table(title=f"fine-tune on {report.config.get('resolved_device')}")
    cols = (
        "pipeline",
        "seed",
        "best epoch",
        "test acc",
        "macro-F1",
        "latency b1",
        "s/epoch (data / prep / step)",
        "images/s",
        "train peak",
        "to target",
    )
    for col in cols:
        table.add_column(col, justify="left" if col == "pipeline" else "right")
    for r in ft.runs if ft else []:
        e = r.epochs
        med = sorted(e, key=lambda x: x.train_s)[len(e) // 2]
        peak = r.train_peak.tensor_peak_bytes if r.train_peak else None
        target = (
            ABSENT
            if r.target_accuracy is None
            else "not reached"
            if r.time_to_target_s is None
            else f"{r.time_to_target_s:.1f} s (epoch {r.epoch_to_target})"
        )
        table.add_row(
            r.pipeline,
            str(r.seed),
            str(r.best_epoch),
            f"{r.test.accuracy:.1%}",
            f"{r.test.macro_f1:.3f}",
            fmt_value(r.test.latency_b1_ms, "ms"),
            f"{r.train_s_per_epoch:.2f} ({med.data_s:.2f} / {med.preprocess_s:.2f} / "
            f"{med.step_s:.2f})",
            f"{med.images_per_s:,.0f}",
            fmt_value(peak, "bytes"),
            target,
        )
    return table


def render_finetune(report: Report, console: Console) -> None:
    from emobench.results.finetune import verdict_sentence

    ft = report.finetune
    if ft is None:
        return
    data = ft.data
    console.print(finetune_table(report))
    console.print(
        f"data: {data.get('path')} ({data.get('format')}, {len(data.get('class_names', []))} "
        f"classes, split {data.get('split_method')}); best epoch chosen on "
        f"{data.get('selection_split')}, scored on {data.get('score_split')}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    for s in ft.spread:
        if s.seeds > 1:
            console.print(
                f"{s.pipeline}: test accuracy {s.accuracy_mean:.1%} ± {s.accuracy_std:.1%}, "
                f"macro-F1 {s.macro_f1_mean:.3f} ± {s.macro_f1_std:.3f} over {s.seeds} seeds",
                markup=False,
                highlight=False,
            )
    console.print(verdict_sentence(ft.paired), markup=False, highlight=False, soft_wrap=True)
    for note in report.notes:
        console.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)


def _tradeoff_cells(row: TradeoffRow, front: set[tuple[str, str]]) -> list[str]:
    cells = []
    for key, _, unit in TRADEOFF_COLUMNS:
        text = fmt_value(row.values.get(key), unit)
        if key == "accuracy" and row.seeds > 1 and row.accuracy_std is not None:
            text += f" ± {row.accuracy_std:.1%}"
        cells.append(text)
    star = "*" if (row.backbone, row.pipeline) in front else ""
    return [row.backbone, row.pipeline + star, *cells]


def _latency_front(tradeoff: Tradeoff) -> set[tuple[str, str]]:
    from emobench.tradeoff import pareto_front

    rows = [
        r
        for r in tradeoff.rows
        if r.values.get("accuracy") is not None and r.values.get("latency_b1_ms") is not None
    ]
    points = [(r.values["latency_b1_ms"] or 0.0, r.values["accuracy"] or 0.0) for r in rows]
    return {
        (r.backbone, r.pipeline) for r, on in zip(rows, pareto_front(points), strict=True) if on
    }


def tradeoff_table(tradeoff: Tradeoff) -> Table:
    table = Table(title="speed against accuracy (* on the accuracy/latency Pareto front)")
    table.add_column("backbone")
    table.add_column("pipeline")
    for _, header, _ in TRADEOFF_COLUMNS:
        table.add_column(header, justify="right")
    front = _latency_front(tradeoff)
    for row in tradeoff.rows:
        table.add_row(*_tradeoff_cells(row, front))
    return table


def tradeoff_lines(tradeoff: Tradeoff) -> list[str]:
    return [f"{b}: {v}" for b, v in tradeoff.verdicts.items()] + tradeoff.notes


def tradeoff_markdown(tradeoff: Tradeoff) -> str:
    head = ["backbone", "pipeline", *[h for _, h, _ in TRADEOFF_COLUMNS]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    front = _latency_front(tradeoff)
    for row in tradeoff.rows:
        lines.append("| " + " | ".join(_tradeoff_cells(row, front)) + " |")
    lines.append("")
    lines.append("\\* on the accuracy/latency Pareto front")
    lines += ["", *(f"- {line}" for line in tradeoff_lines(tradeoff))]
    return "\n".join(lines) + "\n"
