"""The regression gate on screen and in Markdown: verdict tables, the summary line, stored
baselines and calibration thresholds."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from emobench import files, machine
from emobench.gate.calibrate import Calibration
from emobench.gate.store import Selection, StoredBaseline
from emobench.gate.verdicts import (
    INCOMPARABLE,
    NOT_CHECKED,
    NOT_COMPARABLE,
    NOT_ESTIMATED,
    OTHER_CLASS,
    PASS,
    SKIPPED,
    UNRELIABLE,
    Verdict,
)
from emobench.render.format import ABSENT, cell, fmt_ratio


def _verdict_cells(v: Verdict, variants: bool = False) -> list[str]:
    """One verdict row in VERDICT_COLUMNS' order (`variants`: the variant after the backbone)."""
    return [
        v.backbone,
        *([v.variant or ""] if variants else []),
        v.pipeline,
        f"{v.metric} ({v.unit})" if v.unit else v.metric,
        v.kind,
        cell(v.baseline),
        cell(v.current),
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


def verdict_columns(verdicts: list[Verdict]) -> tuple[str, ...]:
    """VERDICT_COLUMNS, with a variant column where the rows name runtime variants."""
    if not _has_variants(verdicts):
        return VERDICT_COLUMNS
    return (VERDICT_COLUMNS[0], "variant", *VERDICT_COLUMNS[1:])


def _has_variants(verdicts: list[Verdict]) -> bool:
    return any(v.variant is not None for v in verdicts)


# shown for reading, never pass or fail
NOT_COMPARED = (SKIPPED, OTHER_CLASS, NOT_ESTIMATED, NOT_CHECKED)
_NOT_COMPARED_WHY = {
    NOT_ESTIMATED: "too few samples for a tail percentile",
    NOT_CHECKED: "a runtime variant the baseline does not hold",
}


def check_summary(
    verdicts: list[Verdict], selection: Selection | None, code: str = ""
) -> list[str]:
    """The lines under a verdict table: the count, and which machine classes were compared.

    `code` wraps commands and paths (a backtick for Markdown).
    """
    failed = sum(v.failed for v in verdicts)
    not_comparable = sum(v.verdict == NOT_COMPARABLE for v in verdicts)
    # incomparable (other settings) and unreliable (a busy machine) rows were not compared
    # either: they are counted apart, never as passes
    unchecked = [v for v in verdicts if v.verdict in (INCOMPARABLE, UNRELIABLE)]
    shown = [v for v in verdicts if v.verdict in NOT_COMPARED]
    compared = len(verdicts) - len(shown) - len(unchecked)
    first = f"regression check: {compared - failed} of {compared} checks pass"
    if not_comparable:
        first += (
            f"; {not_comparable} not comparable (a value missing or not a finite number), "
            "counted as failures"
        )
    for label, verdict in (
        ("measured under other settings", INCOMPARABLE),
        ("from a busy machine", UNRELIABLE),
    ):
        count = sum(v.verdict == verdict for v in unchecked)
        if count:
            first += f"; {count} not checked ({label}), not counted as passes"
    if shown:
        why = sorted({_NOT_COMPARED_WHY.get(v.verdict, "different machine class") for v in shown})
        first += f"; {len(shown)} shown, not compared ({', '.join(why)})"
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
    variants = _has_variants(verdicts)
    for col in verdict_columns(verdicts):
        table.add_column(
            col,
            justify="right" if col in ("baseline", "current", "delta") else "left",
            overflow="fold",  # metric names and notes wrap instead of being cut off
        )
    for v in verdicts:
        style = "red" if v.failed else ("yellow" if v.verdict != PASS else None)
        if v.verdict in NOT_COMPARED:
            style = "dim"
        table.add_row(*_verdict_cells(v, variants), style=style)
    console.print(table)
    for line in check_summary(verdicts, selection):
        # soft_wrap: a command stays on one line, ready to copy
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def verdicts_markdown(verdicts: list[Verdict], selection: Selection | None = None) -> str:
    """The same table as Markdown, for a CI job summary; its first line is the marker that
    lets a later run replace the file."""
    columns = verdict_columns(verdicts)
    variants = _has_variants(verdicts)
    lines = [
        files.marker("markdown").rstrip("\n"),
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
    ]
    for v in verdicts:
        cells = [c.replace("|", "\\|") for c in _verdict_cells(v, variants)]
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


def calibration_table(calibrations: list[Calibration], alpha: float) -> Table:
    """Per ratio: the runs' centre and spread, the gate's threshold and the detectable change;
    with a variant column when the runs hold runtime variants (each its own threshold)."""
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
    # a report of runtime variants: each row names its variant, in the order they were measured
    order = {v: i for i, v in enumerate(dict.fromkeys(c.variant for c in calibrations))}
    variants = any(c.variant is not None for c in calibrations)
    cols = ("backbone", *(("variant",) if variants else ()), "ratio", "runs", "mean", "spread")
    cols += ("log sd", "threshold", "detectable")
    for col in cols:
        left = col in ("backbone", "variant", "ratio")
        table.add_column(col, justify="left" if left else "right")
    for c in sorted(calibrations, key=lambda c: (c.backbone, order[c.variant], c.key)):
        table.add_row(
            c.backbone,
            *([c.variant or ""] if variants else []),
            c.key,
            str(c.runs),
            fmt_ratio(c.mean_ratio),
            f"{c.spread:.1%}",
            f"{c.log_sd:.1%}",
            f"{c.threshold:.1%}",
            f"{c.detectable:.1%}",
        )
    return table
