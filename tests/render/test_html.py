"""`report --html`: one self-contained page, checked for its structure without a browser (the
browser check is benchmarks/html_check.py)."""

from __future__ import annotations

import dataclasses
import importlib.util
from html.parser import HTMLParser
from pathlib import Path

import pytest

from emobench import results as R
from emobench.files import is_artefact
from emobench.machine import class_id
from emobench.readout.claims import evaluate_reports
from emobench.render.html import Plot, report_page
from tests.factories import make_report, other_class

VOID = {"meta", "img", "br", "hr", "link", "input", "col", "source", "wbr"}


class _Structure(HTMLParser):
    """Tags in order, with every non-void tag closed in order (a well-formed page)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.starts: list[tuple[str, dict[str, str | None]]] = []
        self.errors: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.starts.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(page: str) -> _Structure:
    parser = _Structure()
    parser.feed(page)
    parser.close()
    assert parser.errors == [] and parser.stack == []
    return parser


def _paired(rep: R.Report, ratio: float, low: float, high: float) -> R.Report:
    found = R.PairedRatio("vgg16", "latency_b1_median_ms", 30, ratio, low, high, "ci", [ratio])
    return dataclasses.replace(rep, paired=[found])


def _two_classes() -> list[tuple[Path, R.Report]]:
    return [
        (Path("a.json"), _paired(make_report(), 14.0, 13.1, 15.2)),
        (Path("b.json"), other_class(_paired(make_report(), 15.2, 14.6, 15.9))),
    ]


def test_the_page_is_self_contained_and_holds_table_claims_plots_and_classes() -> None:
    loaded = _two_classes()
    png = b"\x89PNG\r\n\x1a\nfake"
    page = report_page(
        loaded,
        claims=evaluate_reports(loaded),
        plots=[Plot("curves and ratios", png), Plot("trade-off", None, "not drawn: no data")],
        generated_utc="2026-11-29 00:00 UTC",
    )
    parsed = _parse(page)
    tags = [t for t, _ in parsed.starts]
    assert page.startswith("<!DOCTYPE html>\n<html") and tags[:2] == ["html", "head"]
    assert '<meta name="generator" content="emobench' in page  # files.is_artefact(path, "html")
    assert {"title", "style", "body", "h1", "nav", "table", "figure", "img"} <= set(tags)
    # nothing fetched: no scheme, no script, no stylesheet link; the image inline
    assert "http://" not in page and "https://" not in page and "url(" not in page
    assert "script" not in tags and "link" not in tags and "iframe" not in tags
    srcs = [a["src"] for t, a in parsed.starts if t == "img"]
    assert srcs == ["data:image/png;base64,iVBORw0KGgpmYWtl"]
    sections = [a.get("id") for t, a in parsed.starts if t == "section"]
    assert sections == ["reports", "claims", "plots", "classes", "comparison", "settings"]
    hrefs = [a["href"] for t, a in parsed.starts if t == "a"]
    assert hrefs == [f"#{s}" for s in sections]  # in-page links only
    text = " ".join(parsed.text)
    # the comparison table: catalogue labels, values, the ratio with its paired interval
    assert "latency b1, median" in text and "14.00x [13.10, 15.20]" in text
    # the claims with their intervals and verdicts, one row per machine class
    assert "16x faster inference" in text and "holds" in text and "inconclusive" in text
    a_id, b_id = (class_id(r.environment) for _, r in loaded)
    rows = [r for r in page.split("<tr") if "16x faster inference" in r and "vgg16" in r]
    assert any(
        a_id in r and "14.00x [13.10, 15.20]" in r and 'class="inconclusive"' in r for r in rows
    )
    assert any(b_id in r and "15.20x [14.60, 15.90]" in r and 'class="holds"' in r for r in rows)
    assert "across machine classes" in text  # the summary line per claim
    # the per-class view: both classes' ratios side by side
    assert "By machine class" in text and a_id in text and b_id in text
    assert "trade-off: not drawn: no data" in text


def test_text_from_reports_is_escaped() -> None:
    rep = dataclasses.replace(make_report(), notes=["<script>alert(1)</script> & more"])
    page = report_page([(Path("x<y>.json"), rep)])
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page
    assert "x&lt;y&gt;.json" in page
    _parse(page)


def test_one_report_has_no_per_class_section_and_shows_its_ceiling() -> None:
    from emobench.results.measurements import DeviceLimits

    rep = dataclasses.replace(
        make_report(),
        limits=DeviceLimits(
            2e11,
            "fp32",
            512,
            3e10,
            1 << 26,
            ceiling_flops_per_s=2.4e11,
            ceiling_kernel="conv3x3 512->512 @6x6 b8 (vgg16/direct48)",
            peak_how="no theoretical peak: the CPU reports no clock frequency",
        ),
    )
    page = report_page([(Path("one.json"), rep)])
    parsed = _parse(page)
    assert [a.get("id") for t, a in parsed.starts if t == "section"] == [
        "reports",
        "claims",
        "comparison",
        "settings",
    ]
    text = " ".join(parsed.text)
    assert "set by conv3x3 512->512 @6x6 b8 (vgg16/direct48)" in text
    assert "theoretical peak: no theoretical peak: the CPU reports no clock frequency" in text


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="needs matplotlib")
def test_report_html_writes_the_page_with_a_real_plot(
    two_classes: list[Path], tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from emobench.cli import app

    page = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["report", *map(str, two_classes), "--html", str(page)])
    assert result.exit_code == 0, result.output
    assert f"html written to {page}" in result.stderr
    text = page.read_text()
    assert is_artefact(page, "html") and "https://" not in text and "http://" not in text
    parsed = _parse(text)
    (img,) = [a for t, a in parsed.starts if t == "img"]
    assert str(img["src"]).startswith("data:image/png;base64,iVBORw0KGgo")
    assert "the write-up's claims" in " ".join(parsed.text).lower()
