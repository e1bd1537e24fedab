"""The reading commands: report (Markdown, CSV, ratios per class), claims, models, env."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from emobench import results as R
from emobench.cli import app
from emobench.files import marker
from emobench.machine import class_id, describe
from tests.factories import make_report, maxbatch_report

runner = CliRunner()
MARKER = marker("markdown")


def test_report_cli_markdown_and_csv(two_machines: list[Path], tmp_path: Path) -> None:
    md, out_csv = tmp_path / "t.md", tmp_path / "t.csv"
    args = ["report", *map(str, two_machines), "--markdown", str(md), "--csv", str(out_csv)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "reports side by side" in result.stdout
    lines = md.read_text().splitlines()
    assert lines[0] == MARKER.rstrip("\n")  # a later run may replace the file
    assert lines[1].startswith("| backbone | pipeline | machine | report |")
    assert len(lines) == 1 + 2 + 6
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
    table = [line for line in md.read_text().splitlines() if line.startswith("| ")]
    # header, vgg16's ten claims (the mobile ones among them), four for the approach
    assert len(table) == 1 + 10 + 4
    assert "| vgg16 | 22x larger batches | cuda-nvidia-h100-" in md.read_text()
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


# -- issue #26: one output policy, reports validated on load ------------------------------------


def _one_error(result, message: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert "Traceback" not in result.output


def test_an_output_is_never_an_input_even_with_force(two_machines: list[Path]) -> None:
    cpu = two_machines[0]
    before = cpu.read_bytes()
    for option in ("--markdown", "--csv", "--plot"):
        target = cpu.with_suffix(".png") if option == "--plot" else cpu
        if option == "--plot":
            target.write_bytes(before)
            args = ["report", str(target), "--plot", str(target), "--force"]
        else:
            args = ["report", *map(str, two_machines), option, str(cpu), "--force"]
        _one_error(runner.invoke(app, args), "is one of this command's inputs")
    assert cpu.read_bytes() == before
    claims = runner.invoke(app, ["claims", str(cpu), "--markdown", str(cpu), "--force"])
    _one_error(claims, f"--markdown {cpu}: is one of this command's inputs")


def test_an_existing_foreign_file_needs_force(two_machines: list[Path], tmp_path: Path) -> None:
    notes = tmp_path / "notes.md"
    notes.write_text("my notes\n")
    for option, kind in (("--markdown", "markdown"), ("--csv", "csv"), ("--plot", "plot")):
        target = notes.with_suffix(".png") if option == "--plot" else notes
        target.write_text("my notes\n")
        result = runner.invoke(app, ["report", str(two_machines[0]), option, str(target)])
        _one_error(result, f"{option} {target}: exists and is not an emobench {kind} file")
        assert target.read_text() == "my notes\n"
    claims = runner.invoke(app, ["claims", str(two_machines[0]), "--markdown", str(notes)])
    _one_error(claims, "exists and is not an emobench markdown file")
    forced = runner.invoke(
        app, ["report", str(two_machines[0]), "--markdown", str(notes), "--force"]
    )
    assert forced.exit_code == 0, forced.output
    assert notes.read_text().startswith(MARKER)


def test_outputs_of_an_earlier_run_are_replaced_without_force(
    two_machines: list[Path], tmp_path: Path
) -> None:
    md, out_csv = tmp_path / "t.md", tmp_path / "t.csv"
    args = ["report", *map(str, two_machines), "--markdown", str(md), "--csv", str(out_csv)]
    assert runner.invoke(app, args).exit_code == 0
    md.write_text(md.read_text() + "stale line\n")
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert "stale line" not in md.read_text()
    # a table written before the marker existed is ours too
    md.write_text("| backbone | claim | claimed | measured | verdict | why |\n|---|\n")
    claims = runner.invoke(app, ["claims", str(two_machines[0]), "--markdown", str(md)])
    assert claims.exit_code == 0, claims.output
    assert md.read_text().startswith(MARKER)


def test_two_outputs_naming_one_file_are_refused(two_machines: list[Path], tmp_path: Path) -> None:
    both = tmp_path / "both.txt"
    args = ["report", str(two_machines[0]), "--markdown", str(both), "--csv", str(both)]
    _one_error(runner.invoke(app, args), f"--csv {both}: --markdown names the same file")
    assert not both.exists()


def test_edited_reports_are_refused_by_report_and_claims(tmp_path: Path) -> None:
    """Negative latencies, NaN and a -9.80x claims ratio came from hand-edited reports."""
    data = R.to_dict(make_report())
    data["results"][1]["latency"]["stats"]["median"] = -0.222
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    message = "results[1].latency.stats.median must be a finite number > 0, got -0.222"
    _one_error(runner.invoke(app, ["report", str(bad)]), f"{bad}: {message}")
    _one_error(runner.invoke(app, ["claims", str(bad)]), f"{bad}: {message}")
    data["results"][1]["latency"]["stats"]["median"] = float("nan")
    bad.write_text(json.dumps(data))
    _one_error(runner.invoke(app, ["report", str(bad)]), "got nan")


def test_report_on_a_finetune_report_with_no_runs_is_one_error_line(tmp_path: Path) -> None:
    from tests.paths import REPORTS

    data = json.loads((REPORTS / "finetune-v1.json").read_text())
    data["finetune"]["runs"][0]["epochs"] = []
    bad = tmp_path / "ft.json"
    bad.write_text(json.dumps(data))
    _one_error(runner.invoke(app, ["report", str(bad)]), "finetune.runs[0].epochs must not")
    data["finetune"]["runs"] = []
    bad.write_text(json.dumps(data))
    _one_error(runner.invoke(app, ["claims", str(bad)]), "finetune.runs must not be empty")


def test_the_tradeoff_branch_writes_through_the_same_policy(tmp_path: Path) -> None:
    """report with a finetune report: Markdown carries the marker, every file written is
    tracked (an interruption names it), and its outputs follow the same policy."""
    import emobench.cli.shell as shell
    from tests.paths import REPORTS

    md, out_csv = tmp_path / "t.md", tmp_path / "t.csv"
    ft = REPORTS / "finetune-v1.json"
    result = runner.invoke(app, ["report", str(ft), "--markdown", str(md), "--csv", str(out_csv)])
    assert result.exit_code == 0, result.output
    assert md.read_text().startswith(MARKER) and "Pareto" in md.read_text()
    assert shell.written[-2:] == [md, out_csv]
    assert out_csv.read_text().startswith("backbone,pipeline,")
    refused = runner.invoke(app, ["report", str(ft), "--csv", str(ft)])
    _one_error(refused, "is one of this command's inputs")


# -- issue #22: claims with intervals, per machine class ----------------------------------------


def _paired(rep: R.Report, ratio: float, low: float, high: float) -> R.Report:
    import dataclasses

    found = R.PairedRatio("vgg16", "latency_b1_median_ms", 30, ratio, low, high, "ci", [ratio])
    return dataclasses.replace(rep, paired=[found])


def test_claims_cli_one_row_per_machine_class_and_a_summary(tmp_path: Path) -> None:
    from tests.factories import other_class, with_env

    reports = {
        "a.json": _paired(make_report(), 15.2, 14.6, 15.9),
        "b.json": other_class(_paired(make_report(), 13.0, 12.0, 13.9)),
        "c.json": with_env(_paired(make_report(), 14.0, 13.1, 15.2), cpu_model="Intel Xeon"),
    }
    for name, rep in reports.items():
        R.save(rep, tmp_path / name)
    ids = [class_id(rep.environment) for rep in reports.values()]
    md = tmp_path / "claims.md"
    args = ["claims", *(str(tmp_path / n) for n in reports), "--markdown", str(md)]
    result = runner.invoke(app, args, env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    summary = (
        f"vgg16, 16x faster inference: holds on 1 of 3 machine classes; inconclusive on "
        f"{ids[2]}; does not hold on {ids[1]}"
    )
    assert summary in result.stdout
    text = md.read_text()
    assert text.startswith(MARKER)
    assert (
        "| backbone | claim | machine class | claimed | threshold | measured [95% CI] | verdict "
        "| why |" in text
    )
    for cid, cells in zip(
        ids,
        (
            "15.20x [14.60, 15.90] | holds",
            "13.00x [12.00, 13.90] | does not hold",
            "14.00x [13.10, 15.20] | inconclusive",
        ),
        strict=True,
    ):
        assert f"| vgg16 | 16x faster inference | {cid} | 16x | >= 14.40x | {cells} |" in text
    assert f"* {summary}" in text
    assert f"* `{ids[1]}`: AMD EPYC, ISA avx2" in text and "(b.json)" in text
    assert "To settle: about" in text and "lower --target-ci" in text


def test_claims_cli_pools_one_class_and_takes_maxbatch_reports_beside(tmp_path: Path) -> None:
    paths = []
    for i, ratio in enumerate((14.0, 15.0, 16.5)):
        paths.append(tmp_path / f"run-{i}.json")
        R.save(_paired(make_report(), ratio, ratio - 0.5, ratio + 0.5), paths[-1])
    R.save(maxbatch_report(100, 2500), tmp_path / "mb.json")
    md = tmp_path / "pooled.md"
    args = ["claims", *map(str, paths), str(tmp_path / "mb.json"), "--markdown", str(md)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    text = md.read_text()
    cid = class_id(make_report().environment)
    row = next(line for line in text.splitlines() if "| 16x faster inference |" in line)
    assert f"| {cid} | 16x | >= 14.40x | 15.13x [" in row and "| inconclusive |" in row
    assert "Student's t over 3 runs (log ratio)" in row
    assert "(run-0.json, run-1.json, run-2.json)" in text
    assert "| vgg16 | 22x larger batches | cuda-nvidia-h100-" in text and "25.00x | holds" in text
    alone = runner.invoke(app, ["claims", str(tmp_path / "mb.json")])
    _one_error(alone, "claims need a compare or run report")


# -- issue #22: report --html, through the one output policy -------------------------------------


def test_report_html_follows_the_output_policy(two_machines: list[Path], tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    args = ["report", *map(str, two_machines), "--html", str(page)]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert page.read_text().startswith("<!DOCTYPE html>")
    again = runner.invoke(app, args)  # ours: replaced without --force
    assert again.exit_code == 0, again.output
    foreign = tmp_path / "notes.html"
    foreign.write_text("<html>my notes</html>")
    refused = runner.invoke(app, ["report", str(two_machines[0]), "--html", str(foreign)])
    assert refused.exit_code == 2 and foreign.read_text() == "<html>my notes</html>"
    assert refused.stderr.startswith(f"error: --html {foreign}: ")
    forced = runner.invoke(app, ["report", str(two_machines[0]), "--html", str(foreign), "--force"])
    assert forced.exit_code == 0, forced.output
    assert '<meta name="generator" content="emobench' in foreign.read_text()
    fresh = tmp_path / "fresh.html"
    same = runner.invoke(
        app, ["report", str(two_machines[0]), "--html", str(fresh), "--markdown", str(fresh)]
    )
    assert same.exit_code == 2 and "names the same file" in same.stderr
    own_input = runner.invoke(app, ["report", str(two_machines[0]), "--html", str(two_machines[0])])
    assert own_input.exit_code == 2 and R.load(two_machines[0]).kind == "run"


def test_report_html_with_a_finetune_report_holds_the_tradeoff(tmp_path: Path) -> None:
    import shutil

    from tests.paths import REPORTS

    ft = tmp_path / "ft.json"
    shutil.copy(REPORTS / "finetune-v1.json", ft)
    page = tmp_path / "ft.html"
    result = runner.invoke(app, ["report", str(ft), "--html", str(page)])
    assert result.exit_code == 0, result.output
    text = page.read_text()
    assert "speed against accuracy" in text and "training 5-10x faster per epoch" in text
