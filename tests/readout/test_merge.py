"""Reports merged: two machines and two backbones in one table, flat CSV rows, ratios per machine
class, maxbatch reports."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from typer.testing import CliRunner

from emobench import results as R
from emobench.machine import class_id
from emobench.readout import merge as readout
from tests.factories import maxbatch_report

runner = CliRunner()


def test_merge_two_machines_two_backbones(two_machines: list[Path]) -> None:
    rows = readout.merged_rows(readout.load_reports(two_machines))
    keys = [(r.source, r.backbone, r.pipeline) for r in rows]
    assert keys == [
        ("cpu.json", "vgg16", "upscale224"),
        ("cpu.json", "vgg16", "direct48"),
        ("cpu.json", "resnet18", "upscale224"),
        ("cpu.json", "resnet18", "direct48"),
        ("gpu.json", "vgg16", "upscale224"),
        ("gpu.json", "vgg16", "direct48"),
    ]
    assert "NVIDIA H100" in rows[-1].machine and "AMD EPYC" in rows[0].machine
    assert rows[-1].values["latency_b1_median_ms"] == 0.5


def test_csv_is_flat_with_environment_columns(two_machines: list[Path]) -> None:
    text = readout.to_csv(readout.flat_rows(readout.load_reports(two_machines)))
    rows = list(csv.DictReader(io.StringIO(text)))
    header = list(rows[0])
    assert header[:9] == [
        "file",
        "kind",
        "created_utc",
        "backbone",
        "pipeline",
        "mode",
        "metric",
        "unit",
        "value",
    ]
    assert "env_device_name" in header and "env_torch" in header
    params = [r for r in rows if r["metric"] == "params_total" and r["pipeline"] == "direct48"]
    assert [float(r["value"]) for r in params] == [8_424_775] * 3  # vgg16, resnet18, gpu vgg16
    assert {r["env_gpu_name"] for r in rows if r["file"] == "gpu.json"} == {"NVIDIA H100"}
    ratios = [r for r in rows if r["pipeline"] == "ratio" and r["metric"] == "params_total"]
    assert ratios and ratios[0]["unit"] == "x"


def test_ratios_side_by_side_per_machine_class(two_classes: list[Path]) -> None:
    ratios = readout.class_ratios(readout.load_reports(two_classes))
    assert ratios is not None
    avx512, avx2 = (class_id(R.load(p).environment) for p in two_classes[:2])
    assert [c.id for c in ratios.classes] == [avx512, avx2]
    assert ratios.classes[1].sources == ["avx2-a.json", "avx2-b.json"]
    assert ratios.classes[1].description.startswith("AMD EPYC, ISA avx2 (torch dispatches AVX2)")
    rows = {(r.backbone, r.key): r for r in ratios.rows}
    latency = rows[("vgg16", "latency_b1_median_ms")]
    assert latency.ratios[avx512] == pytest.approx(100.05 / 10.005, rel=1e-3)
    assert latency.ratios[avx2] == pytest.approx(2.5 * latency.ratios[avx512])  # median of 2x, 3x
    assert latency.spread == pytest.approx(2.5)
    memory = rows[("vgg16", "peak_cpu_rss_growth_bytes")]
    assert memory.ratios[avx512] == memory.ratios[avx2] == pytest.approx(224 / 48)
    # exact metrics never move between classes: not in this table
    assert ("vgg16", "params_total") not in rows and ("vgg16", "flops_per_image") not in rows
    # resnet18 only ran on one class
    assert rows[("resnet18", "latency_b1_median_ms")].ratios[avx2] is None
    assert rows[("resnet18", "latency_b1_median_ms")].spread is None
    assert readout.class_ratios(readout.load_reports(two_classes[1:])) is None


def test_maxbatch_reports_merge(tmp_path: Path) -> None:
    R.save(maxbatch_report(100, 2000), tmp_path / "mb.json")
    rows = readout.merged_rows(readout.load_reports([tmp_path / "mb.json"]))
    assert [r.values["max_batch"] for r in rows] == [100, 2000]
    assert rows[1].pipeline == "direct48 (infer)"
