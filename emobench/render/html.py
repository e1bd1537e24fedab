"""One self-contained HTML page of reports (`emobench report FILES --html PAGE`).

Everything is in the page: styles inline, plots as base64 PNG `data:` images, no script, no
font, stylesheet or image fetched from anywhere, so it opens the same offline, from a mail or
from a CI artefact. It holds the runs' settings and device limits, the comparison tables (with
each ratio's 95% interval where the run has one), the write-up's claims with their intervals
and verdicts (readout.claims), the plots (render.plot) and, for reports of several machine
classes, the ratios side by side per class. A report of several runtime variants gets one
section per variant and the runtimes side by side (as the terminal shows them). Torch-free: it
reads loaded reports only.

The `<meta name="generator" content="emobench ...">` line marks the page as ours
(files.is_artefact(path, "html")), so a later run may replace it without --force.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from emobench import __version__, machine
from emobench import results as R
from emobench.names import TIMING_KINDS
from emobench.render.format import ABSENT, fmt_ratio, fmt_value

GENERATOR = f"emobench {__version__}"
VERDICT_CLASSES = {
    "holds": "holds",
    "does not hold": "fails",
    "inconclusive": "inconclusive",
    "not measured": "unmeasured",
    "not testable": "unmeasured",
}

STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d1d1f;
       margin: 0 auto; max-width: 1200px; padding: 1.5em 2em 3em; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; }
h2 { border-bottom: 2px solid #d0d4da; padding-bottom: 0.2em; margin-top: 2em; }
h3 { margin: 1.4em 0 0.4em; font-size: 1.05em; }
nav a { margin-right: 1.2em; }
.lede, .muted, caption, .note { color: #555; }
table { border-collapse: collapse; margin: 0.6em 0 1em; font-size: 0.9em; }
caption { caption-side: bottom; text-align: left; padding-top: 0.4em; font-size: 0.9em; }
th, td { border: 1px solid #d0d4da; padding: 0.25em 0.55em; vertical-align: top; }
th { background: #f0f2f5; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.holds td.verdict { background: #d8f3dc; color: #1b5e20; font-weight: 600; }
tr.fails td.verdict { background: #fde2e1; color: #9b1c1c; font-weight: 600; }
tr.inconclusive td.verdict { background: #fff3cd; color: #7a5a00; font-weight: 600; }
tr.unmeasured td.verdict { background: #eceff1; color: #455a64; }
td.why { font-size: 0.92em; max-width: 38em; }
ul.lines li { margin: 0.15em 0; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #e3e6ea; }
figcaption { color: #555; font-size: 0.9em; }
code { font-size: 0.92em; }
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


@dataclass(frozen=True)
class Plot:
    """A picture for the page: a title and PNG bytes (or, where it could not be drawn, why)."""

    title: str
    png: bytes | None = None
    missing: str = ""


def table(
    head: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    numeric: Sequence[int] = (),
    row_classes: Sequence[str] | None = None,
    cell_classes: dict[int, str] | None = None,
    caption: str = "",
    table_id: str = "",
) -> str:
    """An HTML table of plain-text cells (escaped here)."""
    ident = f' id="{_e(table_id)}"' if table_id else ""
    out = [f"<table{ident}>"]
    if caption:
        out.append(f"<caption>{_e(caption)}</caption>")
    out.append("<thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr></thead>")
    out.append("<tbody>")
    for i, row in enumerate(rows):
        cls = f' class="{_e(row_classes[i])}"' if row_classes and row_classes[i] else ""
        cells = []
        for j, value in enumerate(row):
            names = (["num"] if j in numeric else []) + (
                [cell_classes[j]] if cell_classes and j in cell_classes else []
            )
            attr = f' class="{" ".join(names)}"' if names else ""
            cells.append(f"<td{attr}>{_e(value)}</td>")
        out.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _lines(lines: Sequence[str]) -> str:
    if not lines:
        return ""
    return '<ul class="lines">' + "".join(f"<li>{_e(x)}</li>" for x in lines) + "</ul>"


# -- sections -----------------------------------------------------------------------------------


def reports_section(loaded: Sequence[tuple[Path, R.Report]]) -> str:
    rows = []
    for path, rep in loaded:
        env = rep.environment
        device = env.get("gpu_name") or env.get("device_name") or env.get("device")
        backbones = rep.backbones or sorted({m.backbone for m in rep.maxbatch})
        rows.append(
            [
                path.name,
                rep.kind,
                rep.created_utc,
                machine.class_id(env),
                f"{env.get('device')} ({device})",
                ", ".join(backbones) or ABSENT,
            ]
        )
    head = ("file", "kind", "created (UTC)", "machine class", "device", "backbones")
    return '<section id="reports"><h2>Reports read</h2>' + table(head, rows) + "</section>"


def settings_section(loaded: Sequence[tuple[Path, R.Report]]) -> str:
    """Each report's settings, stopping rule, device limits (the compute ceiling beside the
    theoretical peak) and notes."""
    from emobench.render.compare import limits_lines, settings_line, stopping_line

    parts = ['<section id="settings"><h2>Settings and device limits</h2>']
    for path, rep in loaded:
        env = rep.environment
        lines = [f"machine: {machine.describe(env)} (class {machine.class_id(env)})"]
        if rep.kind in TIMING_KINDS:
            lines += [settings_line(rep), stopping_line(rep), *limits_lines(rep)]
        else:
            shown = {k: v for k, v in rep.config.items() if not isinstance(v, dict | list)}
            lines.append("settings: " + ", ".join(f"{k} {v}" for k, v in shown.items()))
        lines += [f"note: {n}" for n in rep.notes]
        lines.append(f"wall time: {rep.wall_time_s:.1f} s")
        parts.append(f"<h3>{_e(path.name)} ({_e(rep.kind)})</h3>" + _lines(lines))
    parts.append("</section>")
    return "\n".join(parts)


def _ratio_text(rep: R.Report, row: R.MetricRow) -> str:
    """The ratio with the paired rounds' 95% interval where the run has one."""
    text = fmt_ratio(row.ratio)
    paired = rep.paired_ratio(row.backbone, row.key)
    if paired is not None and paired.ci_low is not None and paired.ci_high is not None:
        text += f" [{paired.ci_low:.2f}, {paired.ci_high:.2f}]"
    return text


def comparison_tables(rep: R.Report, path: Path) -> str:
    """The compare table of each backbone of one timing report, as the terminal shows it; a
    report of runtime variants: a section per variant, then the runtimes side by side."""
    from emobench.render.compare import labelled

    if not labelled(rep):
        return _variant_tables(rep, path)
    parts = [
        f'<section class="variant"><h3>{_e(path.name)}: {_e(variant)}</h3>\n'
        + _variant_tables(rep.view(variant), path, variant)
        + "\n</section>"
        for variant in rep.variants
    ]
    parts.append(runtimes_html(rep, path))
    return "\n".join(parts)


def runtimes_html(rep: R.Report, path: Path) -> str:
    """The runtime variants side by side, their settings and the latency against torch."""
    from emobench.render.compare import (
        RUNTIMES_CAPTION,
        runtime_cells,
        runtime_ratio_lines,
        runtime_settings_lines,
    )

    head, rows = runtime_cells(rep)
    return (
        f"<h3>runtimes side by side ({_e(path.name)})</h3>"
        + table(head, rows, numeric=tuple(range(3, 9)), caption=RUNTIMES_CAPTION)
        + _lines(runtime_settings_lines(rep) + runtime_ratio_lines(rep))
    )


def _variant_tables(rep: R.Report, path: Path, variant: str | None = None) -> str:
    """The compare tables of a report holding one variant (`variant`: its label, in the
    headings; None: plain torch, headed as before variants existed)."""
    from emobench.render.compare import _ci_text, metric_cell

    rows_all = R.metric_rows(rep)
    parts = []
    named = "" if variant is None else f" ({variant})"
    for backbone in rep.backbones:
        up, dn = rep.result(backbone, R.UPSCALE), rep.result(backbone, R.DIRECT)
        rows = []
        for row in (r for r in rows_all if r.backbone == backbone):
            rows.append(
                [
                    row.label + (" ~" if row.noisy else ""),
                    metric_cell(row, row.upscale224) + _ci_text(up, row),
                    metric_cell(row, row.direct48) + _ci_text(dn, row),
                    _ratio_text(rep, row),
                ]
            )
        parts.append(
            f"<h3>{_e(backbone + named)}: upscale224 vs direct48 ({_e(path.name)}, "
            f"{_e(machine.class_id(rep.environment))})</h3>"
            + table(
                ("metric", "upscale224", "direct48", "ratio [95% CI]"),
                rows,
                numeric=(1, 2, 3),
                caption="ratio = upscale224 / direct48, oriented so > 1 means direct48 wins; "
                "[low, high]: the paired rounds' 95% interval of the ratio; ± the median's 95% "
                f"interval; ~ noisy (IQR/median > 10%); {ABSENT} not measurable on this device",
            )
        )
    return "\n".join(parts)


def comparison_section(
    loaded: Sequence[tuple[Path, R.Report]], tradeoff: object | None = None
) -> str:
    """Every timing report's compare tables; maxbatch reports merged; the speed/accuracy
    trade-off where a finetune report is among them."""
    parts = ['<section id="comparison"><h2>Comparison</h2>']
    for path, rep in loaded:
        if rep.kind in TIMING_KINDS:
            parts.append(comparison_tables(rep, path))
    maxbatch = [(p, r) for p, r in loaded if r.kind == "maxbatch"]
    if maxbatch:
        from emobench.readout.merge import MAXBATCH_COLUMNS, merged_rows

        rows = [
            [r.backbone, r.pipeline, r.machine, r.source]
            + [fmt_value(r.values.get(k), u) for k, u in MAXBATCH_COLUMNS]
            for r in merged_rows(maxbatch)
        ]
        head = ["backbone", "pipeline", "machine", "report", *(k for k, _ in MAXBATCH_COLUMNS)]
        parts.append("<h3>largest batch</h3>" + table(head, rows, numeric=(4, 5, 6, 7, 8)))
    if tradeoff is not None:
        parts.append(_tradeoff_html(tradeoff))
    parts.append("</section>")
    return "\n".join(parts)


def _tradeoff_html(tradeoff: object) -> str:
    from emobench.readout.tradeoff import TRADEOFF_COLUMNS, Tradeoff
    from emobench.render.readout import tradeoff_cells, tradeoff_head, tradeoff_lines

    assert isinstance(tradeoff, Tradeoff)
    rows = tradeoff_cells(tradeoff)
    head = tradeoff_head(tradeoff)
    numeric = tuple(range(len(head) - len(TRADEOFF_COLUMNS), len(head)))
    return (
        "<h3>speed against accuracy</h3>"
        + table(head, rows, numeric=numeric, caption="* on the accuracy/latency Pareto front")
        + _lines(tradeoff_lines(tradeoff))
    )


def claims_section(claims: object | None, missing: str = "") -> str:
    """The claims with their 95% intervals and verdicts, one row per backbone and machine
    class, the summary across classes, the classes and notes."""
    parts = ['<section id="claims"><h2>The write-up\'s claims</h2>']
    if claims is None:
        parts.append(f'<p class="note">{_e(missing or "no claims evaluated")}</p></section>')
        return "\n".join(parts)
    from emobench.render.readout import CLAIMS_HEAD, claim_cells, claims_summary_lines

    verdicts = getattr(claims, "verdicts", [])
    rows = [claim_cells(v) for v in verdicts]
    verdict_col = CLAIMS_HEAD.index("verdict")
    measured_col = CLAIMS_HEAD.index("measured [95% CI]")
    parts.append(
        '<p class="muted">holds: the whole 95% interval of the measured figure at or above the '
        "threshold (claimed x 0.9); does not hold: wholly below it; inconclusive: it straddles "
        "the threshold (the row says what would settle it).</p>"
    )
    parts.append(
        table(
            CLAIMS_HEAD,
            rows,
            numeric=(CLAIMS_HEAD.index("claimed"), CLAIMS_HEAD.index("threshold"), measured_col),
            row_classes=[VERDICT_CLASSES.get(v.verdict, "") for v in verdicts],
            cell_classes={verdict_col: "verdict", len(CLAIMS_HEAD) - 1: "why"},
            table_id="claims-table",
        )
    )
    summary = claims_summary_lines(claims)  # type: ignore[arg-type]
    if summary:
        parts.append("<h3>across machine classes</h3>" + _lines(summary))
    classes = [
        f"{c.id}: {c.description} ({', '.join(c.sources)})" for c in getattr(claims, "classes", [])
    ]
    parts.append(_lines(classes + list(getattr(claims, "notes", []))))
    parts.append("</section>")
    return "\n".join(parts)


def plots_section(plots: Sequence[Plot]) -> str:
    parts = ['<section id="plots"><h2>Plots</h2>']
    for plot in plots:
        if plot.png is None:
            parts.append(f'<p class="note">{_e(plot.title)}: {_e(plot.missing)}</p>')
            continue
        data = base64.b64encode(plot.png).decode("ascii")
        parts.append(
            f'<figure><img alt="{_e(plot.title)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_e(plot.title)}</figcaption></figure>"
        )
    parts.append("</section>")
    return "\n".join(parts)


def classes_section(loaded: Sequence[tuple[Path, R.Report]]) -> str:
    """For reports of two or more machine classes: their ratios side by side (several reports of
    one class: the median of their ratios) and how far they spread."""
    from emobench.readout.merge import class_ratios, shows_variants

    ratios = class_ratios(list(loaded))
    if ratios is None:
        return ""
    variants = shows_variants(ratios.rows)
    labels = ["backbone", *(["variant"] if variants else []), "metric"]
    head = [*labels, *(c.id for c in ratios.classes), "spread"]
    rows = [
        [
            r.backbone,
            *([r.variant] if variants else []),
            r.label,
            *(fmt_ratio(r.ratios.get(c.id)) for c in ratios.classes),
            fmt_ratio(r.spread),
        ]
        for r in ratios.rows
    ]
    classes = [f"{c.id}: {c.description} ({', '.join(c.sources)})" for c in ratios.classes]
    return (
        '<section id="classes"><h2>By machine class</h2>'
        + table(
            head,
            rows,
            numeric=tuple(range(len(labels), len(head))),
            caption="upscale224 / direct48 (> 1: direct48 wins) per machine class; spread = "
            "largest / smallest ratio across classes",
        )
        + _lines(classes)
        + "</section>"
    )


# -- the page -------------------------------------------------------------------------------------


def report_page(
    loaded: Sequence[tuple[Path, R.Report]],
    *,
    claims: object | None = None,
    claims_missing: str = "",
    plots: Sequence[Plot] = (),
    tradeoff: object | None = None,
    generated_utc: str = "",
) -> str:
    """The whole page: reports read, claims, plots, per-class ratios, the comparison tables,
    settings and device limits."""
    classes = {machine.class_id(rep.environment) for _, rep in loaded}
    per_class = classes_section(loaded)
    sections = [  # the answers first, the detail behind them after
        ("reports", "Reports", reports_section(loaded)),
        ("claims", "Claims", claims_section(claims, claims_missing)),
        ("plots", "Plots", plots_section(plots) if plots else ""),
        ("classes", "By machine class", per_class),
        ("comparison", "Comparison", comparison_section(loaded, tradeoff)),
        ("settings", "Settings", settings_section(loaded)),
    ]
    nav = " ".join(f'<a href="#{a}">{_e(t)}</a>' for a, t, body in sections if body)
    when = f", written {generated_utc}" if generated_utc else ""
    lede = (
        f"{len(loaded)} report{'s' * (len(loaded) != 1)} from {len(classes)} machine "
        f"class{'es' * (len(classes) != 1)}{when} by {GENERATOR}. upscale224: 48x48 images "
        "upscaled to 224 for an ImageNet backbone; direct48: the backbone adapted to 48x48."
    )
    body = "\n".join(b for _, _, b in sections if b)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="generator" content="{_e(GENERATOR)}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>emobench report: {_e(', '.join(p.name for p, _ in loaded))}</title>\n"
        f"<style>{STYLE}</style>\n</head>\n<body>\n"
        "<h1>emobench report</h1>\n"
        f'<p class="lede">{_e(lede)}</p>\n<nav>{nav}</nav>\n{body}\n'
        "</body>\n</html>\n"
    )
