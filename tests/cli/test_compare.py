from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from emobench.cli import app
from tests.conftest import TINY_ARGS

runner = CliRunner()


def _commands(group, prefix: list[str]):
    for name, command in group.commands.items():
        yield [*prefix, name], command
        if hasattr(command, "commands"):
            yield from _commands(command, [*prefix, name])


def test_every_command_has_help() -> None:
    found = list(_commands(typer.main.get_command(app), []))
    assert {" ".join(p) for p, _ in found} >= {
        "compare",
        "maxbatch",
        "run",
        "check",
        "ci",
        "baseline",
        "baseline save",
        "report",
        "claims",
        "models",
        "env",
    }
    for path, command in found:
        assert command.help, f"{path} has no help"
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, path
        assert "Example" in result.output, path


def test_compare_writes_report_and_prints_table(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    result = runner.invoke(app, ["compare", *TINY_ARGS, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "upscale224" in result.stdout and "direct48" in result.stdout
    assert "FLOPs per image" in result.stdout
    data = json.loads(out.read_text())
    assert data["kind"] == "compare"
    assert data["config"]["batch_sizes"] == [2]
    assert {r["pipeline"] for r in data["results"]} == {"upscale224", "direct48"}


def test_compare_json_to_stdout(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    result = runner.invoke(app, ["compare", *TINY_ARGS, "--json", "--out", str(out)])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data == json.loads(out.read_text())


def test_default_report_path_under_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["compare", *TINY_ARGS])
    assert result.exit_code == 0
    (written,) = (tmp_path / "results").iterdir()
    assert re.fullmatch(r"\d{8}T\d{6}Z-resnet18-cpu-[0-9a-f]{6}\.json", written.name)
    assert stat.S_IMODE(written.stat().st_mode) == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_default_report_names_differ_within_one_second(monkeypatch: pytest.MonkeyPatch) -> None:
    import datetime as dt

    from emobench.cli import shell as cli

    class Frozen(dt.datetime):
        @classmethod
        def now(cls, tz=None):  # type: ignore[override]
            return dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=tz)

    monkeypatch.setattr(cli, "datetime", Frozen)
    names = {cli.default_report_path("vgg16", "cpu") for _ in range(20)}
    assert len(names) == 20
    assert all(n.name.startswith("20300102T030405Z-vgg16-cpu-") for n in names)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--device", "cuda"], "CUDA is not available"),
        (["--device", "tpu"], "unknown device"),
        (["--backbone", "alexnet"], "unknown backbone 'alexnet'"),
        (["--batch-size", "0"], "batch size must be a positive integer"),
        (["--batch-size", "-3"], "batch size must be a positive integer"),
        (["--data", "/no/such.csv"], "no such file"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["compare", *args])
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert not (tmp_path / "results").exists()  # nothing written


def test_bad_data_file_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "fer.csv"
    bad.write_text("pixels\n1 2 3\n")
    out = tmp_path / "r.json"
    result = runner.invoke(app, ["compare", *TINY_ARGS, "--data", str(bad), "--out", str(out)])
    assert result.exit_code == 2
    assert "expected 2304" in result.stderr
    assert not out.exists()


def test_unwritable_out_fails_before_work(tmp_path: Path) -> None:
    result = runner.invoke(app, ["compare", *TINY_ARGS, "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "is a folder" in result.stderr


def test_real_data_csv_runs(tmp_path: Path) -> None:
    csv = tmp_path / "fer.csv"
    row = " ".join(str(i % 256) for i in range(2304))
    csv.write_text("emotion,pixels\n" + f"3,{row}\n" * 2)
    out = tmp_path / "r.json"
    result = runner.invoke(app, ["compare", *TINY_ARGS, "--data", str(csv), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["config"]["data"] == str(csv)


def test_out_replaces_reports_but_not_other_files_without_force(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    refused = runner.invoke(app, ["compare", *TINY_ARGS, "--out", str(notes)])
    assert refused.exit_code == 2
    assert "exists and is not an emobench report" in refused.stderr
    assert notes.read_text() == "my notes"
    forced = runner.invoke(app, ["compare", *TINY_ARGS, "--out", str(notes), "--force"])
    assert forced.exit_code == 0, forced.output
    assert json.loads(notes.read_text())["kind"] == "compare"
    again = runner.invoke(app, ["compare", *TINY_ARGS, "--out", str(notes)])  # now a report
    assert again.exit_code == 0, again.output


def test_rule_thresholds_up_to_1000_percent(tmp_path: Path) -> None:
    from emobench.errors import UsageError
    from emobench.gate.verdicts import parse_rules

    assert parse_rules(["portable:1000%", "exact:0.3", "machine:30%"], None) == {
        "portable": 10.0,
        "exact": 0.3,
        "machine": 0.3,
    }
    for rule, message in [
        ("portable:1001%", "from 0% to 1000%"),
        ("portable:30", "so 30 would mean 3000%; write 30% (or 0.3)"),
        ("portable:inf%", "finite"),
        ("portable:-1%", "from 0% to 1000%"),
    ]:
        with pytest.raises(UsageError, match=re.escape(message)):
            parse_rules([rule], None)
