"""Plots: a PNG written, a clear line when matplotlib is missing."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from typer.testing import CliRunner

from emobench.cli import app

runner = CliRunner()


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
