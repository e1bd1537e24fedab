"""Every bad input is one `error:` line and exit 2, before any work or write (the matrix in
tests/bad_inputs.py); SIGTERM exits 143 and leaves nothing half-written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from emobench.cli import app
from tests.bad_inputs import CASES, Case, make_fixtures
from tests.paths import ROOT

runner = CliRunner()


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bad-input")
    make_fixtures(folder)
    return folder


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any case that gets as far as measuring fails the test."""
    import emobench.scenarios.compare as runner_mod
    import emobench.scenarios.maxbatch as maxbatch_mod
    import emobench.scenarios.stream.run as stream_mod

    def must_not_run(*args, **kwargs):
        raise AssertionError("a bad input got as far as measuring")

    monkeypatch.setattr(runner_mod, "run_benchmark", must_not_run)
    monkeypatch.setattr(maxbatch_mod, "run_maxbatch", must_not_run)
    monkeypatch.setattr(stream_mod, "run_stream", must_not_run)


def _listing(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.lstat().st_mode, p.lstat().st_size)
        for p in folder.rglob("*")
    }


@pytest.mark.parametrize("case", CASES, ids=[c.command[:60] for c in CASES])
def test_bad_input_is_one_error_line_and_exit_2(
    case: Case, fixtures: Path, no_work: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(fixtures)
    before = _listing(fixtures)
    result = runner.invoke(app, list(case.args))
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert case.message in lines[0]
    assert "Traceback" not in result.output
    assert _listing(fixtures) == before  # nothing written, nothing replaced


def test_usage_errors_are_answered_without_importing_torch(fixtures: Path) -> None:
    """Item 15: the checks before the device or a rebuilt report need no torch (~4 s, ~800 MB
    to import). Asserted on the modules loaded, not on a time: tests never depend on speed."""
    cases = [list(c.args) for c in CASES if not c.needs_torch]
    script = (
        "import json, sys\n"
        "from typer.testing import CliRunner\n"
        "from emobench.cli import app\n"
        "bad = []\n"
        "for args in json.loads(sys.argv[1]):\n"
        "    r = CliRunner().invoke(app, args)\n"
        "    if r.exit_code != 2 or 'torch' in sys.modules:\n"
        "        bad.append([args, r.exit_code, 'torch' in sys.modules])\n"
        "        break\n"
        "print(json.dumps(bad))\n"
    )
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", script, json.dumps(cases)],
        cwd=fixtures,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == []


def test_help_is_not_cut_and_the_top_level_help_has_examples() -> None:
    top = runner.invoke(app, ["--help"])
    assert top.exit_code == 0
    assert "Examples:" in top.stdout and "emobench compare --backbone" in top.stdout
    compare = runner.invoke(app, ["compare", "--help"])
    assert compare.exit_code == 0
    assert "--no-cudnn-benchmark" in compare.stdout and "…" not in compare.stdout


# -- SIGTERM (item 13) ---------------------------------------------------------------------------


def _sigterm_self() -> None:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)  # the handler raises before this ends


def test_sigterm_exits_143_with_one_line_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sigterm_guard: None
) -> None:
    import emobench.scenarios.compare as runner_mod
    from tests.conftest import TINY_ARGS

    monkeypatch.setattr(runner_mod, "run_benchmark", lambda *a, **k: _sigterm_self())
    out = tmp_path / "r.json"
    result = runner.invoke(app, ["compare", *TINY_ARGS, "--out", str(out)])
    assert result.exit_code == 143, result.output
    assert result.stderr.splitlines() == ["error: terminated (SIGTERM); no report was written"]
    assert list(tmp_path.iterdir()) == []


def test_sigterm_during_a_write_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sigterm_guard: None
) -> None:
    from emobench import files
    from emobench.cli.shell import sigterm_raises
    from emobench.errors import Terminated

    target = tmp_path / "r.json"
    target.write_text("old")
    monkeypatch.setattr(os, "fsync", lambda fd: _sigterm_self())
    with pytest.raises(Terminated), sigterm_raises():
        files.write_atomic(target, "new")
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
    assert target.read_text() == "old"
