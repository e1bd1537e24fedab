"""Checks of reports holding runtime variants: every variant both hold is checked against its
own kind, rows name their variant, a variant the report lost fails, one it gained is shown, and
a runtime's session settings make its figures incomparable."""

from __future__ import annotations

import dataclasses
import statistics

from rich.console import Console

from emobench import results as R
from emobench.gate import verdicts as B
from emobench.render.gate import check_summary, render_verdicts, verdicts_markdown
from emobench.results.measurements import Deployment, Parity
from tests.factories import TIGHT_DN, TIGHT_UP, make_report, pipeline_result

SETTINGS = {
    "onnxruntime": "1.20.1",
    "providers": ["CPUExecutionProvider"],
    "intra_op_threads": 2,
    "inter_op_threads": 1,
    "graph_optimization": "all",
    "execution_mode": "sequential",
}
LATENCY = "latency_b1_median_ms"


def ort(
    r: R.PipelineResult,
    scale: float = 0.5,
    quantize: str | None = None,
    settings: dict[str, object] | None = None,
) -> R.PipelineResult:
    fresh = pipeline_result(
        r.backbone, r.pipeline, [s * scale for s in r.latency.stats.samples], r.params.total
    )
    deployment = Deployment(
        "onnx", "dynamo", 18, 10_000_000, "the model only", settings or SETTINGS,
        parity=Parity(8, 1e-5, 10.0, 1.0, 1e-4, True if quantize is None else None),
    )  # fmt: skip
    return dataclasses.replace(
        fresh, runtime="onnxruntime", quantize=quantize, deployment=deployment
    )


def variants(
    dn_scale: float = 1.0,
    int8: bool = True,
    settings: dict[str, object] | None = None,
    up: list[float] = TIGHT_UP,
    dn: list[float] = TIGHT_DN,
) -> R.Report:
    """torch, onnxruntime (its direct48 `dn_scale` x half torch's latency) and int8."""
    base = make_report(up_latency=up, dn_latency=dn)
    fp32 = [
        ort(r, 0.5 * (dn_scale if r.pipeline == "direct48" else 1.0), settings=settings)
        for r in base.results
    ]
    q = [ort(r, 0.3, "int8", settings) for r in base.results] if int8 else []
    return dataclasses.replace(base, results=base.results + fp32 + q)


def test_plain_torch_reports_label_nothing() -> None:
    verdicts = B.check(make_report(), make_report())
    assert verdicts and all(v.variant is None for v in verdicts)


def test_every_variant_is_checked_and_named() -> None:
    single = B.check(make_report(), make_report())
    verdicts = B.check(variants(), variants())
    assert not any(v.failed for v in verdicts)
    assert [v.variant for v in verdicts] == (
        ["torch"] * len(single) + ["onnxruntime"] * len(single) + ["onnxruntime int8"] * len(single)
    )
    # the rows of each variant are those of the same check on its view
    for variant in ("torch", "onnxruntime", "onnxruntime int8"):
        mine = [v for v in verdicts if v.variant == variant]
        view = variants().view(variant)
        alone = B.check(view, view)
        assert mine == [dataclasses.replace(v, variant=variant) for v in alone]


def test_a_slower_runtime_fails_on_its_own_rows() -> None:
    verdicts = B.check(variants(dn_scale=2.0), variants())
    failed = {(v.variant, v.pipeline, v.metric) for v in verdicts if v.failed}
    assert ("onnxruntime", "direct48", LATENCY) in failed
    assert ("onnxruntime", "ratio", LATENCY) in failed
    assert all(variant == "onnxruntime" for variant, _, _ in failed)
    row = next(
        v
        for v in verdicts
        if (v.variant, v.pipeline, v.metric) == ("onnxruntime", "direct48", LATENCY)
    )
    assert row.baseline == statistics.median(s * 0.5 for s in TIGHT_DN)
    assert row.delta is not None and abs(row.delta - 1.0) < 1e-9


def test_a_variant_the_report_lost_is_not_comparable_and_fails() -> None:
    verdicts = B.check(variants(int8=False), variants())
    lost = [v for v in verdicts if v.variant == "onnxruntime int8"]
    assert lost and all(v.verdict == B.NOT_COMPARABLE and v.failed for v in lost)
    assert {v.note for v in lost} == {"variant onnxruntime int8 is not in the report"}
    assert {v.kind for v in lost} == {"exact", "portable", "machine"}
    assert not any(v.failed for v in verdicts if v.variant != "onnxruntime int8")
    summary = check_summary(verdicts, None)[0]
    assert f"{len(lost)} not comparable" in summary


def test_a_variant_only_the_report_holds_is_shown_not_checked() -> None:
    verdicts = B.check(variants(), make_report())
    extra = [v for v in verdicts if v.verdict == B.NOT_CHECKED]
    assert [(v.backbone, v.variant, v.current) for v in extra] == [
        ("vgg16", "onnxruntime", "onnxruntime"),
        ("vgg16", "onnxruntime int8", "onnxruntime int8"),
    ]
    assert not any(v.failed for v in verdicts)
    torch = [v for v in verdicts if v.variant == "torch"]
    assert len(torch) == len(B.check(make_report(), make_report()))
    summary = check_summary(verdicts, None)[0]
    assert summary.endswith("2 shown, not compared (a runtime variant the baseline does not hold)")


def test_an_onnxruntime_only_report_names_its_variant() -> None:
    base = make_report()
    only = dataclasses.replace(base, results=[ort(r) for r in base.results])
    verdicts = B.check(only, only)
    assert verdicts and {v.variant for v in verdicts} == {"onnxruntime"}
    assert not any(v.failed for v in verdicts)


def test_other_session_settings_make_that_runtimes_timings_incomparable() -> None:
    other = SETTINGS | {"graph_optimization": "basic"}
    verdicts = B.check(variants(settings=other, int8=False), variants(int8=False))
    ort_rows = [v for v in verdicts if v.variant == "onnxruntime"]
    measured = [v for v in ort_rows if v.kind != "exact"]
    assert measured and all(v.verdict == B.INCOMPARABLE for v in measured)
    assert {v.note for v in measured} == {"graph_optimization basic vs all"}
    assert all(v.verdict == B.PASS for v in ort_rows if v.kind == "exact")
    assert all(v.verdict == B.PASS for v in verdicts if v.variant == "torch")


def test_the_runs_ratios_of_the_first_variant_stay_with_it() -> None:
    """calibrate keeps the first variant's ratios per run: another variant is checked on its own
    ratio at the rule's tolerance, never against torch's runs."""
    runs = [10.0, 10.1, 9.9, 10.05, 9.95]
    baseline = dataclasses.replace(
        variants(int8=False), run_ratios={f"vgg16/{LATENCY}": runs}, gate_alpha=0.05
    )
    verdicts = B.check(variants(int8=False), baseline)
    ratio = {v.variant: v for v in verdicts if v.pipeline == "ratio" and v.metric == LATENCY}
    assert ratio["onnxruntime"].threshold == B.DEFAULT_PORTABLE_TOLERANCE
    assert ratio["torch"].threshold != B.DEFAULT_PORTABLE_TOLERANCE  # the runs' spread decides


def test_the_verdict_table_and_markdown_have_a_variant_column() -> None:
    verdicts = B.check(variants(dn_scale=2.0, int8=False), variants(int8=False))
    md = verdicts_markdown(verdicts)
    lines = md.splitlines()
    assert lines[1].startswith("| backbone | variant | pipeline | metric |")
    failed = [line for line in lines if "**fail" in line]
    assert failed and all(line.startswith("| vgg16 | onnxruntime | ") for line in failed)
    console = Console(record=True, width=240)
    render_verdicts(verdicts, console)
    text = console.export_text()
    assert "variant" in text.splitlines()[2] and "onnxruntime" in text
    plain = verdicts_markdown(B.check(make_report(), make_report()))
    assert plain.splitlines()[1].startswith("| backbone | pipeline | metric |")
