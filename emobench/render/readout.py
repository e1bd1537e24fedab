"""Reading several reports: merged tables, ratios per machine class, claims, the trade-off, the
model catalogue and the environment."""

from __future__ import annotations

import math

from rich.markup import escape
from rich.table import Table

from emobench import files, machine
from emobench.readout.claims import NO_CLASS, POINTS, ClaimsResult, ClaimVerdict
from emobench.readout.merge import ClassRatios, MergedRow, shows_variants
from emobench.readout.tradeoff import TRADEOFF_COLUMNS, Tradeoff, TradeoffRow
from emobench.render.format import ABSENT, fmt_ratio, fmt_value
from emobench.results import (
    ModelInfo,
)


def _class_ratio_cells(ratios: ClassRatios) -> list[list[str]]:
    variants = shows_variants(ratios.rows)
    return [
        [
            r.backbone,
            *([r.variant] if variants else []),
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
    if shows_variants(ratios.rows):
        table.add_column("variant")
    table.add_column("metric")
    for c in ratios.classes:
        table.add_column(c.id, justify="right", overflow="fold")
    table.add_column("spread", justify="right")
    for cells in _class_ratio_cells(ratios):
        table.add_row(*cells)
    return table


def class_ratio_markdown(ratios: ClassRatios) -> str:
    variant = ["variant"] if shows_variants(ratios.rows) else []
    head = ["backbone", *variant, "metric", *[c.id for c in ratios.classes], "spread"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for cells in _class_ratio_cells(ratios):
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines.append("")
    lines += [f"* `{c.id}`: {c.description} ({', '.join(c.sources)})" for c in ratios.classes]
    return "\n".join(lines) + "\n"


def _merged_head(rows: list[MergedRow]) -> list[str]:
    """backbone, pipeline, (variant where a row is not plain torch), machine, report."""
    variant = ["variant"] if shows_variants(rows) else []
    return ["backbone", "pipeline", *variant, "machine", "report"]


def merged_table(rows: list[MergedRow], columns: tuple[tuple[str, str], ...]) -> Table:
    table = Table(title="reports side by side")
    variants = shows_variants(rows)
    for col in _merged_head(rows):
        table.add_column(col)
    for key, unit in columns:
        table.add_column(f"{key} ({unit})", justify="right")
    for r in rows:
        table.add_row(
            r.backbone,
            r.pipeline,
            *([r.variant] if variants else []),
            r.machine,
            f"{r.source}\n{r.created_utc}",
            *[fmt_value(r.values.get(k), u) for k, u in columns],
        )
    return table


# The first line of every Markdown file emobench writes: a later run may replace the file.
MARKER = files.marker("markdown").rstrip("\n")


def merged_markdown(rows: list[MergedRow], columns: tuple[tuple[str, str], ...]) -> str:
    head = [*_merged_head(rows), *[f"{k} ({u})" for k, u in columns]]
    variants = shows_variants(rows)
    lines = [MARKER, "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r.backbone, r.pipeline, *([r.variant] if variants else [])]
        cells += [r.machine, f"{r.source} {r.created_utc}"]
        cells += [fmt_value(r.values.get(k), u) for k, u in columns]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


_VERDICT_STYLE = {
    "holds": "green",
    "does not hold": "red",
    "inconclusive": "yellow",
    "not measured": "dim",
    "not testable": "dim",
}
CLAIMS_HEAD = (
    "backbone",
    "claim",
    "machine class",
    "claimed",
    "threshold",
    "measured [95% CI]",
    "verdict",
    "why",
)


def _claim_figure(value: float, unit: str) -> str:
    if unit == POINTS:
        return f"{value:+.1f} pts"
    return "∞" if math.isinf(value) else f"{value:.2f}x"


def claim_measured(v: ClaimVerdict) -> str:
    """The measured figure and its 95% interval: '14.00x [13.10, 15.20]', '15.94x (exact)'."""
    if v.measured is None:
        return ABSENT
    point = _claim_figure(v.measured, v.unit)
    if v.exact:
        return f"{point} (exact)"
    if v.low is None or v.high is None:
        return f"{point} [no interval]"
    if v.low == v.high == v.measured:
        return point
    if v.low == v.measured and math.isinf(v.high):
        return f">= {point}"
    high = _claim_figure(v.high, v.unit)
    low = _claim_figure(v.low, v.unit)
    if v.unit != POINTS:
        low, high = low.removesuffix("x"), high.removesuffix("x")
    else:
        low, high = low.removesuffix(" pts"), high.removesuffix(" pts")
    return f"{point} [{low}, {high}]"


def claim_cells(v: ClaimVerdict) -> list[str]:
    """One claims row as plain text, in CLAIMS_HEAD's order (terminal, Markdown, HTML)."""
    if v.claimed_text:
        claimed = v.claimed_text
    elif v.claimed is None:
        claimed = ABSENT
    else:
        claimed = f"{v.claimed:g}x" if v.unit != POINTS else f"{v.claimed:+g} pts"
    threshold = ABSENT if v.threshold is None else ">= " + _claim_figure(v.threshold, v.unit)
    why = v.reason
    if v.interval:
        why += f". Interval: {v.interval}"
    if v.settle:
        why += f". To settle: {v.settle}"
    return [
        v.backbone,
        v.claim,
        v.machine_class,
        claimed,
        threshold,
        claim_measured(v),
        v.verdict,
        why,
    ]


def claims_table(claims: ClaimsResult) -> Table:
    """Every claim per backbone and machine class (the why of each row: claims_why_lines);
    the classes and their files below."""
    caption = [f"{c.id}: {c.description} ({', '.join(c.sources)})" for c in claims.classes]
    caption.append(
        "holds: the whole 95% interval at or above the threshold (claimed x 0.9); does not "
        "hold: wholly below; inconclusive: it straddles"
    )
    table = Table(
        title="the write-up's claims against measurements",
        caption="\n".join(caption + claims.notes),
        caption_justify="left",
    )
    head = CLAIMS_HEAD[:-1]  # the why goes below the table, one line per row
    for col in head:
        right = col in ("claimed", "threshold", "measured [95% CI]")
        table.add_column(col, justify="right" if right else "left", overflow="fold")
    for v in claims.verdicts:
        cells = [escape(c) for c in claim_cells(v)[: len(head)]]
        style = _VERDICT_STYLE.get(v.verdict, "")
        cells[6] = f"[{style}]{cells[6]}[/{style}]" if style else cells[6]
        table.add_row(*cells)
    return table


def claims_why_lines(claims: ClaimsResult) -> list[str]:
    """'vgg16, 16x faster inference on CLASS: why (interval, what would settle it)' per row."""
    out = []
    for v in claims.verdicts:
        where = f" on {v.machine_class}" if v.machine_class != NO_CLASS else ""
        head = f"{v.backbone}, {v.claim}" if v.backbone != NO_CLASS else v.claim
        out.append(f"{head}{where}: {v.verdict}. {claim_cells(v)[-1]}")
    return out


def claims_summary_lines(claims: ClaimsResult) -> list[str]:
    """'vgg16, 16x faster inference: holds on 2 of 3 machine classes; ...' per measured claim,
    when the reports span two or more machine classes."""
    if len(claims.classes) < 2:
        return []
    classed = {(v.backbone, v.claim) for v in claims.verdicts if v.machine_class != NO_CLASS}
    return [
        f"{s.backbone}, {s.claim}: {s.text}"
        for s in claims.summaries
        if (s.backbone, s.claim) in classed
    ]


def claims_markdown(claims: ClaimsResult) -> str:
    lines = [MARKER, "| " + " | ".join(CLAIMS_HEAD) + " |", "|" + "---|" * len(CLAIMS_HEAD)]
    for v in claims.verdicts:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in claim_cells(v)) + " |")
    summary = claims_summary_lines(claims)
    if summary:
        lines += ["", "Across machine classes:", "", *(f"* {line}" for line in summary)]
    lines.append("")
    lines += [f"* `{c.id}`: {c.description} ({', '.join(c.sources)})" for c in claims.classes]
    lines += [f"* {note}" for note in claims.notes]
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


def tradeoff_head(tradeoff: Tradeoff) -> list[str]:
    """backbone, pipeline, (variant where a row is not plain torch), the trade-off columns."""
    variant = ["variant"] if shows_variants(tradeoff.rows) else []
    return ["backbone", "pipeline", *variant, *[h for _, h, _ in TRADEOFF_COLUMNS]]


def _tradeoff_cells(
    row: TradeoffRow, front: set[tuple[str, str, str]], variants: bool = False
) -> list[str]:
    cells = []
    for key, _, unit in TRADEOFF_COLUMNS:
        text = fmt_value(row.values.get(key), unit)
        if key == "accuracy" and row.seeds > 1 and row.accuracy_std is not None:
            text += f" ± {row.accuracy_std:.1%}"
        cells.append(text)
    star = "*" if (row.backbone, row.pipeline, row.variant) in front else ""
    return [row.backbone, row.pipeline + star, *([row.variant] if variants else []), *cells]


def tradeoff_cells(tradeoff: Tradeoff) -> list[list[str]]:
    """Every trade-off row as plain text, in tradeoff_head's order (terminal, Markdown, HTML)."""
    front = _latency_front(tradeoff)
    variants = shows_variants(tradeoff.rows)
    return [_tradeoff_cells(row, front, variants) for row in tradeoff.rows]


def _latency_front(tradeoff: Tradeoff) -> set[tuple[str, str, str]]:
    from emobench.readout.tradeoff import pareto_front

    rows = [
        r
        for r in tradeoff.rows
        if r.values.get("accuracy") is not None and r.values.get("latency_b1_ms") is not None
    ]
    points = [(r.values["latency_b1_ms"] or 0.0, r.values["accuracy"] or 0.0) for r in rows]
    return {
        (r.backbone, r.pipeline, r.variant)
        for r, on in zip(rows, pareto_front(points), strict=True)
        if on
    }


def tradeoff_table(tradeoff: Tradeoff) -> Table:
    table = Table(title="speed against accuracy (* on the accuracy/latency Pareto front)")
    head = tradeoff_head(tradeoff)
    labels = len(head) - len(TRADEOFF_COLUMNS)
    for i, header in enumerate(head):
        table.add_column(header, justify="left" if i < labels else "right")
    for cells in tradeoff_cells(tradeoff):
        table.add_row(*cells)
    return table


def tradeoff_lines(tradeoff: Tradeoff) -> list[str]:
    return [f"{b}: {v}" for b, v in tradeoff.verdicts.items()] + tradeoff.notes


def tradeoff_markdown(tradeoff: Tradeoff) -> str:
    head = tradeoff_head(tradeoff)
    lines = [MARKER, "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for cells in tradeoff_cells(tradeoff):
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("\\* on the accuracy/latency Pareto front")
    lines += ["", *(f"- {line}" for line in tradeoff_lines(tradeoff))]
    return "\n".join(lines) + "\n"
