"""Run one function in a fresh, isolated Python process and read the JSON line it prints.

The child is `python -I` (no current folder or script folder on sys.path, no PYTHON* variables,
no user site) given this process's import path explicitly, so a `numpy.py` in the working folder
is never imported. `subprocess.run` kills the child on any exception here: Ctrl-C, or SIGTERM
(which the CLI turns into an exception), so no child outlives an interrupted run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SIGKILL_RETURNCODE = -9  # the kernel's OOM killer, or anyone's kill -9

# argv[1]: the import path, argv[2]: the entry point "module:function", argv[3]: its argument
CHILD_BOOT = (
    "import importlib, json, sys; sys.path[:] = json.loads(sys.argv[1]); "
    "module, _, function = sys.argv[2].partition(':'); "
    "getattr(importlib.import_module(module), function)(sys.argv[3])"
)


@dataclass(frozen=True)
class ChildResult:
    """How a child ended: its exit code (None: killed at the timeout), output and wall time."""

    returncode: int | None
    stdout: str
    stderr: str
    seconds: float

    @property
    def timed_out(self) -> bool:
        return self.returncode is None

    @property
    def killed(self) -> bool:
        return self.returncode == SIGKILL_RETURNCODE

    def last_json(self) -> Any | None:
        """The JSON value on the child's last line of output, or None when there is none."""
        try:
            return json.loads(self.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            return None

    def last_error_line(self) -> str:
        return (self.stderr.strip().splitlines() or ["no output"])[-1]


def child_command(entry: str, argument: str) -> list[str]:
    """The child's command line: `entry` ("module:function") called with `argument`."""
    import emobench

    home = str(Path(emobench.__file__).resolve().parent.parent)  # where emobench came from
    cwd = os.getcwd()
    path = [home, *(p for p in sys.path if p and p not in (home, cwd))]
    return [sys.executable, "-I", "-c", CHILD_BOOT, json.dumps(path), entry, argument]


def run_child(entry: str, argument: str, timeout_s: float) -> ChildResult:
    """Run `entry(argument)` in a fresh process; wait at most `timeout_s` seconds."""
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            child_command(entry, argument),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return ChildResult(None, "", "", time.perf_counter() - started)
    return ChildResult(proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - started)
