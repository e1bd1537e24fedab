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


# -- issue #22: catalogue labels, intervals, claims, legends off the data, classes side by side ---


def test_ratio_bars_use_catalogue_labels_intervals_and_machine_classes(
    two_classes: list[Path],
) -> None:
    """Every bar is labelled from the metric catalogue; one bar per machine class (the two
    reports of one class pooled as runs), exact metrics once, with the interval the claims
    use."""
    from emobench import results as R
    from emobench.render.plot import EXACT_GROUP, ratio_bars
    from emobench.results.metrics import CATALOGUE

    loaded = [(p, R.load(p)) for p in two_classes]
    bars = ratio_bars(loaded)
    labels = {m.key: m.label for m in CATALOGUE}
    assert all(b.label == labels[b.key] and b.key not in b.label for b in bars)
    latency = [b for b in bars if (b.backbone, b.key) == ("vgg16", "latency_b1_median_ms")]
    assert len(latency) == 2 and len({b.group for b in latency}) == 2  # two classes
    avx2 = next(b for b in latency if "avx2" in b.group)
    assert avx2.point == pytest.approx((20 * 30) ** 0.5, rel=0.02)  # two runs: geometric mean
    assert avx2.low is not None and avx2.high is not None and avx2.low < avx2.point < avx2.high
    params = [b for b in bars if (b.backbone, b.key) == ("vgg16", "params_total")]
    assert [b.group for b in params] == [EXACT_GROUP] and params[0].low is None


def test_claims_are_read_from_the_claims_module() -> None:
    from emobench.readout.claims import CLAIMS
    from emobench.render.plot import claimed_ratios

    claimed = claimed_ratios()
    by_key = {c.key: c.claimed for c in CLAIMS}
    assert claimed["latency_b1_median_ms"][0] == by_key["inference"] == 16.0
    assert claimed["params_total"][0] == by_key["parameters"]
    assert claimed["input_bytes_per_image"][0] == by_key["memory"]
    assert claimed["preprocess_per_image_pil_us"][0] == by_key["preprocessing"]


@needs_matplotlib
def test_the_plot_has_catalogue_labels_whiskers_claims_and_legends_off_the_axes(
    two_classes: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from emobench import results as R
    from emobench.render import plot

    figures = []
    real_save = plot._save
    monkeypatch.setattr(plot, "_save", lambda fig, out: (figures.append(fig), real_save(fig, out)))
    out = tmp_path / "plot.png"
    plot.plot_reports([(p, R.load(p)) for p in two_classes], out)
    (fig,) = figures
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)  # the figure was closed after saving
    canvas.draw()
    renderer = canvas.get_renderer()
    ax_ratio = fig.axes[2]
    ticks = [t.get_text() for t in ax_ratio.get_yticklabels()]
    assert "vgg16: latency b1, median\nclaimed 16x" in ticks
    assert "vgg16: parameters, total (exact)\nclaimed 29x" in ticks
    assert not any("_" in t for t in ticks)  # never a raw key like tensor_peak_bytes
    whiskers = [c for c in ax_ratio.containers if type(c).__name__ == "ErrorbarContainer"]
    assert whiskers  # the 95% intervals
    dashed = [c for c in ax_ratio.collections if 16.0 in c.get_segments()[0][:, 0]]
    assert dashed  # the claim's reference line at 16x
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    assert len(legends) == 2
    for legend in legends:
        box = legend.get_window_extent(renderer)
        for ax in fig.axes:
            assert not box.overlaps(ax.get_window_extent(renderer))  # covers no data
    names = [t.get_text() for t in legends[1].get_texts()]
    assert sum("avx2" in n for n in names) == 1 and sum("avx512" in n for n in names) == 1


# -- review: a `$` in a label from a report is drawn as it is, never parsed as mathtext -------

ODD = r"my$\notacommand$net"


@needs_matplotlib
def test_a_dollar_in_a_backbone_or_class_does_not_crash_the_plot(tmp_path: Path) -> None:
    from emobench import results as R
    from emobench.render.plot import plot_reports, reports_png
    from tests.factories import make_report

    report = make_report(backbones=(ODD,), device_name=r"AMD $\nope$ EPYC")
    path = tmp_path / "r.json"
    R.save(report, path)
    plot_reports([(path, report)], tmp_path / "p.svg")
    assert rb"my$\notacommand$net" in (tmp_path / "p.svg").read_bytes()  # drawn as written
    assert reports_png([(path, report)])[:8] == b"\x89PNG\r\n\x1a\n"
    result = runner.invoke(app, ["report", str(path), "--plot", str(tmp_path / "p.png")])
    assert result.exit_code == 0, result.output


@needs_matplotlib
def test_a_dollar_in_a_tradeoff_label_does_not_crash_the_plot(tmp_path: Path) -> None:
    from emobench.readout.tradeoff import Tradeoff, TradeoffRow
    from emobench.render.plot import tradeoff_png

    values = {"latency_b1_ms": 3.0, "train_s_per_epoch": 10.0, "accuracy": 0.6}
    tradeoff = Tradeoff([TradeoffRow(ODD, "direct48", values)], {}, [])
    assert tradeoff_png(tradeoff)[:8] == b"\x89PNG\r\n\x1a\n"
