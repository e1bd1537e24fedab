"""The metric catalogue: rows, ratio orientation, per-batch blocks, the documented table."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from emobench import results as R
from tests.paths import DOCS


def test_metric_rows_and_ratio_orientation(real_report: R.Report) -> None:
    rows = {r.key: r for r in R.metric_rows(real_report)}
    params = rows["params_total"]
    assert params.ratio == pytest.approx(params.upscale224 / params.direct48)
    tput = rows["throughput_b2_images_per_s"]
    assert tput.higher_is_better
    # headline ratios are measured in interleaved rounds: the median of the per-round ratios
    paired = real_report.paired_ratio("resnet18", "throughput_b2_images_per_s")
    assert paired is not None and tput.ratio == paired.ratio
    up = real_report.result("resnet18", "upscale224").throughput[0].timing.stats.samples
    dn = real_report.result("resnet18", "direct48").throughput[0].timing.stats.samples
    # one ratio per round, from that round's two samples (time upscale224 / time direct48)
    assert paired.ratios == pytest.approx([u / d for u, d in zip(up, dn, strict=True)])
    assert paired.ratio == pytest.approx(statistics.median(paired.ratios))
    assert rows["params_unused"].ratio is None  # 0 / 0 is undefined, not 1 or 0
    assert rows["input_bytes_per_image"].ratio == pytest.approx(224**2 / 48**2)
    assert "peak_cuda_allocated_bytes" not in rows  # absent on both sides: no row


def test_ratio_helper() -> None:
    assert R.ratio(10.0, 2.0, higher_is_better=False) == 5.0
    assert R.ratio(10.0, 2.0, higher_is_better=True) == 0.2
    assert R.ratio(None, 2.0, higher_is_better=False) is None
    assert R.ratio(3.0, 0.0, higher_is_better=False) is None


def test_metric_table_in_docs_is_the_catalogue() -> None:
    """The metric table in docs/metrics.md is generated from results.metrics and cannot drift
    from it."""

    from emobench.results.metrics import CATALOGUE, TABLE_BEGIN, TABLE_END, markdown_table

    docs = DOCS / "metrics.md"
    page = docs.read_text(encoding="utf-8")
    start, end = page.index(TABLE_BEGIN), page.index(TABLE_END) + len(TABLE_END)
    assert page[start:end] + "\n" == markdown_table(), "run: make docs"
    keys = [m.key for m in CATALOGUE]
    assert len(keys) == len(set(keys))  # every metric defined once
    assert all(m.how and m.unit and m.kind in ("exact", "portable", "machine") for m in CATALOGUE)


def test_catalogue_expands_per_batch_blocks_in_report_order() -> None:
    from emobench.results.metrics import metric_defs

    keys = [d.key for d in metric_defs([1, 8])]
    i = keys.index("throughput_b1_images_per_s")
    assert keys[i : i + 4] == [
        "throughput_b1_images_per_s",
        "end_to_end_b1_images_per_s",
        "throughput_b8_images_per_s",
        "end_to_end_b8_images_per_s",
    ]
    j = keys.index("train_b1_images_per_s")
    assert keys[j + 5] == "train_b8_images_per_s"  # five train metrics per batch size


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("missing.md", "no such docs page"),
        ("plain.md", "no metric table markers"),
        ("/dev/zero", "expected a regular file"),
    ],
)
def test_splicing_the_table_refuses_what_is_not_a_docs_page(
    target: str, message: str, tmp_path: Path
) -> None:
    import subprocess
    import sys

    (tmp_path / "plain.md").write_text("# no table here\n")
    proc = subprocess.run(
        [sys.executable, "-m", "emobench.results", target],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert (tmp_path / "plain.md").read_text() == "# no table here\n"
