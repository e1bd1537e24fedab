"""Benchmark reports on screen: the compare table with its settings, stopping and machine lines,
the max-batch table and the fine-tune table."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from emobench import machine
from emobench.names import TORCH_RUNTIME, variant_label
from emobench.render.format import ABSENT, cell, fmt_ratio, fmt_value, ratio_bar
from emobench.results import (
    MetricRow,
    PipelineResult,
    Report,
    metric_rows,
    stats_for,
)
from emobench.results.measurements import Parity
from emobench.results.metrics import ABOVE_CEILING, CEILING_KEY
from emobench.stats.summary import MIN_SAMPLES_FOR


def _machine_line(report: Report) -> str:
    env = report.environment
    device = env.get("gpu_name") or env.get("device_name") or env.get("device")
    return (
        f"{env.get('device')} ({device}), torch {env.get('torch')}, "
        f"{env.get('num_threads')} threads, machine class {machine.class_id(env)}"
    )


def compare_table(
    report: Report, backbone: str, rows: list[MetricRow], variant: str | None = None
) -> Table:
    """One backbone's metrics, both pipelines and their ratio; `variant` (a label) names the
    runtime variant in the title when the report holds more than plain torch."""
    named = backbone if variant is None else f"{backbone} ({variant})"
    table = Table(
        title=f"{named}: upscale224 vs direct48 on {_machine_line(report)}",
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
            metric_cell(row, row.upscale224) + _ci_text(up, row),
            metric_cell(row, row.direct48) + _ci_text(dn, row),
            fmt_ratio(row.ratio),
            ratio_bar(row.ratio),
        )
    return table


def metric_cell(row: MetricRow, value: float | None) -> str:
    """A row's value as tables show it: a fraction of the compute ceiling over 1 reads "above
    the measured ceiling" (the report keeps the raw number), never a fraction over 100%."""
    if row.key == CEILING_KEY and value is not None and value > 1:
        return ABOVE_CEILING
    return fmt_value(value, row.unit)


def limits_lines(report: Report) -> list[str]:
    """The device limits measured in the run: the compute ceiling with the kernel that set it
    and the theoretical peak beside it, then the matmul and copy figures."""
    lim = report.limits
    if lim is None:
        return []
    math_mode = lim.matmul_math or lim.matmul_dtype
    lines = []
    if lim.ceiling_flops_per_s is not None:
        matmuls = [k for k in lim.kernels if k.kernel.startswith("matmul")]
        convs = len(lim.kernels) - len(matmuls)
        largest = max((int(k.kernel.split("n=")[1]) for k in matmuls), default=lim.matmul_n)
        backend = f", {lim.conv_backend}" if lim.conv_backend else ""
        took = f"; {lim.elapsed_s:.1f} s" if lim.elapsed_s is not None else ""
        lines.append(
            f"compute ceiling measured in this run: {fmt_value(lim.ceiling_flops_per_s, 'FLOP/s')}"
            f" ({math_mode}{backend}), set by {lim.ceiling_kernel}: the best of {len(matmuls)} "
            f"matmul sizes up to n={largest} and {convs} convolution{'s' * (convs != 1)} with "
            f"the models' own shapes{took}"
        )
        lines.append(peak_line(lim.ceiling_flops_per_s, lim.peak_flops_per_s, lim.peak_how))
        if lim.ceiling_note:
            lines.append(f"compute ceiling: {lim.ceiling_note}")
    extra = ""
    if lim.host_copy_bytes_per_s is not None and lim.h2d_bytes_per_s is not None:
        extra = (
            f", host memcpy {fmt_value(lim.host_copy_bytes_per_s, 'bytes/s')}, pinned "
            f"host-to-device {fmt_value(lim.h2d_bytes_per_s, 'bytes/s')}"
        )
    lines.append(
        f"device limits measured in this run: {math_mode} matmul "
        f"{fmt_value(lim.matmul_flops_per_s, 'FLOP/s')} (n={lim.matmul_n}), copy bandwidth "
        f"{fmt_value(lim.copy_bytes_per_s, 'bytes/s')} ({fmt_value(lim.copy_bytes, 'bytes')})"
        + extra
    )
    above = [
        _where(report, r)
        for r in report.results
        if r.efficiency is not None and r.efficiency.above_ceiling
    ]
    if above:
        lines.append(
            f"{', '.join(above)}: {ABOVE_CEILING} (the model's layers beat every kernel timed; "
            "the report keeps the raw fraction): a longer --limits-time times more kernels"
        )
    return lines


def peak_line(ceiling: float | None, peak: float | None, how: str | None) -> str:
    """The theoretical peak as such, next to the measured ceiling, or why there is none."""
    if peak is None:
        return f"theoretical peak: {how or 'not recorded'}"
    line = f"theoretical peak (not measured): {fmt_value(peak, 'FLOP/s')} = {how}"
    if ceiling is not None:
        line += f"; the measured ceiling is {ceiling / peak:.0%} of it"
        if ceiling > peak:
            line += " (above: the cores ran faster than the clock read)"
    return line


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


def labelled(report: Report) -> bool:
    """Whether the report's rows name their runtime variant: it holds more than plain torch."""
    return report.variants != [TORCH_RUNTIME]


def _where(report: Report, r: PipelineResult) -> str:
    """'vgg16/direct48', with ' (onnxruntime int8)' where the report holds other variants."""
    return f"{r.backbone}/{r.pipeline}" + (f" ({r.variant})" if labelled(report) else "")


def render_compare(report: Report, console: Console) -> None:
    """Each variant's compare tables (a report of plain torch: exactly as before variants
    existed), the runtimes side by side where there are other variants, then the run's lines."""
    if not labelled(report):
        rows = metric_rows(report)
        for backbone in report.backbones:
            console.print(
                compare_table(report, backbone, [r for r in rows if r.backbone == backbone])
            )
    else:
        for variant in report.variants:
            view = report.view(variant)
            rows = metric_rows(view)
            for backbone in view.backbones:
                mine = [r for r in rows if r.backbone == backbone]
                console.print(compare_table(view, backbone, mine, variant))
        console.print(runtimes_table(report))
        for text in runtime_settings_lines(report) + runtime_ratio_lines(report):
            console.print(text, markup=False, highlight=False, soft_wrap=True)
    console.print(settings_line(report))
    console.print(stopping_line(report))
    if (line := percentile_line(report)) is not None:
        console.print(line)
    for line in limits_lines(report):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    for r in report.results:
        if r.error:
            console.print(f"[red]{_where(report, r)}: {r.error}[/red]")
    for note in report.notes:
        console.print(note)
    console.print(f"wall time: {report.wall_time_s:.1f} s")


# -- runtime variants side by side -------------------------------------------------------------

MB = 1e6  # file sizes in MB, as file managers and app stores state them
MIB = 2**20  # resident memory in MiB, as ps and top state it


def _largest(report: Report, attr: str) -> int | None:
    """The largest batch size any result timed in `attr` (throughput or end_to_end)."""
    return max((b.batch_size for r in report.results for b in getattr(r, attr)), default=None)


def _runtimes_head(report: Report) -> list[str]:
    tp, e2e = _largest(report, "throughput"), _largest(report, "end_to_end")
    return [
        "variant",
        "backbone",
        "pipeline",
        "latency b1 median (ms) [95% CI]",
        f"throughput b{tp} (images/s)" if tp else "throughput (images/s)",
        f"end to end b{e2e} (images/s)" if e2e else "end to end (images/s)",
        "file size (MB)",
        "cold start (ms)",
        "peak RSS (MiB)",
        "parity (max |diff|, top-1)",
        "note",
    ]


def _ms(value: float) -> str:
    """A latency with enough digits that its interval's ends differ from it."""
    if abs(value) >= 100:
        return f"{value:,.1f}"
    return f"{value:.2f}" if abs(value) >= 1 else f"{value:.3g}"


def _latency_cell(r: PipelineResult) -> str:
    if r.latency is None:
        return ABSENT
    stats = r.latency.stats
    text = _ms(stats.median)
    if stats.median_ci_low is not None and stats.median_ci_high is not None:
        text += f" [{_ms(stats.median_ci_low)}, {_ms(stats.median_ci_high)}]"
    return text


def _at_batch(r: PipelineResult, attr: str, batch: int | None) -> str:
    found = next((b for b in getattr(r, attr) if b.batch_size == batch), None)
    return ABSENT if found is None else cell(found.images_per_s)


def parity_cell(parity: Parity | None, quantize: str | None = None) -> str:
    """'3.1e-05, top-1 100%, pass'; an int8 file is compared, not held to the tolerance."""
    if parity is None:
        return ABSENT
    agree = parity.top1_agreement
    text = f"{parity.max_abs_diff:.2g}, top-1 " + ("100%" if agree == 1 else f"{agree:.1%}")
    if parity.passed is None:
        return text + (f", {quantize}: compared" if quantize else ", compared")
    if parity.passed:
        return text + ", pass"
    return text + f", FAIL (> {parity.tolerance:g} x {parity.logit_scale:.3g})"


def runtime_cells(report: Report) -> tuple[list[str], list[list[str]]]:
    """The runtimes table as plain text, its header and one row per variant x backbone x
    pipeline: the figures a deployment is chosen on (the note column only where a row has
    one: an error, or why a fresh start is absent)."""
    tp, e2e = _largest(report, "throughput"), _largest(report, "end_to_end")
    out = []
    for variant in report.variants:
        view = report.view(variant)
        for backbone in view.backbones:
            for r in (x for x in view.results if x.backbone == backbone):
                dep = r.deployment
                fresh = dep.fresh if dep else None
                note = f"error: {r.error}" if r.error else ""
                if dep is not None and fresh is None and dep.fresh_note and not note:
                    note = dep.fresh_note
                out.append(
                    [
                        variant,
                        backbone,
                        r.pipeline,
                        _latency_cell(r),
                        _at_batch(r, "throughput", tp),
                        _at_batch(r, "end_to_end", e2e),
                        ABSENT if dep is None else cell(dep.file_bytes / MB),
                        ABSENT if fresh is None else cell(fresh.cold_start_ms),
                        ABSENT if fresh is None else cell(fresh.peak_rss_bytes / MIB),
                        parity_cell(dep.parity if dep else None, r.quantize),
                        note,
                    ]
                )
    head = _runtimes_head(report)
    if not any(row[-1] for row in out):
        head, out = head[:-1], [row[:-1] for row in out]
    return head, out


RUNTIMES_CAPTION = (
    "file size: the .onnx file and its external weights; cold start: session creation and the "
    "first batch-1 inference in a fresh process; peak RSS: that process's peak resident memory; "
    "parity: the file's logits against torch eager on one probe batch; "
    f"{ABSENT} = not measured (torch has no file)"
)


def runtimes_table(report: Report) -> Table:
    """The runtime variants side by side: latency, throughput, the file, a fresh start, parity."""
    table = Table(title="runtimes side by side", caption=RUNTIMES_CAPTION, caption_justify="left")
    head, rows = runtime_cells(report)
    for i, col in enumerate(head):
        table.add_column(col, justify="right" if 3 <= i <= 8 else "left", overflow="fold")
    for cells in rows:
        table.add_row(*(escape(c) for c in cells))
    return table


def runtime_settings_lines(report: Report) -> list[str]:
    """Once per variant: the runtime's settings in force (threads, graph optimisation,
    providers), how the file was made and, for int8, how it was calibrated."""
    lines = []
    inside: set[str] = set()
    for variant in report.variants:
        results = report.view(variant).results
        dep = next((r.deployment for r in results if r.deployment is not None), None)
        first = results[0] if results else None
        if dep is None:
            in_force = report.config.get("in_force", {})
            threads = first.threads if first and first.threads is not None else None
            if threads is None:
                threads = in_force.get("num_threads", report.environment.get("num_threads"))
            lines.append(
                f"{variant}: torch {report.environment.get('torch')}, intra-op threads {threads}"
            )
            continue
        s = dep.settings
        providers = s.get("providers") or []
        line = (
            f"{variant}: onnxruntime {s.get('onnxruntime', ABSENT)}, intra-op threads "
            f"{s.get('intra_op_threads', ABSENT)}, inter-op threads "
            f"{s.get('inter_op_threads', ABSENT)}, graph optimisation "
            f"{s.get('graph_optimization', ABSENT)}, providers "
            f"{', '.join(map(str, providers)) or ABSENT}; {dep.format} file via the "
            f"{dep.exporter} exporter, opset {dep.opset}"
        )
        q = dep.quantization
        if q:
            flag = "" if q.get("representative", True) else ", not representative"
            source = q.get("calibration_source", ABSENT)
            line += (
                f"; {q.get('method', 'quantized')}, calibrated on "
                f"{q.get('calibration_images', ABSENT)} images ({source}{flag})"
            )
        lines.append(line)
        inside.add(dep.inside_graph)
    lines += [f"inside the file: {text}" for text in sorted(inside)]
    return lines


def _torch_reference(report: Report, r: PipelineResult) -> PipelineResult | None:
    """The torch result a runtime's result is compared with: same backbone, pipeline and
    thread count."""
    if r.runtime == TORCH_RUNTIME:
        return None
    label = variant_label(TORCH_RUNTIME, None, r.threads)
    if label not in report.variants:
        return None
    return report.result(r.backbone, r.pipeline, label)


def _median_ms(r: PipelineResult | None) -> float | None:
    return r.latency.stats.median if r is not None and r.latency is not None else None


def _intervals_overlap(a: PipelineResult, b: PipelineResult) -> bool:
    """Whether the two batch-1 medians' 95% intervals overlap (the runtimes are not paired:
    a ratio whose intervals overlap is not a measured difference). False without intervals."""
    if a.latency is None or b.latency is None:
        return False
    sa, sb = a.latency.stats, b.latency.stats
    if None in (sa.median_ci_low, sb.median_ci_low, sa.median_ci_high, sb.median_ci_high):
        return False
    low = max(float(sa.median_ci_low or 0), float(sb.median_ci_low or 0))
    return low <= min(float(sa.median_ci_high or 0), float(sb.median_ci_high or 0))


def runtime_ratio_lines(report: Report) -> list[str]:
    """Per backbone: each runtime's batch-1 latency over torch's for the same pipeline (and
    thread count), so who wins where reads at a glance; none without a torch variant."""
    lines = []
    for backbone in report.backbones:
        parts = []
        for pipeline in dict.fromkeys(r.pipeline for r in report.results if r.backbone == backbone):
            pairs = []
            for variant in report.variants:
                r = report.result(backbone, pipeline, variant)
                ref = _torch_reference(report, r) if r is not None else None
                if r is None or ref is None:
                    continue
                base, mine = _median_ms(ref), _median_ms(r)
                vs = "" if ref.variant == TORCH_RUNTIME else f" vs {ref.variant}"
                if base is None or mine is None or base <= 0:
                    pairs.append(f"{variant} {ABSENT}{vs}")
                    continue
                ratio = mine / base
                word = "faster" if ratio < 1 else "slower" if ratio > 1 else "the same"
                if _intervals_overlap(ref, r):
                    word = "within noise: the 95% intervals overlap"
                pairs.append(f"{variant} {ratio:.2f}x{vs} ({word})")
            if pairs:
                parts.append(f"{pipeline}: " + ", ".join(pairs))
        if parts:
            lines.append(
                f"{backbone}, batch-1 latency of each runtime / torch's (< 1: the runtime is "
                "faster): " + "; ".join(parts)
            )
    return lines


def runtimes_markdown(report: Report) -> str:
    """The runtimes table, its settings and ratio lines as Markdown."""
    head, rows = runtime_cells(report)
    head = [h.replace("|", "\\|") for h in head]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for cells in rows:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines += ["", RUNTIMES_CAPTION, ""]
    lines += [f"* {line}" for line in runtime_settings_lines(report) + runtime_ratio_lines(report)]
    return "\n".join(lines) + "\n"


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
    runtimes = list(dict.fromkeys(r.runtime for r in results))
    shown = runtimes != [TORCH_RUNTIME]  # a runtime column only where another one ran
    if shown:
        table.add_column("runtime")
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
        grown = r.non_allocator_bytes_at_max
        if grown is not None and r.non_allocator_bytes is not None:
            note += f" ({fmt_value(grown, 'bytes')} at the max batch" + (
                ": more than the budget was charged)" if grown > r.non_allocator_bytes else ")"
            )
        table.add_row(
            *([r.runtime] if shown else []),
            r.pipeline,
            r.method,
            f"{r.max_batch:,}" + (" (capped)" if r.capped else ""),
            f"{r.safe_batch:,}",
            fmt_value(r.peak_bytes_at_max, "bytes"),
            fmt_value(r.bytes_per_extra_image, "bytes"),
            note,
        )
    console.print(table)
    for runtime in runtimes:
        by_name = {r.pipeline: r for r in results if r.runtime == runtime}
        if "upscale224" in by_name and "direct48" in by_name:
            up, dn = by_name["upscale224"], by_name["direct48"]
            ratio_text = fmt_ratio(dn.max_batch / up.max_batch if up.max_batch else None)
            where = f", {runtime}" if shown else ""
            console.print(f"max batch ratio (direct48 / upscale224{where}): {ratio_text}")
    trace = Table(title="search trace (every probe)")
    if shown:
        trace.add_column("runtime")
    for col in ("pipeline", "batch", "outcome", "peak memory", "seconds", "note"):
        trace.add_column(col, justify="right" if col in ("batch", "seconds") else "left")
    for r in results:
        for p in r.probes:
            trace.add_row(
                *([r.runtime] if shown else []),
                r.pipeline,
                f"{p.batch_size:,}",
                p.outcome,
                fmt_value(p.peak_bytes, "bytes"),
                f"{p.seconds:.2f}",
                p.message or "",
            )
    console.print(trace)
    console.print(f"wall time: {report.wall_time_s:.1f} s")


# -- fine-tuning -------------------------------------------------------------------------------


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
