"""Reports holding runtime variants, merged: every row carries its variant, the tables and CSV
name it only when some row is not plain torch, ratios per machine class per variant, and the
speed/accuracy trade-off keeps torch-measured figures on the torch rows."""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path

from rich.console import Console

from emobench import results as R
from emobench.readout import merge as readout
from emobench.readout.tradeoff import Tradeoff, TradeoffRow, build_tradeoff
from emobench.render.readout import (
    class_ratio_markdown,
    class_ratio_table,
    merged_markdown,
    merged_table,
    tradeoff_markdown,
    tradeoff_table,
)
from emobench.results.measurements import Deployment
from tests.factories import make_report, maxbatch_report, other_class, pipeline_result

LATENCY = "latency_b1_median_ms"


def ort(r: R.PipelineResult, scale: float, quantize: str | None = None) -> R.PipelineResult:
    fresh = pipeline_result(
        r.backbone, r.pipeline, [s * scale for s in r.latency.stats.samples], r.params.total
    )
    deployment = Deployment("onnx", "dynamo", 18, 10_000_000, "the model only", {})
    return dataclasses.replace(
        fresh, runtime="onnxruntime", quantize=quantize, deployment=deployment
    )


def with_ort(report: R.Report, dn_scale: float = 0.5) -> R.Report:
    """The report plus an onnxruntime int8 variant: upscale224 at 0.25x torch's latency,
    direct48 at `dn_scale`x."""
    extra = [
        ort(r, 0.25 if r.pipeline == "upscale224" else dn_scale, "int8") for r in report.results
    ]
    return dataclasses.replace(report, results=report.results + extra)


def text_of(renderable: object) -> str:
    console = Console(record=True, width=240)
    console.print(renderable)
    return console.export_text()


def test_merged_rows_carry_their_variant_and_the_table_names_it() -> None:
    loaded = [(Path("plain.json"), make_report()), (Path("ort.json"), with_ort(make_report()))]
    rows = readout.merged_rows(loaded)
    assert [(r.source, r.pipeline, r.variant) for r in rows] == [
        ("plain.json", "upscale224", "torch"),
        ("plain.json", "direct48", "torch"),
        ("ort.json", "upscale224", "torch"),
        ("ort.json", "direct48", "torch"),
        ("ort.json", "upscale224", "onnxruntime int8"),
        ("ort.json", "direct48", "onnxruntime int8"),
    ]
    assert rows[4].values[LATENCY] == rows[0].values[LATENCY] * 0.25
    columns = readout.TIMING_COLUMNS
    header = merged_markdown(rows, columns).splitlines()[1]
    assert header.startswith("| backbone | pipeline | variant | machine | report |")
    assert "| vgg16 | direct48 | onnxruntime int8 | AMD EPYC" in merged_markdown(rows, columns)
    assert "onnxruntime int8" in text_of(merged_table(rows, columns))
    plain = readout.merged_rows(loaded[:1])
    assert "variant" not in merged_markdown(plain, columns)
    assert "variant" not in text_of(merged_table(plain, columns))


def test_ratios_per_machine_class_are_kept_per_variant() -> None:
    loaded = [
        (Path("a.json"), with_ort(make_report(), dn_scale=0.5)),
        (Path("b.json"), with_ort(other_class(make_report()), dn_scale=1.0)),
    ]
    ratios = readout.class_ratios(loaded)
    assert ratios is not None
    a, b = (c.id for c in ratios.classes)
    rows = {(r.variant, r.key): r for r in ratios.rows if r.backbone == "vgg16"}
    torch, int8 = rows[("torch", LATENCY)], rows[("onnxruntime int8", LATENCY)]
    assert torch.ratios[a] == torch.ratios[b]
    assert int8.ratios[a] is not None and int8.ratios[b] is not None
    assert abs(int8.ratios[a] - torch.ratios[a] * 0.25 / 0.5) < 1e-9
    assert abs(int8.spread - 2.0) < 1e-9  # type: ignore[operator]
    md = class_ratio_markdown(ratios)
    assert md.splitlines()[0].startswith("| backbone | variant | metric |")
    assert "| vgg16 | onnxruntime int8 | latency b1, median (latency_b1_median_ms) |" in md
    assert "onnxruntime int8" in text_of(class_ratio_table(ratios))
    plain = readout.class_ratios(
        [(Path("a.json"), make_report()), (Path("b.json"), other_class(make_report()))]
    )
    assert plain is not None and "variant" not in class_ratio_markdown(plain)


def test_csv_has_a_variant_column_only_for_variant_reports() -> None:
    loaded = [(Path("ort.json"), with_ort(make_report())), (Path("mb.json"), maxbatch_report(1, 2))]
    rows = list(csv.DictReader(io.StringIO(readout.to_csv(readout.flat_rows(loaded)))))
    assert list(rows[0])[:6] == ["file", "kind", "created_utc", "backbone", "pipeline", "variant"]
    latency = {
        (r["variant"], r["pipeline"]): float(r["value"]) for r in rows if r["metric"] == LATENCY
    }
    assert latency[("onnxruntime int8", "upscale224")] == latency[("torch", "upscale224")] * 0.25
    assert {r["variant"] for r in rows if r["file"] == "mb.json"} == {"torch"}
    plain = readout.flat_rows([(Path("plain.json"), make_report())])
    assert "variant" not in plain[0]


def test_the_tradeoff_keeps_a_row_per_variant() -> None:
    loaded = [
        (Path("ort.json"), with_ort(make_report())),
        (Path("mb.json"), maxbatch_report(100, 2000)),
    ]
    tradeoff = build_tradeoff(loaded)
    rows = {(r.pipeline, r.variant): r for r in tradeoff.rows}
    assert list(rows) == [
        ("direct48", "torch"),
        ("direct48", "onnxruntime int8"),
        ("upscale224", "torch"),
        ("upscale224", "onnxruntime int8"),
    ]
    int8, torch = rows[("upscale224", "onnxruntime int8")], rows[("upscale224", "torch")]
    assert int8.values["latency_b1_ms"] == torch.values["latency_b1_ms"] * 0.25  # type: ignore[operator]
    assert torch.values["max_batch"] == 100 and int8.values.get("max_batch") is None
    assert any(n.startswith("onnxruntime int8: what their compare reports") for n in tradeoff.notes)
    csv_rows = readout.tradeoff_csv_rows(tradeoff)
    assert [r["variant"] for r in csv_rows][:2] == ["torch", "onnxruntime int8"]


def test_the_tradeoff_table_names_variants_and_marks_their_front() -> None:
    tradeoff = Tradeoff(
        [
            TradeoffRow("vgg16", "direct48", {"accuracy": 0.60, "latency_b1_ms": 10.0}),
            TradeoffRow(
                "vgg16",
                "direct48",
                {"accuracy": 0.59, "latency_b1_ms": 4.0},
                variant="onnxruntime int8",
            ),
            TradeoffRow("vgg16", "upscale224", {"accuracy": 0.58, "latency_b1_ms": 50.0}),
        ],
        {},
        [],
    )
    md = tradeoff_markdown(tradeoff).splitlines()
    assert md[1].startswith("| backbone | pipeline | variant | test accuracy |")
    assert md[3].startswith("| vgg16 | direct48* | torch | 60.0% |")
    assert md[4].startswith("| vgg16 | direct48* | onnxruntime int8 | 59.0% |")
    assert md[5].startswith("| vgg16 | upscale224 | torch | 58.0% |")  # dominated
    assert "onnxruntime int8" in text_of(tradeoff_table(tradeoff))
    plain = Tradeoff(tradeoff.rows[:1], {}, [])
    assert "variant" not in tradeoff_markdown(plain)
