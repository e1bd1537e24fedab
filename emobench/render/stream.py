"""`stream` reports on screen and in Markdown: the settings (and whether the runs were MLPerf-
style or bounded probes), the headline (the most streams per pipeline, their ratio, single-
stream p90), and a table per pipeline and scenario with every LoadGen run."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from emobench.names import TORCH_RUNTIME
from emobench.render.format import ABSENT, cell
from emobench.results import Report
from emobench.results.stream import LoadgenRun, StreamResult, StreamSummary

DIRECT = "direct48"
UPSCALE = "upscale224"
MLPERF_TEXT = "MLPerf-style run"
BOUNDED_TEXT = "bounded probes, not MLPerf-compliant"
PERCENTILE_OF = {"single-stream": 0.9, "multi-stream": 0.99, "server": 0.99}
# what LoadGen's achieved rate counts: a server sample is a frame (its faces batched by the
# system under test), an offline sample one image; single and multi stream count queries
RATE_UNIT = {"server": "frames/s", "offline": "images/s"}
AT_MAX = "◀ max"


# -- the figures the tables read ---------------------------------------------------------------


def server_run(result: StreamResult) -> LoadgenRun | None:
    """The server run the headline reads: the VALID one at the most streams; where none is
    valid (0 streams), the run at the fewest streams; None without runs."""
    runs = result.runs
    if not runs:
        return None
    if result.max_streams:
        at = [r for r in runs if r.valid and r.streams == result.max_streams]
        if at:
            return at[-1]
    return min(runs, key=lambda r: r.streams if r.streams is not None else 2**63)


def main_run(result: StreamResult) -> LoadgenRun | None:
    """The run a scenario's figure is read from: server's `server_run`, else its last run."""
    if result.scenario == "server":
        return server_run(result)
    return result.runs[-1] if result.runs else None


def ceiling_of(report: Report) -> int | None:
    """The search's --max-streams ceiling, as the report's config records it."""
    value = report.config.get("max_streams")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def is_lower_bound(
    result: StreamResult, summary: StreamSummary, ceiling: int | None = None
) -> bool:
    """Whether a server result's max streams is only a lower bound: its search stopped with
    more than one stream unresolved, reached the --max-streams ceiling with every probe valid,
    or was cut by --time-budget (the report's notes say so)."""
    if result.scenario != "server" or not result.max_streams or result.error:
        return False
    if result.search_resolution is not None and result.search_resolution > 1:
        return True
    if ceiling is not None and result.max_streams >= ceiling:
        return True
    tag = f"{result.backbone}/{result.pipeline}: "
    return any(n.startswith(tag) and "cut by --time-budget" in n for n in summary.notes)


def percentile_ms(run: LoadgenRun | None, percentile: float) -> float | None:
    if run is None or run.latency_ms is None:
        return None
    return run.latency_ms.p90 if percentile == 0.9 else run.latency_ms.p99


@dataclass(frozen=True)
class Headline:
    """One pipeline's figures across the report's scenarios (None: not measured)."""

    backbone: str
    pipeline: str
    runtime: str
    max_streams: int | None
    server_p99_ms: float | None  # at max streams (at the fewest probed, where none is valid)
    single_p90_ms: float | None
    error: str | None = None
    lower_bound: bool = False  # max streams is a lower bound (see is_lower_bound)


def headlines(summary: StreamSummary, ceiling: int | None = None) -> list[Headline]:
    """Per backbone, runtime and pipeline, in the order measured (`ceiling`: the search's
    --max-streams, a max streams that reached it being a lower bound)."""
    keys = dict.fromkeys((r.backbone, r.runtime, r.pipeline) for r in summary.results)
    out = []
    for backbone, runtime, pipeline in keys:
        mine = [
            r
            for r in summary.results
            if (r.backbone, r.runtime, r.pipeline) == (backbone, runtime, pipeline)
        ]
        server = next((r for r in mine if r.scenario == "server"), None)
        single = next((r for r in mine if r.scenario == "single-stream"), None)
        errors = [f"{r.scenario}: {r.error}" for r in mine if r.error]
        out.append(
            Headline(
                backbone,
                pipeline,
                runtime,
                None if server is None or server.error else server.max_streams,
                None if server is None else percentile_ms(server_run(server), 0.99),
                None if single is None else percentile_ms(main_run(single), 0.9),
                "; ".join(errors) or None,
                server is not None and is_lower_bound(server, summary, ceiling),
            )
        )
    return out


def streams_ratio(heads: Iterable[Headline], backbone: str, runtime: str) -> float | None:
    """Max streams direct48 / upscale224; None when either is 0 or not measured, or when
    upscale224's is a lower bound (the ratio is then not bounded below). Where direct48's is a
    lower bound, so is the ratio (`ratio_lines` says so)."""
    by = {h.pipeline: h for h in heads if (h.backbone, h.runtime) == (backbone, runtime)}
    up, dn = by.get(UPSCALE), by.get(DIRECT)
    if up is None or dn is None or not up.max_streams or not dn.max_streams or up.lower_bound:
        return None
    return dn.max_streams / up.max_streams


# -- text --------------------------------------------------------------------------------------


def mode_text(summary: StreamSummary, config: dict[str, object] | None = None) -> str:
    """Which rules the runs followed: MLPerf's minimums, or bounded probes (and how long)."""
    if summary.mlperf:
        return f"{MLPERF_TEXT} (the rules' minimum duration and query counts, early stopping)"
    probe = (config or {}).get("probe_s")
    each = f"about {probe:g} s per LoadGen run; " if isinstance(probe, (int, float)) else ""
    return f"{BOUNDED_TEXT} ({each}--mlperf applies the rules' minimums)"


def settings_line(report: Report) -> str:
    s = _summary(report)
    c = report.config
    own = c.get("deadline_ms") is not None
    why = "--deadline-ms" if own else f"one frame at {s.fps:g} fps"
    faces = f"{s.faces_per_frame} face{'s' if s.faces_per_frame != 1 else ''} per frame"
    runtime = c.get("runtime", TORCH_RUNTIME)
    device = c.get("resolved_device") or c.get("device") or report.environment.get("device")
    budget = c.get("time_budget_s")
    budget_text = f", time budget {budget:g} s" if isinstance(budget, (int, float)) else ""
    return (
        f"settings: {s.fps:g} fps, deadline {s.deadline_ms:.1f} ms ({why}), {faces}, dynamic "
        f"batching up to {s.max_batch} images within a {s.batch_window_ms:g} ms window; "
        f"{runtime} on {device}; LoadGen {s.loadgen_version}{budget_text}; "
        f"{mode_text(s, c)}"
    )


def _summary(report: Report) -> StreamSummary:
    if report.stream is None:
        raise ValueError(f"a {report.kind} report holds no stream results")
    return report.stream


def _ms(value: float | None) -> str:
    return ABSENT if value is None else cell(value)


def _streams(value: int | None, lower_bound: bool = False) -> str:
    if value is None:
        return ABSENT
    return f"≥{value:,}" if lower_bound else f"{value:,}"


def evidence_text(run: LoadgenRun) -> str:
    """What a verdict rests on: '60 frames; LoadGen: INVALID, early stopping: <its text>' (the
    frames, or an offline run's queries, the percentile is read over; LoadGen's own verdict,
    early stopping included, where recorded)."""
    one, many = ("query", "queries") if run.scenario == "offline" else ("frame", "frames")
    parts = [f"{run.queries:,} {one if run.queries == 1 else many}"]
    if run.loadgen_valid is not None:
        own = f"LoadGen: {_valid_word(run.loadgen_valid)}"
        if run.early_stopping:
            own += f", early stopping: {run.early_stopping}"
        elif run.early_stopping_met is not None:
            own += f", early stopping {'met' if run.early_stopping_met else 'not met'}"
        parts.append(own)
    return "; ".join(parts)


def verdict_text(run: LoadgenRun) -> str:
    """'VALID (60 frames; LoadGen: INVALID, early stopping: ...)', or INVALID (the same) and
    why: the frames the percentile rests on and LoadGen's own verdict (early stopping
    included, which a bounded probe of a few seconds cannot meet) beside the run's."""
    head = f"{_valid_word(run.valid)} ({evidence_text(run)})"
    why = "; ".join(run.invalid_reasons)
    return f"{head}: {why}" if why and not run.valid else head


def _valid_word(valid: bool) -> str:
    return "VALID" if valid else "INVALID"


def batches_text(run: LoadgenRun) -> str:
    """'1x120, 2x40, 8x3': batch size x batches formed, by size; — when none were recorded."""
    if not run.batch_sizes:
        return ABSENT
    pairs = sorted(run.batch_sizes.items(), key=lambda kv: int(kv[0]) if kv[0].isdigit() else 0)
    return ", ".join(f"{size}x{count:,}" for size, count in pairs)


def late_text(run: LoadgenRun) -> str:
    if run.queries <= 0:
        return f"{run.late:,}"
    return f"{run.late:,} ({run.late / run.queries:.1%})"


def rate_text(run: LoadgenRun) -> str:
    if run.achieved_qps is None:
        return ABSENT
    return f"{cell(run.achieved_qps)} {RATE_UNIT.get(run.scenario, 'queries/s')}"


def _target_text(run: LoadgenRun) -> str:
    if run.target_qps is None:
        return ABSENT
    return f"{cell(run.target_qps)} frames/s"


RUN_HEAD = (
    "result",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "max ms",
    "achieved",
    "late",
    "batches formed",
)
SERVER_HEAD = ("streams", "target rate")


def run_cells(result: StreamResult, run: LoadgenRun) -> list[str]:
    """One LoadGen run as a table row, in (server: SERVER_HEAD +) RUN_HEAD's order."""
    lat = run.latency_ms
    cells = [
        verdict_text(run),
        _ms(lat.p50 if lat else None),
        _ms(lat.p90 if lat else None),
        _ms(lat.p99 if lat else None),
        _ms(lat.max if lat else None),
        rate_text(run),
        late_text(run),
        batches_text(run),
    ]
    if result.scenario != "server":
        return cells
    mark = ""
    if result.max_streams and run.valid and run.streams == result.max_streams:
        mark = f" {AT_MAX}"
    return [_streams(run.streams) + mark, _target_text(run), *cells]


def result_title(result: StreamResult, deadline_ms: float, lower_bound: bool = False) -> str:
    """'vgg16 direct48 (torch), server: 3 streams within 33.3 ms at p99' ('≥3 streams' where
    max streams is a lower bound)."""
    head = f"{result.backbone} {result.pipeline} ({result.runtime}), {result.scenario}"
    if result.error:
        return f"{head}: failed"
    run = main_run(result)
    if result.scenario == "server":
        if result.max_streams is None:
            return f"{head}: max streams not found"
        n = _streams(result.max_streams, lower_bound)
        plural = "s" if result.max_streams != 1 else ""
        return f"{head}: {n} stream{plural} within {deadline_ms:.1f} ms at p99"
    if result.scenario == "offline" or run is None:
        return f"{head}: {rate_text(run) if run else ABSENT}"
    pct = PERCENTILE_OF[result.scenario]
    return f"{head}: p{pct * 100:g} {_ms(percentile_ms(run, pct))} ms"


def result_notes(result: StreamResult, lower_bound: bool = False) -> list[str]:
    notes = []
    if result.error:
        notes.append(f"error: {result.error}")
    step = result.search_resolution
    if result.scenario == "server" and step is not None:
        plural = "s" if step != 1 else ""
        bound = " (max streams is a lower bound)" if lower_bound else ""
        notes.append(f"search resolution: {step:,} stream{plural}{bound}")
    dirs = [r.log_dir for r in result.runs if r.log_dir]
    if len(dirs) == 1:
        notes.append(f"LoadGen's logs: {dirs[0]}")
    elif dirs:
        notes.append(f"LoadGen's logs: {os.path.commonpath(dirs)} ({len(dirs)} runs)")
    return notes


def headline_head(summary: StreamSummary) -> tuple[str, ...]:
    return (
        "backbone",
        "pipeline",
        "runtime",
        f"max streams at {summary.fps:g} fps (p99 <= {summary.deadline_ms:.1f} ms)",
        "server p99 ms",
        "single-stream p90 ms",
    )


def headline_cells(head: Headline) -> list[str]:
    return [
        head.backbone,
        head.pipeline,
        head.runtime,
        _streams(head.max_streams, head.lower_bound),
        _ms(head.server_p99_ms),
        _ms(head.single_p90_ms),
    ]


def ratio_lines(summary: StreamSummary, ceiling: int | None = None) -> list[str]:
    heads = headlines(summary, ceiling)
    out = []
    for backbone, runtime in dict.fromkeys((h.backbone, h.runtime) for h in heads):
        ratio = streams_ratio(heads, backbone, runtime)
        by = {h.pipeline: h for h in heads if (h.backbone, h.runtime) == (backbone, runtime)}
        up, dn = by.get(UPSCALE), by.get(DIRECT)
        value = ABSENT if ratio is None else f"{ratio:.2f}x"
        why = ""
        if up is not None and up.max_streams and up.lower_bound:
            why = " (upscale224's max streams is a lower bound: the ratio is not known)"
        elif ratio is None:
            why = " (a pipeline serves no stream, or was not measured)"
        elif dn is not None and dn.lower_bound:
            value, why = f"≥{value}", " indicative (a lower bound: so is direct48's max streams)"
        out.append(f"{backbone} ({runtime}): max streams ratio direct48 / upscale224 {value}{why}")
    return out


CAPTION = (
    "server: the most streams whose LoadGen run is VALID with p99 within the deadline "
    f"({AT_MAX}), a pessimistic estimate (LoadGen's Poisson arrivals are burstier than "
    "periodic cameras); server p99 is read there (at the fewest streams probed where none is "
    "served); ≥N = a lower bound (the search was cut or reached --max-streams); late = "
    "queries over the deadline; batches formed = batch size x count; a bounded probe is VALID "
    "on duration, query count and latency bound, beside it the frames it rests on and "
    f"LoadGen's own verdict (early stopping too); {ABSENT} = not measured"
)


# -- the terminal ------------------------------------------------------------------------------


def headline_table(report: Report) -> Table:
    summary = _summary(report)
    ceiling = ceiling_of(report)
    table = Table(title="max streams per pipeline", caption=CAPTION, caption_justify="left")
    for col in headline_head(summary):
        table.add_column(
            col, justify="left" if col in ("backbone", "pipeline", "runtime") else "right"
        )
    for head in headlines(summary, ceiling):
        table.add_row(*(escape(c) for c in headline_cells(head)))
    return table


def result_table(result: StreamResult, deadline_ms: float, lower_bound: bool = False) -> Table:
    table = Table(title=escape(result_title(result, deadline_ms, lower_bound)))
    head = (*SERVER_HEAD, *RUN_HEAD) if result.scenario == "server" else RUN_HEAD
    for col in head:
        table.add_column(col, justify="left" if col in ("result", "batches formed") else "right")
    for run in result.runs:
        table.add_row(*(escape(c) for c in run_cells(result, run)))
    return table


def render_stream(report: Report, console: Console) -> None:
    summary = _summary(report)

    def line(text: str) -> None:
        console.print(text, markup=False, highlight=False, soft_wrap=True)

    ceiling = ceiling_of(report)
    line(settings_line(report))
    for result in summary.results:
        bound = is_lower_bound(result, summary, ceiling)
        console.print(result_table(result, summary.deadline_ms, bound))
        for note in result_notes(result, bound):
            line(note)
    console.print(headline_table(report))
    for text in ratio_lines(summary, ceiling):
        line(text)
    for note in [*summary.notes, *report.notes]:
        line(f"note: {note}")


# -- Markdown ----------------------------------------------------------------------------------


def _md_row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _md_table(head: tuple[str, ...], rows: list[list[str]]) -> list[str]:
    return [_md_row(head), "|" + "---|" * len(head), *(_md_row(r) for r in rows)]


def stream_markdown(report: Report) -> str:
    """The headline table, the ratio lines, then every pipeline and scenario's runs, with the
    settings (and MLPerf-style or bounded) as a bullet list."""
    summary = _summary(report)
    ceiling = ceiling_of(report)
    heads = headlines(summary, ceiling)
    lines = _md_table(headline_head(summary), [headline_cells(h) for h in heads])
    lines += ["", f"* {settings_line(report).removeprefix('settings: ')}"]
    lines += [f"* {text}" for text in ratio_lines(summary, ceiling)]
    lines += [f"* {note}" for note in [*summary.notes, *report.notes]]
    for result in summary.results:
        head = (*SERVER_HEAD, *RUN_HEAD) if result.scenario == "server" else RUN_HEAD
        bound = is_lower_bound(result, summary, ceiling)
        lines += ["", f"**{result_title(result, summary.deadline_ms, bound)}**", ""]
        lines += _md_table(head, [run_cells(result, run) for run in result.runs])
        notes = result_notes(result, bound)
        lines += ["", *(f"* {note}" for note in notes)] if notes else []
    lines += ["", CAPTION]
    return "\n".join(lines) + "\n"
