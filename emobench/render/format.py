"""Numbers as people read them: values with their units, ratios, ratio bars, absent cells."""

from __future__ import annotations

ABSENT = "—"  # a measurement this device cannot take


BYTE_UNITS = (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10))


def fmt_value(value: float | None, unit: str) -> str:
    """A value with its unit, sized for reading: bytes in KiB/MiB/GiB, counts with separators."""
    if value is None:
        return ABSENT
    if unit == "bytes":
        for name, size in BYTE_UNITS:
            if abs(value) >= size:
                return f"{value / size:,.2f} {name}"
        return f"{value:,.0f} B"
    if unit == "count":
        return f"{value:,.0f}"
    if unit == "FLOP":
        return f"{value / 1e9:,.3f} GFLOP"
    if unit in ("FLOP/s", "bytes/s"):
        base = unit.split("/")[0].replace("bytes", "B")
        for prefix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6)):
            if abs(value) >= scale:
                return f"{value / scale:,.2f} {prefix}{base}/s"
        return f"{value:,.0f} {base}/s"
    if unit == "fraction":
        return f"{value:.1%}"
    return f"{_sig(value)} {unit}"


def _sig(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"


def fmt_ratio(value: float | None) -> str:
    return ABSENT if value is None else f"{value:.2f}x"


RATIO_BAR_WIDTH = 12  # cells for a 2**12 = 4096x ratio


def ratio_bar(value: float | None) -> str:
    """A small log2-scaled bar: one cell per doubling; '▏' marks < 1 (direct48 loses)."""
    if value is None or value <= 0:
        return ""
    import math

    cells = min(RATIO_BAR_WIDTH, round(abs(math.log2(value))))
    if value < 1:
        return "[red]" + "◀" * max(cells, 1) + "[/red]"
    return "[green]" + "█" * cells + "[/green]"


def cell(value: float | str | None) -> str:
    if value is None:
        return ABSENT
    if isinstance(value, str):
        return value
    return f"{value:,.0f}" if float(value).is_integer() and abs(value) >= 1000 else _sig(value)
