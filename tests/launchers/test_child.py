"""A function in a fresh isolated interpreter: no import from the working folder, killed on
SIGTERM."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from emobench.measure import search as mb
from emobench.scenarios.maxbatch import MaxBatchConfig


def test_child_probe_does_not_import_from_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`python -m` put the working folder first on the child's sys.path: a numpy.py there ran."""
    from emobench.scenarios.maxbatch import _child_probe

    marker = tmp_path / "planted-module-ran"
    for name in ("numpy.py", "json.py", "psutil.py"):
        (tmp_path / name).write_text(f"open({str(marker)!r}, 'w').close()\nraise SystemExit(3)\n")
    monkeypatch.chdir(tmp_path)
    config = MaxBatchConfig(backbone="resnet18", pipelines=("direct48",))
    probe = _child_probe(config, "direct48", 0, 2**40)  # build the model, report the RSS
    assert not marker.exists()
    assert probe.outcome == mb.OK, probe.message
    assert probe.peak_bytes is not None and probe.peak_bytes > 0


def test_sigterm_kills_the_maxbatch_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sigterm_guard: None
) -> None:
    import threading

    import psutil

    import emobench.launchers.child as child_mod
    import emobench.scenarios.maxbatch as maxbatch_mod
    from emobench.cli.shell import sigterm_raises
    from emobench.errors import Terminated

    pid_file = tmp_path / "child.pid"
    sleeper = (
        f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    )
    monkeypatch.setattr(
        child_mod, "child_command", lambda entry, argument: [sys.executable, "-c", sleeper]
    )

    def terminate_once_started() -> None:
        deadline = time.monotonic() + 30
        while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=terminate_once_started, daemon=True).start()
    config = maxbatch_mod.MaxBatchConfig(backbone="resnet18", pipelines=("direct48",))
    with pytest.raises(Terminated), sigterm_raises():
        maxbatch_mod._child_probe(config, "direct48", 0, 2**30)
    child = int(pid_file.read_text())
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == "zombie"
