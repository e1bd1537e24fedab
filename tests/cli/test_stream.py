"""`emobench stream`: its options reach the engine, the report and LoadGen's logs land side by
side, a failed pipeline exits 1, an interrupted run leaves nothing, and every refusal is one
line and exit 2 before torch is imported (LoadGen missing included). The engine is a stand-in
here (tests/scenarios/stream/ test the real one)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from emobench import results as R
from emobench.cli import app
from emobench.cli.stream import LOG_MARKER, log_root_of
from emobench.errors import Terminated
from emobench.scenarios.stream.settings import StreamConfig
from tests.bad_inputs_stream import CASES, make_fixtures
from tests.paths import ROOT
from tests.render.test_stream_render import UP_SERVER, server_result, stream_report

runner = CliRunner()
ENGINE = "emobench.scenarios.stream.run"


class FakeEngine:
    """run_stream's stand-in: records its arguments, writes a LoadGen-like log per run under
    log_root, returns `report` (or raises `error`)."""

    def __init__(self, report: R.Report | None = None, error: BaseException | None = None):
        self.report = report or stream_report()
        self.error = error
        self.calls: list[tuple[StreamConfig, Path | None]] = []

    def __call__(
        self, config: StreamConfig, progress: Any = None, log_root: Path | None = None
    ) -> R.Report:
        self.calls.append((config, log_root))
        assert log_root is not None and (log_root / LOG_MARKER).is_file()
        folder = log_root / "direct48-server-12"
        folder.mkdir()
        (folder / "mlperf_log_summary.txt").write_text("Result is : VALID\n")
        if progress is not None:
            progress("resnet18 direct48 server: 12 streams", 1, 1)
        if self.error is not None:
            raise self.error
        return self.report


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    fake = FakeEngine()
    module = types.ModuleType(ENGINE)
    module.run_stream = fake  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, ENGINE, module)
    return fake


def _json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def test_options_reach_the_engine_and_the_report_sits_beside_its_logs(
    tmp_path: Path, engine: FakeEngine
) -> None:
    out = tmp_path / "r.json"
    args = ["stream", "--backbone", "resnet18", "--device", "cpu", "--fps", "25"]
    args += ["--deadline-ms", "30", "--faces-per-frame", "3", "--max-batch", "4"]
    args += ["--batch-window-ms", "1.5", "--scenario", "server", "--scenario", "single-stream"]
    args += ["--time-budget", "90", "--probe-s", "1", "--max-streams", "64", "--seed", "3"]
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    ((config, log_root),) = engine.calls
    assert config == StreamConfig(
        backbone="resnet18",
        device="cpu",
        scenarios=("server", "single-stream"),
        fps=25.0,
        deadline_ms=30.0,
        faces_per_frame=3,
        max_batch=4,
        batch_window_ms=1.5,
        time_budget_s=90.0,
        probe_s=1.0,
        max_streams=64,
        seed=3,
    )
    assert log_root == tmp_path / "r.loadgen" == log_root_of(out)
    assert (log_root / "direct48-server-12" / "mlperf_log_summary.txt").is_file()
    assert _json(out)["kind"] == "stream"
    assert "resnet18 direct48 (torch), server: 12 streams within 33.3 ms at p99" in result.stdout
    assert "bounded probes, not MLPerf-compliant" in result.stdout
    assert f"report written to {out}" in result.stderr and str(log_root) in result.stderr
    assert "1/1 resnet18 direct48 server: 12 streams" in result.stderr  # the progress line


def test_the_defaults_and_json(tmp_path: Path, engine: FakeEngine) -> None:
    out = tmp_path / "r.json"
    result = runner.invoke(app, ["stream", "--device", "cpu", "--json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    config = engine.calls[0][0]
    assert config.scenarios == ("server",) and config.fps == 30.0 and config.deadline_ms is None
    assert config.mlperf is False and config.runtime == "torch"
    assert json.loads(result.stdout)["stream"]["results"][1]["max_streams"] == 12


def test_the_default_report_path_is_under_results(
    tmp_path: Path, engine: FakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["stream", "--device", "cpu", "--backbone", "resnet18"])
    assert result.exit_code == 0, result.output
    (report,) = (tmp_path / "results").glob("*.json")
    assert report.name.split("-")[1:4] == ["stream", "resnet18", "cpu"]
    assert log_root_of(report).is_dir()


def test_a_failed_pipeline_keeps_the_report_and_exits_1(tmp_path: Path, engine: FakeEngine) -> None:
    failed = server_result("direct48", [], None, error="the model raised: boom")
    engine.report = stream_report([server_result("upscale224", UP_SERVER, 1), failed])
    out = tmp_path / "r.json"
    result = runner.invoke(app, ["stream", "--device", "cpu", "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert "error: resnet18 direct48 server: the model raised: boom" in result.stderr
    assert out.is_file() and log_root_of(out).is_dir()


@pytest.mark.parametrize(
    ("error", "code", "line"),
    [
        (KeyboardInterrupt(), 130, "error: interrupted; no report was written"),
        (Terminated(), 143, "error: terminated (SIGTERM); no report was written"),
    ],
)
def test_an_interrupted_run_leaves_no_report_and_puts_the_earlier_logs_back(
    tmp_path: Path, engine: FakeEngine, error: BaseException, code: int, line: str
) -> None:
    out = tmp_path / "r.json"
    assert runner.invoke(app, ["stream", "--device", "cpu", "--out", str(out)]).exit_code == 0
    before = out.read_bytes()
    engine.error = error
    result = runner.invoke(app, ["stream", "--device", "cpu", "--out", str(out)])
    assert result.exit_code == code, result.output
    assert result.stderr.splitlines()[-1] == line
    assert out.read_bytes() == before  # the earlier report, untouched
    logs = log_root_of(out)
    assert sorted(p.name for p in logs.iterdir()) == [LOG_MARKER, "direct48-server-12"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r.loadgen"]
    fresh = tmp_path / "new.json"
    again = runner.invoke(app, ["stream", "--device", "cpu", "--out", str(fresh)])
    assert again.exit_code == code
    assert not fresh.exists() and not log_root_of(fresh).exists()


def test_a_rerun_replaces_the_earlier_logs(tmp_path: Path, engine: FakeEngine) -> None:
    out = tmp_path / "r.json"
    assert runner.invoke(app, ["stream", "--device", "cpu", "--out", str(out)]).exit_code == 0
    stale = log_root_of(out) / "upscale224-server-3"
    stale.mkdir()
    result = runner.invoke(app, ["stream", "--device", "cpu", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert not stale.exists() and (log_root_of(out) / "direct48-server-12").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r.loadgen"]


def test_out_may_not_be_the_data_file(tmp_path: Path, engine: FakeEngine) -> None:
    data = tmp_path / "faces.csv"
    data.write_text("pixels\n" + " ".join(["7"] * 2304) + "\n")
    result = runner.invoke(
        app, ["stream", "--data", str(data), "--out", str(data), "--force", "--device", "cpu"]
    )
    assert result.exit_code == 2 and "is this command's --data" in result.stderr
    assert engine.calls == [] and data.read_text().startswith("pixels")


# -- refusals: one line, exit 2, torch never imported -------------------------------------------


def _fresh_interpreter(script: str, folder: Path, *args: str) -> Any:
    proc = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=folder,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def test_bad_input_is_refused_before_torch_is_imported(tmp_path: Path) -> None:
    make_fixtures(tmp_path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    script = (
        "import json, sys\n"
        "from typer.testing import CliRunner\n"
        "from emobench.cli import app\n"
        "out = []\n"
        "for args in json.loads(sys.argv[1]):\n"
        "    r = CliRunner().invoke(app, args)\n"
        "    out.append([r.exit_code, r.stderr.splitlines(), 'torch' in sys.modules])\n"
        "print(json.dumps(out))\n"
    )
    answers = _fresh_interpreter(script, tmp_path, json.dumps([list(c.args) for c in CASES]))
    for case, (code, lines, torch_imported) in zip(CASES, answers, strict=True):
        assert code == 2, case.command
        assert len(lines) == 1 and lines[0].startswith("error: "), (case.command, lines)
        assert case.message in lines[0], (case.command, lines[0])
        assert torch_imported is False, case.command
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written


def test_loadgen_missing_is_one_line_naming_the_package(tmp_path: Path) -> None:
    script = (
        "import json, sys\n"
        "sys.modules['mlperf_loadgen'] = None  # an install without the wheel\n"
        "from typer.testing import CliRunner\n"
        "from emobench.cli import app\n"
        "r = CliRunner().invoke(app, ['stream', '--device', 'cpu', '--out', 'r.json'])\n"
        "print(json.dumps([r.exit_code, r.stderr.splitlines(), 'torch' in sys.modules]))\n"
    )
    code, lines, torch_imported = _fresh_interpreter(script, tmp_path)
    assert code == 2 and torch_imported is False
    assert len(lines) == 1 and lines[0].startswith("error: emobench stream needs MLPerf LoadGen")
    assert "pip install mlcommons-loadgen" in lines[0]
    assert list(tmp_path.iterdir()) == []


# -- claims reads what stream writes ------------------------------------------------------------


def test_claims_reads_a_stream_report(tmp_path: Path, engine: FakeEngine) -> None:
    out = tmp_path / "s.json"
    assert runner.invoke(app, ["stream", "--device", "cpu", "--out", str(out)]).exit_code == 0
    result = runner.invoke(app, ["claims", str(out)])
    assert result.exit_code == 0, result.output
    assert "resnet18, real-time ready on cpu-" in result.stdout
    assert "direct48 serves 12 streams at 30 fps" in result.stdout
    data = dataclasses.asdict(R.load(out))
    assert data["stream"]["results"][1]["max_streams"] == 12
