"""`emobench maxbatch`: bad input, a report written, a failed search exits 1, Ctrl-C leaves
nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from emobench.cli import app
from emobench.measure import search as mb
from emobench.results import load
from tests.factories import SMALL_CPU_SEARCH

runner = CliRunner()


def test_maxbatch_cli_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for args, message in [
        (["--budget", "lots"], "--budget 'lots'"),
        (["--budget", "1PiB"], "unknown unit"),
        (["--budget", "100000GiB"], "larger than the available RAM"),
        (["--mode", "fly"], "unknown mode"),
        (["--pipeline", "direct64"], "unknown pipeline"),
        (["--margin", "1.5"], "--margin"),
    ]:
        result = runner.invoke(app, ["maxbatch", "--device", "cpu", *args])
        assert result.exit_code == 2, args
        assert message in result.stderr
    assert not (tmp_path / "results").exists()


def test_maxbatch_cli_writes_report(tmp_path: Path) -> None:
    out = tmp_path / "mb.json"
    result = CliRunner().invoke(
        app,
        [
            *SMALL_CPU_SEARCH,
            "--budget",
            "1.2GiB",
            "--max-batch",
            "32",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "search trace" in result.stdout
    report = load(out)
    assert report.kind == "maxbatch" and report.maxbatch[0].pipeline == "direct48"
    assert json.loads(out.read_text())["config"]["budget"] == "1.2GiB"


def test_maxbatch_non_memory_failure_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import emobench.scenarios.maxbatch as mbmod

    def broken_step(model, mode, device):
        def step(n: int) -> None:
            raise RuntimeError("cuDNN error: CUDNN_STATUS_EXECUTION_FAILED")

        return step

    monkeypatch.setattr(mbmod, "make_step", broken_step)
    out = tmp_path / "mb.json"
    args = [
        *SMALL_CPU_SEARCH,
        "--budget",
        "1GiB",
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert "CUDNN_STATUS_EXECUTION_FAILED" in result.stderr
    (r,) = load(out).maxbatch
    assert r.error is not None and "CUDNN_STATUS_EXECUTION_FAILED" in r.error
    assert r.probes[0].outcome == mb.ERROR


@pytest.mark.parametrize("command", ["maxbatch", "compare"])
def test_ctrl_c_leaves_no_report(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import emobench.scenarios.compare as runner_mod
    import emobench.scenarios.maxbatch as mbmod

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(mbmod, "run_maxbatch", interrupted)
    monkeypatch.setattr(runner_mod, "run_benchmark", interrupted)
    out = tmp_path / "r.json"
    result = CliRunner().invoke(app, [command, "--device", "cpu", "--out", str(out)])
    assert result.exit_code == 130
    assert "interrupted" in result.stderr
    assert list(tmp_path.iterdir()) == []
