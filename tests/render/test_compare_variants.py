"""Runtime variants on screen, in Markdown and in the HTML page: a table per variant, the
runtimes side by side (latency with its interval, throughput, file, fresh start, parity), the
settings once per variant and each runtime's latency against torch's; a plain torch report
exactly as before variants existed."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from rich.console import Console

from emobench.render.compare import (
    compare_table,
    limits_lines,
    percentile_line,
    render_compare,
    runtime_cells,
    runtimes_markdown,
    settings_line,
    stopping_line,
)
from emobench.render.html import report_page
from emobench.results import PipelineResult, Report, metric_rows
from emobench.results.measurements import Deployment, FreshStart, Parity
from emobench.results.schema import PairedRatio
from tests.factories import make_report, pipeline_result

SETTINGS = {
    "onnxruntime": "1.20.1",
    "providers": ["CPUExecutionProvider"],
    "intra_op_threads": 2,
    "inter_op_threads": 1,
    "graph_optimization": "all",
    "execution_mode": "sequential",
}
INT8 = {
    "method": "static QDQ",
    "calibration_images": 64,
    "calibration_source": "synthetic",
    "representative": False,
}


def deployment(pipeline: str, quantize: str | None = None) -> Deployment:
    big = pipeline == "upscale224"
    return Deployment(
        format="onnx",
        exporter="dynamo",
        opset=18,
        file_bytes=(537_000_000 if big else 33_700_000) // (4 if quantize else 1),
        inside_graph="the model only",
        settings=SETTINGS,
        parity=Parity(
            batch_size=8,
            max_abs_diff=0.31 if quantize else 2.1e-5,
            logit_scale=12.0,
            top1_agreement=0.875 if quantize else 1.0,
            tolerance=1e-4,
            passed=None if quantize else True,
        ),
        quantization=INT8 if quantize else None,
        fresh=FreshStart(
            session_create_ms=120.0 if big else 20.0,
            first_infer_ms=80.0 if big else 5.0,
            peak_rss_bytes=(900 if big else 150) * 2**20,
            base_rss_bytes=60 * 2**20,
        ),
    )


def variant_of(
    r: PipelineResult, scale: float, quantize: str | None = None, threads: int | None = None
) -> PipelineResult:
    """The same pipeline run in ONNX Runtime, its latency `scale` times torch's."""
    fresh = pipeline_result(
        r.backbone, r.pipeline, [s * scale for s in r.latency.stats.samples], r.params.total
    )
    return dataclasses.replace(
        fresh,
        runtime="onnxruntime",
        quantize=quantize,
        threads=threads,
        deployment=deployment(r.pipeline, quantize),
    )


def three_variants() -> Report:
    """torch, onnxruntime (0.6x torch's latency) and its int8 file (0.4x upscale224, 1.2x
    direct48), with a paired latency ratio for torch and onnxruntime."""
    base = make_report()
    ort = [variant_of(r, 0.6) for r in base.results]
    int8 = [variant_of(r, 0.4 if r.pipeline == "upscale224" else 1.2, "int8") for r in base.results]
    key = "latency_b1_median_ms"
    paired = [
        PairedRatio.from_rounds("vgg16", key, [9.0, 10.0, 11.0], "ci"),
        PairedRatio.from_rounds("vgg16", key, [5.0, 6.0, 7.0], "ci", "onnxruntime"),
    ]
    return dataclasses.replace(base, results=base.results + ort + int8, paired=paired)


def rendered(report: Report) -> str:
    console = Console(record=True, width=200)
    render_compare(report, console)
    return console.export_text()


def titles(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if "upscale224 vs direct48 on" in line]


def test_a_plain_torch_report_renders_as_before_variants() -> None:
    report = make_report(backbones=("vgg16", "resnet18"))
    console = Console(record=True, width=200)
    # the render before runtime variants existed, step by step
    rows = metric_rows(report)
    for backbone in report.backbones:
        console.print(compare_table(report, backbone, [r for r in rows if r.backbone == backbone]))
    console.print(settings_line(report))
    console.print(stopping_line(report))
    line = percentile_line(report)
    assert line is not None
    console.print(line)
    for text in limits_lines(report):
        console.print(text, markup=False, highlight=False, soft_wrap=True)
    console.print(f"wall time: {report.wall_time_s:.1f} s")
    before = console.export_text()
    now = rendered(report)
    assert now == before
    assert "runtimes side by side" not in now and "(torch)" not in now


def test_each_variant_gets_its_table_and_the_runtimes_sit_side_by_side() -> None:
    text = rendered(three_variants())
    assert [t.split(":")[0] for t in titles(text)] == [
        "vgg16 (torch)",
        "vgg16 (onnxruntime)",
        "vgg16 (onnxruntime int8)",
    ]
    # each variant's own ratio: torch's and onnxruntime's paired medians, int8's from its medians
    ratios = [
        line.split("│")[4].strip() for line in text.splitlines() if "latency b1, median" in line
    ]
    assert ratios == ["10.00x", "6.00x", "3.33x"]
    assert "runtimes side by side" in text
    assert (
        "vgg16, batch-1 latency of each runtime / torch's (< 1: the runtime is faster): "
        "upscale224: onnxruntime 0.60x (faster), onnxruntime int8 0.40x (faster); "
        "direct48: onnxruntime 0.60x (faster), onnxruntime int8 1.20x (slower)"
    ) in text
    assert "torch: torch 2.14.1, intra-op threads 2" in text
    assert (
        "onnxruntime int8: onnxruntime 1.20.1, intra-op threads 2, inter-op threads 1, graph "
        "optimisation all, providers CPUExecutionProvider; onnx file via the dynamo exporter, "
        "opset 18; static QDQ, calibrated on 64 images (synthetic, not representative)"
    ) in text


def test_runtime_rows_hold_each_figure_with_its_unit_and_absent_ones_as_dashes() -> None:
    report = three_variants()
    head, rows = runtime_cells(report)
    assert head == [
        "variant",
        "backbone",
        "pipeline",
        "latency b1 median (ms) [95% CI]",
        "throughput b8 (images/s)",
        "end to end (images/s)",
        "file size (MB)",
        "cold start (ms)",
        "peak RSS (MiB)",
        "parity (max |diff|, top-1)",
    ]
    by = {(r[0], r[2]): dict(zip(head, r, strict=True)) for r in rows}
    assert [(r[0], r[2]) for r in rows] == [
        ("torch", "upscale224"),
        ("torch", "direct48"),
        ("onnxruntime", "upscale224"),
        ("onnxruntime", "direct48"),
        ("onnxruntime int8", "upscale224"),
        ("onnxruntime int8", "direct48"),
    ]
    torch_up = by[("torch", "upscale224")]
    stats = report.result("vgg16", "upscale224", "torch").latency.stats  # type: ignore[union-attr]
    assert stats.median_ci_low is not None and stats.median_ci_high is not None
    assert torch_up["latency b1 median (ms) [95% CI]"] == (
        f"{stats.median:.1f} [{stats.median_ci_low:.2f}, {stats.median_ci_high:.1f}]"
    )
    assert torch_up["throughput b8 (images/s)"] == "20.0"
    # torch has no file, no fresh start, no parity; nobody measured end to end: never 0
    for col in head[5:]:
        assert torch_up[col] == "—"
    ort_up = by[("onnxruntime", "upscale224")]
    assert ort_up["file size (MB)"] == "537"
    assert ort_up["cold start (ms)"] == "200"  # 120 ms session + 80 ms first inference
    assert ort_up["peak RSS (MiB)"] == "900"
    assert ort_up["parity (max |diff|, top-1)"] == "2.1e-05, top-1 100%, pass"
    int8_dn = by[("onnxruntime int8", "direct48")]
    assert int8_dn["file size (MB)"] == "8.43"
    assert int8_dn["parity (max |diff|, top-1)"] == "0.31, top-1 87.5%, int8: compared"
    assert int8_dn["throughput b8 (images/s)"] == "167"


def test_an_onnxruntime_only_report_shows_its_table_and_the_deployment() -> None:
    base = make_report()
    report = dataclasses.replace(base, results=[variant_of(r, 0.5) for r in base.results])
    assert report.variants == ["onnxruntime"]
    text = rendered(report)
    assert [t.split(":")[0] for t in titles(text)] == ["vgg16 (onnxruntime)"]
    assert "runtimes side by side" in text and "file size (MB)" in text
    assert "onnxruntime: onnxruntime 1.20.1, intra-op threads 2" in text
    assert "batch-1 latency of each runtime / torch's" not in text  # no torch to compare with


def test_a_failed_pipeline_and_a_missing_fresh_start_read_as_such() -> None:
    report = three_variants()
    failed = dataclasses.replace(
        report.results[3],  # onnxruntime direct48
        latency=None,
        throughput=[],
        deployment=None,
        error="the exported file disagrees with torch",
    )
    no_fresh = dataclasses.replace(
        report.results[4],  # onnxruntime int8 upscale224
        deployment=dataclasses.replace(
            deployment("upscale224", "int8"), fresh=None, fresh_note="the child process timed out"
        ),
    )
    results = [*report.results[:3], failed, no_fresh, report.results[5]]
    report = dataclasses.replace(report, results=results)
    head, rows = runtime_cells(report)
    assert head[-1] == "note"
    cells = {(r[0], r[2]): dict(zip(head, r, strict=True)) for r in rows}
    bad = cells[("onnxruntime", "direct48")]
    assert bad["note"] == "error: the exported file disagrees with torch"
    assert bad["latency b1 median (ms) [95% CI]"] == bad["file size (MB)"] == "—"
    cold = cells[("onnxruntime int8", "upscale224")]
    assert cold["cold start (ms)"] == cold["peak RSS (MiB)"] == "—"
    assert cold["note"] == "the child process timed out"
    text = rendered(report)
    assert "vgg16/direct48 (onnxruntime): the exported file disagrees with torch" in text
    assert "direct48: onnxruntime — (slower)" not in text
    assert "direct48: onnxruntime —, onnxruntime int8 1.20x (slower)" in text


def test_a_thread_sweep_compares_each_runtime_with_torch_at_its_thread_count() -> None:
    base = make_report()
    torch1 = [dataclasses.replace(r, threads=1) for r in base.results]
    torch2 = [dataclasses.replace(r, threads=2) for r in base.results]
    ort1 = [variant_of(r, 0.5, threads=1) for r in base.results]
    ort2 = [variant_of(r, 0.8, threads=2) for r in base.results]
    report = dataclasses.replace(base, results=torch1 + ort1 + torch2 + ort2)
    assert report.variants == ["torch 1t", "onnxruntime 1t", "torch 2t", "onnxruntime 2t"]
    text = rendered(report)
    assert (
        "upscale224: onnxruntime 1t 0.50x vs torch 1t (faster), onnxruntime 2t 0.80x vs "
        "torch 2t (faster)"
    ) in text
    assert "torch 1t: torch 2.14.1, intra-op threads 1" in text


def test_runtimes_markdown_escapes_its_pipes() -> None:
    text = runtimes_markdown(three_variants())
    lines = text.splitlines()
    assert lines[0].startswith("| variant | backbone | pipeline | latency b1 median (ms)")
    assert "parity (max \\|diff\\|, top-1)" in lines[0]
    assert "| onnxruntime | vgg16 | upscale224 |" in text and "| 537 | 200 | 900 |" in text
    assert "* vgg16, batch-1 latency of each runtime / torch's" in text


def test_the_page_has_a_section_per_variant_and_the_runtimes() -> None:
    page = report_page([(Path("variants.json"), three_variants())])
    assert page.count('<section class="variant">') == 3
    assert "<h3>variants.json: onnxruntime int8</h3>" in page
    assert "vgg16 (onnxruntime int8): upscale224 vs direct48" in page
    assert "runtimes side by side (variants.json)" in page
    assert "<td>0.31, top-1 87.5%, int8: compared</td>" in page
    plain = report_page([(Path("plain.json"), make_report())])
    assert 'class="variant"' not in plain and "runtimes side by side" not in plain
    assert "<h3>vgg16: upscale224 vs direct48 (plain.json" in plain


def test_a_runtime_ratio_whose_intervals_overlap_is_called_noise() -> None:
    """The runtimes are not paired: 1.01x with overlapping intervals is no measured win."""
    from emobench.render.compare import runtime_ratio_lines

    base = make_report()
    close = [variant_of(r, 1.01) for r in base.results]
    report = dataclasses.replace(base, results=base.results + close)
    (line,) = runtime_ratio_lines(report)
    assert "onnxruntime 1.01x (within noise: the 95% intervals overlap)" in line
    assert "(slower)" not in line
