"""The reading commands: report (Markdown, CSV, ratios per class), claims, models, env."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from emobench import results as R
from emobench.cli import app
from emobench.machine import class_id, describe
from tests.factories import make_report, maxbatch_report

runner = CliRunner()


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
