"""Charts of compare/run reports; matplotlib is an optional extra (pip install emobench[plot]).

Plots are written atomically (a temporary file renamed on success) in the format the file's
extension names, carrying 'emobench' in their metadata so that a later run may replace them.
"""

from __future__ import annotations

import importlib.util
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emobench import files
from emobench import results as R
from emobench.errors import UsageError
from emobench.names import TIMING_KINDS

if TYPE_CHECKING:
    from emobench.readout.tradeoff import Tradeoff

INSTALL_HINT = "--plot needs matplotlib: pip install 'emobench[plot]' (or pip install matplotlib)"
RATIO_KEYS = (
    "preprocess_per_image_pil_us",
    "latency_b1_median_ms",
    "params_total",
    "flops_per_image",
    "input_bytes_per_image",
    "tensor_peak_bytes",
)


# extension -> (matplotlib format, metadata that puts 'emobench' in the file: files.is_artefact)
PLOT_FORMATS: dict[str, tuple[str, dict[str, str]]] = {
    ".png": ("png", {"Software": "emobench"}),  # a PNG tEXt chunk
    ".svg": ("svg", {"Creator": "emobench"}),  # <dc:creator>
    ".pdf": ("pdf", {"Creator": "emobench"}),  # the document information dictionary
}


def require_matplotlib() -> None:
    if importlib.util.find_spec("matplotlib") is None:
        raise UsageError(INSTALL_HINT)


def check_plot_path(path: Path) -> None:
    """--plot names a format we write (by its extension), before any work."""
    if path.suffix.lower() not in PLOT_FORMATS:
        known = ", ".join(PLOT_FORMATS)
        what = f"extension {path.suffix!r}" if path.suffix else "no extension"
        raise UsageError(f"--plot {path}: {what}; a plot is written as {known}")


def _save(fig: Any, out: Path) -> None:
    """Write the figure to `out` atomically, in the format its extension names."""
    fmt, metadata = PLOT_FORMATS[out.suffix.lower()]
    with files.atomic_path(out) as tmp:
        # "tight": the legends sit outside the axes, so no data is hidden under them
        fig.savefig(tmp, dpi=110, format=fmt, metadata=metadata, bbox_inches="tight")


def _plain(text: str) -> str:
    """Text from a report (a backbone, a machine class) drawn as it is: a `$` would start
    matplotlib's mathtext, and a pair of them around anything it cannot parse fails the plot."""
    return text.replace("$", r"\$")


def _plottable(value: float | None) -> bool:
    """A value a log axis can show: positive and finite (zero or None is left out)."""
    return value is not None and math.isfinite(value) and value > 0


# -- the ratios, per machine class, with their intervals ----------------------------------------

# the write-up's claims that are a ratio of one metric, by Claim key (readout.claims.CLAIMS)
CLAIM_METRICS = {
    "memory": "input_bytes_per_image",
    "preprocessing": "preprocess_per_image_pil_us",
    "parameters": "params_total",
    "inference": "latency_b1_median_ms",
}
EXACT_GROUP = "exact: the same on every machine"
INSIDE_LABEL_FROM = 1.6  # a ratio bar this long (log axis) has room for its value inside


@dataclass(frozen=True)
class RatioBar:
    """One bar of the ratio chart: a metric's upscale224/direct48 ratio for one backbone and
    machine class (EXACT_GROUP for exact metrics), with its 95% interval where it has one."""

    backbone: str
    key: str
    label: str  # the catalogue's label, never the key
    group: str  # a machine class id, or EXACT_GROUP
    point: float
    low: float | None = None
    high: float | None = None
    method: str = ""  # how the interval was made


def _class_groups(reports: list[tuple[Path, R.Report]]) -> list[tuple[str, list[R.Report]]]:
    """Reports by machine class as the claims pool them (readout.claims.machine_groups):
    several reports of one class are runs of it."""
    from emobench.readout import claims

    return [(g.id, [rep for _, rep in g.reports]) for g in claims.machine_groups(reports)]


def claimed_ratios() -> dict[str, tuple[float, str]]:
    """metric key -> (the write-up's claimed ratio, the claim's text), from readout.claims."""
    from emobench.readout import claims

    out: dict[str, tuple[float, str]] = {}
    for claim in getattr(claims, "ALL_CLAIMS", claims.CLAIMS):
        key = CLAIM_METRICS.get(claim.key)
        if key is not None and claim.claimed is not None:
            out[key] = (float(claim.claimed), claim.text)
    return out


def ratio_bars(reports: list[tuple[Path, R.Report]]) -> list[RatioBar]:
    """The bars of the ratio chart: every RATIO_KEYS metric of every backbone, one bar per
    machine class (exact metrics one bar), each class's runs pooled into one figure with a 95%
    interval as the claims make it (readout.claims: timing_runs and pool)."""
    from emobench.readout import claims

    groups = _class_groups([(p, r) for p, r in reports if r.kind in TIMING_KINDS])
    rows: dict[tuple[str, str], R.MetricRow] = {}
    for _, rep in reports:
        if rep.kind in TIMING_KINDS:
            for row in R.metric_rows(rep):
                rows.setdefault((row.backbone, row.key), row)
    backbones = list(dict.fromkeys(b for b, _ in rows))
    bars: list[RatioBar] = []
    for backbone in backbones:
        for key in RATIO_KEYS:
            first = rows.get((backbone, key))
            if first is None:
                continue
            if first.kind == R.EXACT:
                if _plottable(first.ratio):
                    assert first.ratio is not None
                    bars.append(RatioBar(backbone, key, first.label, EXACT_GROUP, first.ratio))
                continue
            for group, reps in groups:
                iv = claims.pool(claims.timing_runs(reps, backbone, key))
                if iv is None or not _plottable(iv.point):
                    continue
                low, high = iv.low, iv.high
                if not (_plottable(low) and _plottable(high)):
                    low = high = None
                bars.append(
                    RatioBar(backbone, key, first.label, group, iv.point, low, high, iv.method)
                )
    return bars


CLASS_COLOURS = ("tab:blue", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:olive")
PIPELINE_STYLES: dict[str, Any] = {R.UPSCALE: "--", R.DIRECT: "-"}
CLASS_MARKERS = ("o", "s", "^", "D", "v", "P")


def _curves(ax_lat: Any, ax_tput: Any, groups: list[tuple[str, list[R.Report]]]) -> list[Any]:
    """Latency per batch and images/s against batch size: colour = backbone, line = pipeline,
    marker = machine class (as the ratio chart groups them). Returns the legend's handles (one
    per backbone, pipeline, class)."""
    from matplotlib.lines import Line2D

    backbones: dict[str, str] = {}
    palette = ("tab:green", "tab:red", "tab:cyan", "tab:gray", "tab:olive", "tab:blue")
    classes = [g for g, _ in groups]
    for cls, rep in ((i, rep) for i, (_, reps) in enumerate(groups) for rep in reps):
        for r in rep.results:
            colour = backbones.setdefault(r.backbone, palette[len(backbones) % len(palette)])
            points = sorted(
                ((b.batch_size, b) for b in r.throughput if _plottable(b.timing.stats.median)),
                key=lambda p: p[0],
            )
            latency = r.latency if r.latency and _plottable(r.latency.stats.median) else None
            sizes = [1] if latency else []
            lat = [latency.stats.median] if latency else []
            tput = [1000.0 / latency.stats.median] if latency else []
            for bs, b in points:
                if bs == 1 and sizes:
                    continue
                sizes.append(bs)
                lat.append(b.timing.stats.median)
                tput.append(b.images_per_s)
            if not sizes:
                continue
            style = dict(
                color=colour,
                linestyle=PIPELINE_STYLES.get(r.pipeline, ":"),
                marker=CLASS_MARKERS[cls % len(CLASS_MARKERS)],
                markersize=5,
            )
            ax_lat.plot(sizes, lat, **style)
            ax_tput.plot(sizes, tput, **style)
    handles = [Line2D([], [], color=c, lw=2, label=_plain(b)) for b, c in backbones.items()]
    handles += [
        Line2D([], [], color="black", linestyle=ls, label=p) for p, ls in PIPELINE_STYLES.items()
    ]
    handles += [
        Line2D(
            [], [], color="black", linestyle="none", marker=CLASS_MARKERS[i % 6], label=_plain(c)
        )
        for i, c in enumerate(classes)
    ]
    for ax, title, unit in (
        (ax_lat, "latency per batch (model only; batch 1: latency b1, median)", "ms per batch"),
        (ax_tput, "throughput (model only)", "images/s"),
    ):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size")
        ax.set_ylabel(unit)
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    return handles


def _draw_ratios(ax: Any, bars: list[RatioBar], groups: list[str]) -> list[Any]:
    """Horizontal bars from 1 (a tie) to each ratio, machine classes side by side in each
    metric's band, 95% intervals as whiskers, the write-up's claims as dashed lines. Returns
    the legend's handles."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    rows = list(dict.fromkeys((b.backbone, b.key) for b in bars))
    claims = claimed_ratios()
    colours = {g: CLASS_COLOURS[i % len(CLASS_COLOURS)] for i, g in enumerate(groups)}
    colours[EXACT_GROUP] = "0.6"
    labels = []
    xs: list[float] = []
    for i, (backbone, key) in enumerate(rows):
        y0 = len(rows) - 1 - i  # the first row on top
        mine = [b for b in bars if (b.backbone, b.key) == (backbone, key)]
        step = 0.8 / len(mine)
        for j, b in enumerate(mine):
            y = y0 + 0.4 - step * (j + 0.5)
            ax.barh(y, b.point - 1, left=1, height=step * 0.9, color=colours[b.group])
            xs.append(b.point)
            end = b.point
            if b.low is not None and b.high is not None and b.high > b.low:
                ax.errorbar(
                    b.point,
                    y,
                    xerr=[[b.point - b.low], [b.high - b.point]],
                    fmt="none",
                    ecolor="black",
                    elinewidth=1,
                    capsize=3,
                )
                xs += [b.low, b.high]
                end = max(b.point, b.high)
            inside = b.point >= INSIDE_LABEL_FROM  # long bars carry their value inside
            ax.annotate(
                f"{b.point:.2f}x" if b.point < 10 else f"{b.point:.1f}x",
                (b.low if inside and b.low is not None else b.point, y)
                if inside
                else (max(end, 1.0), y),
                fontsize=7,
                va="center",
                ha="right" if inside else "left",
                color="white" if inside else "black",
                xytext=(-6 if inside else 4, 0),
                textcoords="offset points",
            )
        label = f"{backbone}: {mine[0].label}"
        if mine[0].group == EXACT_GROUP:
            label += " (exact)"
        if key in claims:
            claimed, _text = claims[key]
            ax.vlines(claimed, y0 - 0.45, y0 + 0.45, colors="black", linestyles="--", lw=1.2)
            label += f"\nclaimed {claimed:g}x"
            xs.append(claimed)
        labels.append(_plain(label))
    ax.set_yticks(range(len(rows) - 1, -1, -1), labels)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    if xs:
        ax.set_xlim(min(0.8, min(xs) * 0.8), max(xs) * 1.6)
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    ticks = [t * 10**e for e in range(-2, 5) for t in (1, 2, 5)]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}x"))
    ax.set_xlabel("upscale224 / direct48 (> 1: direct48 wins; log scale)")
    ax.set_title(
        "ratios by machine class: bars from 1 (a tie), whiskers the 95% interval", fontsize=10
    )
    ax.grid(True, axis="x", which="both", alpha=0.3)
    shown = [g for g in groups if any(b.group == g for b in bars)]
    handles: list[Any] = [Patch(color=colours[g], label=_plain(g)) for g in shown]
    if any(b.group == EXACT_GROUP for b in bars):
        handles.append(Patch(color=colours[EXACT_GROUP], label=EXACT_GROUP))
    handles.append(Line2D([], [], color="black", linestyle="--", label="the write-up's claim"))
    handles.append(
        Line2D(
            [],
            [],
            color="black",
            marker="|",
            markersize=8,
            linestyle="-",
            label="95% interval (paired rounds or runs)",
        )
    )
    return handles


def _pyplot() -> Any:
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _written(fig: Any, out: Path) -> None:
    """Save the figure to `out` (atomically), then free it."""
    import matplotlib.pyplot as plt

    try:
        _save(fig, out)
    finally:
        plt.close(fig)


def _png(fig: Any) -> bytes:
    """The figure as PNG bytes (for a page that embeds it), then free it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fmt, metadata = PLOT_FORMATS[".png"]
        fig.savefig(buf, dpi=110, format=fmt, metadata=metadata, bbox_inches="tight")
    finally:
        plt.close(fig)
    return buf.getvalue()


def plot_reports(reports: list[tuple[Path, R.Report]], out: Path) -> None:
    """Latency and images/s against batch size (log axes) above a chart of the ratios, machine
    classes side by side, with their 95% intervals and the write-up's claims; legends outside
    the axes, labels from the metric catalogue."""
    _written(_reports_figure(reports), out)


def reports_png(reports: list[tuple[Path, R.Report]]) -> bytes:
    """plot_reports' figure as PNG bytes."""
    return _png(_reports_figure(reports))


def _reports_figure(reports: list[tuple[Path, R.Report]]) -> Any:
    plt = _pyplot()
    timing = [(p, r) for p, r in reports if r.kind in TIMING_KINDS]
    grouped = _class_groups(timing)
    groups = [g for g, _ in grouped]
    bars = ratio_bars(timing)
    rows = len(dict.fromkeys((b.backbone, b.key) for b in bars))
    band = max(2.5, 0.22 * rows * max(1, len(groups)) + 0.6)
    fig = plt.figure(figsize=(13, 4.2 + band))
    grid = fig.add_gridspec(2, 2, height_ratios=[4.2, band], hspace=0.35, wspace=0.25)
    ax_lat, ax_tput = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1])
    ax_ratio = fig.add_subplot(grid[1, :])
    handles = _curves(ax_lat, ax_tput, grouped)
    ax_tput.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        fontsize=8,
        borderaxespad=0,
        title="backbone / pipeline / class",
        title_fontsize=8,
    )
    ax_ratio.tick_params(axis="y", labelsize=8)
    ratio_handles = _draw_ratios(ax_ratio, bars, groups)
    ax_ratio.legend(
        handles=ratio_handles,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=8,
        borderaxespad=0,
    )
    return fig


def plot_tradeoff(tradeoff: Tradeoff, out: Path) -> None:
    """Test accuracy against batch-1 latency and against training time per epoch, one point per
    backbone and pipeline, the Pareto front (cheaper and at least as accurate) drawn as a line."""
    _written(_tradeoff_figure(tradeoff), out)


def tradeoff_png(tradeoff: Tradeoff) -> bytes:
    """plot_tradeoff's figure as PNG bytes."""
    return _png(_tradeoff_figure(tradeoff))


def _tradeoff_figure(tradeoff: Tradeoff) -> Any:
    plt = _pyplot()
    from emobench.readout.tradeoff import pareto_front

    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    for ax, key, label in (
        (axes[0], "latency_b1_ms", "latency, batch 1 (ms)"),
        (axes[1], "train_s_per_epoch", "training time per epoch (s)"),
    ):
        rows = [
            r
            for r in tradeoff.rows
            if r.values.get(key) is not None
            and r.values.get("accuracy") is not None
            and all(math.isfinite(float(r.values[k] or 0.0)) for k in (key, "accuracy"))
        ]
        points = [(float(r.values[key] or 0.0), float(r.values["accuracy"] or 0.0)) for r in rows]
        front = pareto_front(points)
        for r, (x, y), on in zip(rows, points, front, strict=True):
            marker = "o" if r.pipeline == R.DIRECT else "s"
            ax.scatter([x], [y * 100], marker=marker, s=70 if on else 40)
            ax.annotate(
                _plain(f"{r.backbone}/{r.pipeline}"),
                (x, y * 100),
                fontsize=8,
                xytext=(4, 4),
                textcoords="offset points",
            )
        line = sorted(p for p, on in zip(points, front, strict=True) if on)
        if line:
            ax.step(
                [p[0] for p in line],
                [p[1] * 100 for p in line],
                where="post",
                color="tab:green",
                linewidth=1.2,
            )
            ax.scatter(
                [p[0] for p in line],
                [p[1] * 100 for p in line],
                s=220,
                facecolors="none",
                edgecolors="tab:green",
                label="Pareto front",
            )
            ax.legend(fontsize=8)
        ax.set_xlim(left=0)
        ax.set_xlabel(label)
        ax.set_ylabel("test accuracy (%)")
        ax.grid(True, which="both", alpha=0.3)
        ax.set_title(f"accuracy against {label.split(' (')[0]}")
    fig.tight_layout()
    return fig
