from __future__ import annotations

import csv
import dataclasses
import importlib.util
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from emobench import results as R
from emobench.cli import app
from emobench.machine import class_id, describe
from emobench.readout import merge as readout
from emobench.readout.claims import FAILS, HOLDS, NOT_MEASURED, evaluate
from tests.factories import TIGHT_UP, make_report, maxbatch_report, other_class, with_env

runner = CliRunner()


@pytest.fixture
def two_machines(tmp_path: Path) -> list[Path]:
    cpu = make_report(backbones=("vgg16", "resnet18"))
    gpu = with_env(make_report(up_latency=[5.0] * 5, dn_latency=[0.5] * 5), gpu_name="NVIDIA H100")
    paths = [tmp_path / "cpu.json", tmp_path / "gpu.json"]
    R.save(cpu, paths[0])
    R.save(gpu, paths[1])
    return paths


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


def test_report_cli_markdown_and_csv(two_machines: list[Path], tmp_path: Path) -> None:
    md, out_csv = tmp_path / "t.md", tmp_path / "t.csv"
    args = ["report", *map(str, two_machines), "--markdown", str(md), "--csv", str(out_csv)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "reports side by side" in result.stdout
    lines = md.read_text().splitlines()
    assert lines[0].startswith("| backbone | pipeline | machine | report |")
    assert len(lines) == 2 + 6
    assert out_csv.read_text().startswith("file,kind,created_utc")


@pytest.fixture
def two_classes(tmp_path: Path) -> list[Path]:
    """An AVX-512 report (ratio 10x) and two AVX2-only ones (ratios 20x and 30x)."""
    paths = [tmp_path / n for n in ("avx512.json", "avx2-a.json", "avx2-b.json")]
    R.save(make_report(backbones=("vgg16", "resnet18")), paths[0])
    for path, factor in zip(paths[1:], (2, 3), strict=True):
        slow_up = [s * factor for s in TIGHT_UP]
        R.save(other_class(make_report(up_latency=slow_up, backbones=("vgg16",))), path)
    return paths


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


def test_report_cli_ratio_table_across_classes(two_classes: list[Path], tmp_path: Path) -> None:
    md = tmp_path / "t.md"
    result = runner.invoke(app, ["report", *map(str, two_classes), "--markdown", str(md)])
    assert result.exit_code == 0, result.output
    avx512, avx2 = (class_id(R.load(p).environment) for p in two_classes[:2])
    assert "ratios by machine class" in result.stdout
    assert f"{avx2}: AMD EPYC, ISA avx2 (torch dispatches AVX2)" in result.stdout
    text = md.read_text()
    assert f"| backbone | metric | {avx512} | {avx2} | spread |" in text
    assert "| vgg16 | latency b1, median (latency_b1_median_ms) | 10.00x | 25.00x | 2.50x |" in text
    assert f"* `{avx2}`: AMD EPYC, ISA avx2" in text


def test_report_cli_rejects_mixed_kinds_and_non_reports(tmp_path: Path, two_machines) -> None:
    R.save(maxbatch_report(100, 2000), tmp_path / "mb.json")
    mixed = runner.invoke(app, ["report", str(two_machines[0]), str(tmp_path / "mb.json")])
    assert mixed.exit_code == 2 and "mb.json" in mixed.stderr and "cannot share" in mixed.stderr
    (tmp_path / "x.json").write_text(json.dumps({"hello": "world"}))
    bad = runner.invoke(app, ["report", str(tmp_path / "x.json")])
    assert bad.exit_code == 2 and "x.json" in bad.stderr
    unwritable = runner.invoke(app, ["report", str(two_machines[0]), "--csv", str(tmp_path)])
    assert unwritable.exit_code == 2 and "is a folder" in unwritable.stderr


def test_maxbatch_reports_merge(tmp_path: Path) -> None:
    R.save(maxbatch_report(100, 2000), tmp_path / "mb.json")
    rows = readout.merged_rows(readout.load_reports([tmp_path / "mb.json"]))
    assert [r.values["max_batch"] for r in rows] == [100, 2000]
    assert rows[1].pipeline == "direct48 (infer)"


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="needs matplotlib")
def test_plot_writes_png(two_machines: list[Path], tmp_path: Path) -> None:
    png = tmp_path / "plot.png"
    result = runner.invoke(app, ["report", *map(str, two_machines), "--plot", str(png)])
    assert result.exit_code == 0, result.output
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_plot_without_matplotlib_says_how_to_install(
    two_machines: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util as iu

    real = iu.find_spec
    monkeypatch.setattr(
        iu, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a)
    )
    png = tmp_path / "plot.png"
    result = runner.invoke(app, ["report", str(two_machines[0]), "--plot", str(png)])
    assert result.exit_code == 2
    assert "pip install 'emobench[plot]'" in result.stderr
    assert not png.exists()


def test_claims_verdicts() -> None:
    # direct48 20x faster at batch 1 (claimed 16x), params ratio 15.9x (claimed 29x)
    rep = make_report(up_latency=[200.0] * 5, dn_latency=[10.0] * 5)
    verdicts = {v.claim: v for v in evaluate(rep)}
    assert verdicts["16x faster inference"].verdict == HOLDS
    assert verdicts["16x faster inference"].measured == pytest.approx(20.0)
    params = verdicts["29x fewer parameters"]
    assert params.verdict == FAILS and "123.6M" in params.reason
    assert params.measured == pytest.approx(134_289_223 / 8_424_775)
    assert verdicts["22x less memory per image"].measured == pytest.approx(224**2 / 48**2)
    assert verdicts["22x less memory per image"].verdict == HOLDS
    batch = verdicts["22x larger batches"]
    assert batch.verdict == NOT_MEASURED and batch.measured is None
    assert "emobench maxbatch" in batch.reason


def test_claims_with_maxbatch_report() -> None:
    verdicts = {v.claim: v for v in evaluate(make_report(), [maxbatch_report(100, 1200)])}
    batch = verdicts["22x larger batches"]
    assert batch.verdict == FAILS and batch.measured == pytest.approx(12.0)
    assert "input size alone" in batch.reason
    holds = {v.claim: v for v in evaluate(make_report(), [maxbatch_report(100, 2500)])}
    assert holds["22x larger batches"].verdict == HOLDS


def test_claims_not_measured_when_absent() -> None:
    rep = make_report()
    stripped = dataclasses.replace(
        rep, results=[dataclasses.replace(r, preprocess=[], latency=None) for r in rep.results]
    )
    verdicts = {v.claim: v for v in evaluate(stripped)}
    assert verdicts["8.6x faster preprocessing"].verdict == NOT_MEASURED
    assert verdicts["16x faster inference"].verdict == NOT_MEASURED


def test_claims_cli(tmp_path: Path) -> None:
    R.save(make_report(), tmp_path / "r.json")
    R.save(maxbatch_report(100, 2500), tmp_path / "mb.json")
    md = tmp_path / "claims.md"
    result = runner.invoke(
        app,
        [
            "claims",
            str(tmp_path / "r.json"),
            "--maxbatch",
            str(tmp_path / "mb.json"),
            "--markdown",
            str(md),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "29x fewer parameters" in result.stdout and "does not hold" in result.stdout
    assert md.read_text().count("\n") == 2 + 5
    wrong = runner.invoke(app, ["claims", str(tmp_path / "mb.json")])
    assert wrong.exit_code == 2 and "compare or run" in wrong.stderr


def test_models_command_json() -> None:
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0
    data = {(m["backbone"], m["pipeline"]): m for m in json.loads(result.stdout)}
    assert data[("vgg16", "direct48")]["params_total"] == 8_424_775
    assert data[("vgg16", "direct48")]["feature_map"] == [3, 3]
    assert data[("resnet18", "direct48")]["feature_map"] == [6, 6]
    assert data[("vgg16", "upscale224")]["flops_per_image"] == 30_932_393_984
    assert len(data) == 2 * 11
    assert data[("mobilenet_v3_small", "direct48")]["feature_map"] == [3, 3]


def test_env_command_json() -> None:
    result = runner.invoke(app, ["env", "--device", "cpu", "--json"])
    assert result.exit_code == 0
    env = json.loads(result.stdout)
    assert env["device"] == "cpu" and env["gpu_name"] is None and env["num_threads"] >= 1
    assert env["machine_class"] == class_id(env)
    table = runner.invoke(app, ["env", "--device", "cpu"])
    assert table.exit_code == 0
    assert f"machine class {env['machine_class']}: {describe(env)}\n" in table.stdout


def test_compare_table_names_the_machine_class() -> None:
    from rich.console import Console

    from emobench.render.compare import render_compare

    console = Console(width=400, record=True)
    render_compare(other_class(make_report()), console)
    lines = console.export_text().splitlines()
    # the title wraps to the table's width: read it up to the table's top border
    title = " ".join(
        line.strip() for line in lines[: next(i for i, x in enumerate(lines) if "┏" in x)]
    )
    assert title == (
        "vgg16: upscale224 vs direct48 on cpu (AMD EPYC), torch 2.14.1, 2 threads, "
        f"machine class {class_id(other_class(make_report()).environment)}"
    )
