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


# -- issue #26: plots written atomically, marked as ours, and never crashed by a zero ----------

needs_matplotlib = pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is None, reason="needs matplotlib"
)


@needs_matplotlib
@pytest.mark.parametrize("suffix", [".png", ".svg", ".pdf"])
def test_plots_carry_emobench_so_a_later_run_may_replace_them(
    two_machines: list[Path], tmp_path: Path, suffix: str
) -> None:
    from emobench.files import is_artefact

    out = tmp_path / f"plot{suffix}"
    first = runner.invoke(app, ["report", str(two_machines[0]), "--plot", str(out)])
    assert first.exit_code == 0, first.output
    assert is_artefact(out, "plot") and b"emobench" in out.read_bytes()
    again = runner.invoke(app, ["report", *map(str, two_machines), "--plot", str(out)])
    assert again.exit_code == 0, again.output  # no --force needed: it is ours
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cpu.json", "gpu.json", out.name]


@pytest.mark.parametrize("name", ["out.txt", "out", "out.jpg"])
def test_plot_in_a_format_we_do_not_write_is_refused_first(
    two_machines: list[Path], tmp_path: Path, name: str
) -> None:
    result = runner.invoke(app, ["report", str(two_machines[0]), "--plot", str(tmp_path / name)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: --plot {tmp_path / name}: ")
    assert "a plot is written as .png, .svg, .pdf" in result.stderr
    assert not (tmp_path / name).exists()


@needs_matplotlib
def test_a_failed_plot_leaves_the_old_file_and_no_temporary(
    two_machines: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from emobench import results as R
    from emobench.render import plot

    out = tmp_path / "plot.png"
    out.write_bytes(b"old emobench plot")

    def boom(fig, target, **kwargs):
        Path(target).write_bytes(b"half")
        raise RuntimeError("disk full")

    import matplotlib.figure

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", boom)
    with pytest.raises(RuntimeError):
        plot.plot_reports([(two_machines[0], R.load(two_machines[0]))], out)
    assert out.read_bytes() == b"old emobench plot"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cpu.json", "gpu.json", "plot.png"]


@needs_matplotlib
def test_zero_nan_and_missing_values_do_not_crash_the_plot(tmp_path: Path) -> None:
    """Log axes cannot show a 0, a NaN or a missing value (a report in memory may hold them;
    files are refused on load): they are left out instead of crashing the plot (a 0 ms
    latency was a ZeroDivisionError)."""
    import dataclasses

    from emobench import results as R
    from emobench.render.plot import plot_reports
    from tests.factories import make_report

    report = make_report()
    up, dn = report.results
    assert up.latency is not None and dn.memory.peak is not None
    zero = dataclasses.replace(up.latency, stats=dataclasses.replace(up.latency.stats, median=0.0))
    peak = dataclasses.replace(dn.memory.peak, tensor_peak_bytes=float("nan"))
    up = dataclasses.replace(up, latency=zero, throughput=[])
    dn = dataclasses.replace(dn, memory=dataclasses.replace(dn.memory, peak=peak))
    report = dataclasses.replace(report, results=[up, dn])
    ratios = {r.key: r.ratio for r in R.metric_rows(report)}
    assert ratios["latency_b1_median_ms"] == 0.0
    out = tmp_path / "plot.png"
    plot_reports([(tmp_path / "r.json", report)], out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
