"""The shell around commands: default report paths."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from emobench.cli import app
from tests.conftest import TINY_ARGS

runner = CliRunner()


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
