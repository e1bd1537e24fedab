"""Charts of compare/run reports; matplotlib is an optional extra (pip install emobench[plot]).

Plots are written atomically (a temporary file renamed on success) in the format the file's
extension names, carrying 'emobench' in their metadata so that a later run may replace them.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emobench import files
from emobench import results as R
from emobench.errors import UsageError

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
        fig.savefig(tmp, dpi=110, format=fmt, metadata=metadata)


def _plottable(value: float | None) -> bool:
    """A value a log axis can show: positive and finite (zero or None is left out)."""
    return value is not None and math.isfinite(value) and value > 0


def plot_reports(reports: list[tuple[Path, R.Report]], out: Path) -> None:
    """Latency and images/s against batch size (log axes) and a bar chart of the ratios."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_lat, ax_tput, ax_ratio) = plt.subplots(1, 3, figsize=(16, 5))
    ratio_labels: list[str] = []
    ratio_values: list[float] = []
    for path, rep in reports:
        device = rep.environment.get("device")
        for r in rep.results:
            points = sorted(
                ((b.batch_size, b) for b in r.throughput if _plottable(b.timing.stats.median)),
                key=lambda p: p[0],
            )
            latency = r.latency if r.latency and _plottable(r.latency.stats.median) else None
            if not points and latency is None:
                continue
            sizes = [1] if latency else []
            lat = [latency.stats.median] if latency else []
            tput = [1000.0 / latency.stats.median] if latency else []
            for bs, b in points:
                if bs == 1 and sizes:
                    continue
                sizes.append(bs)
                lat.append(b.timing.stats.median)
                tput.append(b.images_per_s)
            label = f"{r.backbone}/{r.pipeline} ({device}, {path.stem})"
            style = "-o" if r.pipeline == R.DIRECT else "--s"
            ax_lat.plot(sizes, lat, style, label=label)
            ax_tput.plot(sizes, tput, style, label=label)
        for row in R.metric_rows(rep):
            if row.key in RATIO_KEYS and _plottable(row.ratio):
                assert row.ratio is not None
                ratio_labels.append(f"{row.backbone} {row.key} ({device}, {path.stem})")
                ratio_values.append(row.ratio)
    for ax, title, unit in (
        (ax_lat, "latency per batch", "ms per batch"),
        (ax_tput, "throughput", "images/s"),
    ):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    # bars grow from 1 (a tie) towards the ratio: right when direct48 wins, left when it loses
    colours = ["tab:green" if v >= 1 else "tab:red" for v in ratio_values]
    ax_ratio.barh(ratio_labels, [v - 1 for v in ratio_values], left=1, color=colours)
    ax_ratio.axvline(1.0, color="black", linewidth=0.8)
    if ratio_values:
        ax_ratio.set_xlim(left=min(0.5, min(ratio_values) * 0.8))
    ax_ratio.set_xscale("log")
    ax_ratio.set_xlabel("upscale224 / direct48 (> 1: direct48 wins)")
    ax_ratio.set_title("ratios")
    ax_ratio.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    try:
        _save(fig, out)
    finally:
        plt.close(fig)


def plot_tradeoff(tradeoff: Tradeoff, out: Path) -> None:
    """Test accuracy against batch-1 latency and against training time per epoch, one point per
    backbone and pipeline, the Pareto front (cheaper and at least as accurate) drawn as a line."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
                f"{r.backbone}/{r.pipeline}",
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
    try:
        _save(fig, out)
    finally:
        plt.close(fig)
