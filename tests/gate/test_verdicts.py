"""Checks against a baseline: exact, portable and machine metrics, invariants across machine
classes, rules, noisy and busy timings, settings that make timings incomparable."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from emobench import results as R
from emobench.errors import UsageError
from emobench.gate import verdicts as B
from tests.factories import TIGHT_DN, TIGHT_UP, make_report, other_class, with_config, with_env

runner = CliRunner()


def by_key(verdicts: list[B.Verdict]) -> dict[tuple[str, str], B.Verdict]:
    return {(v.pipeline, v.metric): v for v in verdicts}


def test_identical_reports_pass() -> None:
    verdicts = B.check(make_report(), make_report())
    assert verdicts and not any(v.failed for v in verdicts)
    kinds = {v.kind for v in verdicts}
    assert kinds == {"exact", "portable", "machine"}
    assert all(v.verdict == B.PASS for v in verdicts)


def test_exact_metric_changed_by_one_parameter_fails() -> None:
    verdicts = by_key(B.check(make_report(dn_params=8_424_776), make_report()))
    v = verdicts[("direct48", "params_total")]
    assert v.failed and v.kind == "exact" and (v.baseline, v.current) == (8_424_775, 8_424_776)
    assert not verdicts[("upscale224", "params_total")].failed


def test_copied_layers_changed_fails() -> None:
    base = make_report(dn_copied=["backbone.features.0.weight", "backbone.features.0.bias"])
    cur = make_report(dn_copied=["backbone.features.0.bias"])
    v = by_key(B.check(cur, base))[("direct48", "copied_layers")]
    assert v.failed and v.note == "0 added, 1 removed"


def test_two_times_slower_with_tight_samples_fails() -> None:
    slow = [s * 2 for s in TIGHT_DN]
    verdicts = by_key(B.check(make_report(dn_latency=slow), make_report()))
    machine = verdicts[("direct48", "latency_b1_median_ms")]
    assert machine.failed and "Mann-Whitney" in machine.note
    assert machine.delta == pytest.approx(1.0)
    portable = verdicts[("ratio", "latency_b1_median_ms")]
    assert portable.failed and portable.kind == "portable"
    assert portable.current == pytest.approx(portable.baseline / 2)


def test_slower_median_with_overlapping_noisy_samples_passes_as_noisy() -> None:
    rng = random.Random(4)
    base = [10.0 * rng.uniform(0.5, 2.0) for _ in range(6)]
    cur = [s for s in base]
    cur[0], cur[1] = 10.0 * 1.9, 10.0 * 2.0  # the median moves up, the samples overlap
    rules = {"portable": 10.0}  # isolate the machine-bound verdict
    verdicts = by_key(B.check(make_report(dn_latency=cur), make_report(dn_latency=base), rules))
    v = verdicts[("direct48", "latency_b1_median_ms")]
    assert v.delta is not None and v.delta > B.DEFAULT_MACHINE_TOLERANCE
    assert v.verdict == B.NOISY and not v.failed


def test_different_machine_skips_machine_bound_metrics() -> None:
    slow = [s * 3 for s in TIGHT_UP]
    verdicts = B.check(make_report(up_latency=slow, device_name="Intel Xeon"), make_report())
    machine = [v for v in verdicts if v.kind == "machine"]
    assert machine and all(v.verdict == "skipped (different machine class)" for v in machine)
    # exact metrics are still compared across machines
    assert all(v.verdict == B.PASS for v in verdicts if v.kind == "exact")


def test_other_class_ratios_are_shown_and_never_gate() -> None:
    # upscale224 3x slower: a 30x ratio against the baseline's 10x, on an AVX2-only machine
    cur = other_class(make_report(up_latency=[s * 3 for s in TIGHT_UP]))
    verdicts = B.check(cur, make_report())
    assert not any(v.failed for v in verdicts)
    portable = by_key([v for v in verdicts if v.kind == "portable"])
    latency = portable[("ratio", "latency_b1_median_ms")]
    assert latency.verdict == "different machine class" and latency.threshold is None
    assert latency.baseline == pytest.approx(100.05 / 10.005, rel=1e-3)
    assert latency.current == pytest.approx(3 * latency.baseline)
    assert all(v.verdict == B.OTHER_CLASS for v in portable.values())
    assert {v.verdict for v in verdicts if v.kind == "machine"} == {B.SKIPPED}
    invariant = by_key([v for v in verdicts if v.kind == "invariant"])
    assert set(invariant) == {
        ("ratio", "flops_per_image"),
        ("ratio", "input_bytes_per_image"),
        ("ratio", "latency_b1_median_ms"),
        ("ratio", "throughput_b8_images_per_s"),
    }
    assert all(v.verdict == B.PASS and v.baseline == "> 1" for v in invariant.values())
    # same class: the same move is a portable failure
    assert any(v.failed and v.kind == "portable" for v in B.check(cur, other_class(make_report())))


def test_invariants_hold_directions_not_sizes() -> None:
    # direct48 twice as slow as upscale224: VGG's timing invariants fail, ResNet's do not exist
    slow_dn = [s * 20 for s in TIGHT_DN]
    report = make_report(dn_latency=slow_dn, backbones=("vgg16", "resnet18"))
    verdicts = B.invariants(report)
    failed = {(v.backbone, v.metric) for v in verdicts if v.failed}
    assert failed == {
        ("vgg16", "latency_b1_median_ms"),
        ("vgg16", "throughput_b8_images_per_s"),
    }
    resnet = {v.metric for v in verdicts if v.backbone == "resnet18"}
    assert resnet == {"flops_per_image", "input_bytes_per_image"}
    latency = next(v for v in verdicts if v.metric == "latency_b1_median_ms")
    assert latency.current == pytest.approx(100.05 / 200.1, rel=1e-3)
    assert latency.note == "direct48 no longer beats upscale224"
    # a barely-winning direct48 still holds: the invariant is the direction only
    close = make_report(dn_latency=[s * 9.5 for s in TIGHT_DN])
    assert not any(v.failed for v in B.invariants(close))


def test_rules_override_thresholds() -> None:
    slow = [s * 1.2 for s in TIGHT_DN]
    assert any(v.failed for v in B.check(make_report(dn_latency=slow), make_report()))
    rules = B.parse_rules(["machine:30%", "portable:30%"], set())
    assert not any(v.failed for v in B.check(make_report(dn_latency=slow), make_report(), rules))


def test_parse_rules() -> None:
    assert B.parse_rules(["latency_b1_median_ms:15%"], {"latency_b1_median_ms"}) == {
        "latency_b1_median_ms": 0.15
    }
    assert B.parse_rules(["portable:0.3"], set()) == {"portable": 0.3}
    for bad in ["nonsense:10%", "latency_b1_median_ms", "latency_b1_median_ms:fast"]:
        with pytest.raises(UsageError, match="--rule"):
            B.parse_rules([bad], {"latency_b1_median_ms"})


def test_different_suite_is_usage_error() -> None:
    with pytest.raises(UsageError, match="different suites"):
        B.check(make_report(backbones=("vgg16", "resnet18")), make_report())


def test_portable_ratio_move_within_noise_passes_as_noisy() -> None:
    rng = random.Random(7)
    noisy_dn = [10.0 * rng.uniform(0.4, 2.5) for _ in range(8)]
    shifted = sorted(noisy_dn)[:3] + [s * 1.6 for s in sorted(noisy_dn)[3:]]
    base, cur = make_report(dn_latency=noisy_dn), make_report(dn_latency=shifted)
    verdicts = by_key(B.check(cur, base, {"machine": 10.0}))
    v = verdicts[("ratio", "latency_b1_median_ms")]
    assert v.delta is not None and abs(v.delta) > B.DEFAULT_PORTABLE_TOLERANCE
    assert v.verdict == B.NOISY and "95% intervals" in v.note


# -- machine classes: one baseline per class, fallback, candidate ------------------------------


def _busy(report: R.Report, share: float = 0.5) -> R.Report:
    import dataclasses

    from emobench.measure.contention import Contention

    contention = Contention(
        wall_s=10.0,
        usable_cores=2,
        own_cpu_s=10.0,
        others_cpu_s=10.0,
        other_cpu_fraction=share,
        load_avg_1m=3.0,
        cpu_freq_mhz_min=None,
        cpu_freq_mhz_max=None,
        gpu_other_processes=None,
        busy=True,
        note="machine busy",
    )
    return dataclasses.replace(report, contention=contention)


def test_timings_of_a_busy_run_are_unreliable_not_failures() -> None:
    slow = [s * 2 for s in TIGHT_DN]
    busy = _busy(make_report(dn_latency=slow, dn_params=8_424_776))
    verdicts = B.check(busy, make_report())
    by = by_key(verdicts)
    for key in (("direct48", "latency_b1_median_ms"), ("ratio", "latency_b1_median_ms")):
        v = by[key]
        assert v.verdict == B.UNRELIABLE and not v.failed
        assert "report ran on a busy machine (others used 50% of the cores)" in v.note
    # exact metrics still gate
    assert by[("direct48", "params_total")].failed
    # the same slowdown on a quiet machine fails
    assert by_key(B.check(make_report(dn_latency=slow), make_report()))[
        ("direct48", "latency_b1_median_ms")
    ].failed


def test_different_precision_is_nothing_comparable() -> None:
    base = with_config(make_report(), precision="fp32")
    cur = with_config(make_report(), precision="bf16")
    with pytest.raises(UsageError, match=r"nothing comparable: .*precision bf16 vs fp32"):
        B.check(cur, base)


def test_threads_in_force_differ_is_nothing_comparable() -> None:
    base = with_config(make_report(), in_force={"num_threads": 2})
    cur = with_config(make_report(), in_force={"num_threads": 1})
    with pytest.raises(UsageError, match="num_threads 1 vs 2"):
        B.check(cur, base)


def test_a_different_preprocessing_size_makes_only_preprocessing_incomparable() -> None:
    slow = [s * 2 for s in TIGHT_DN]
    base = with_config(make_report(), preprocess_images=64)
    cur = with_config(make_report(dn_latency=slow), preprocess_images=16)
    verdicts = by_key(B.check(cur, base))
    pre = verdicts[("ratio", "preprocess_per_image_pil_us")]
    assert pre.verdict == B.INCOMPARABLE and not pre.failed
    assert pre.note == "preprocess_images 16 vs 64"
    # the latency regression is still seen: its settings match
    assert verdicts[("direct48", "latency_b1_median_ms")].failed
    assert verdicts[("direct48", "params_total")].verdict == B.PASS


def test_rule_thresholds_up_to_1000_percent(tmp_path: Path) -> None:
    from emobench.errors import UsageError
    from emobench.gate.verdicts import parse_rules

    assert parse_rules(["portable:1000%", "exact:0.3", "machine:30%"], None) == {
        "portable": 10.0,
        "exact": 0.3,
        "machine": 0.3,
    }
    for rule, message in [
        ("portable:1001%", "from 0% to 1000%"),
        ("portable:30", "so 30 would mean 3000%; write 30% (or 0.3)"),
        ("portable:inf%", "finite"),
        ("portable:-1%", "from 0% to 1000%"),
    ]:
        with pytest.raises(UsageError, match=re.escape(message)):
            parse_rules([rule], None)


# -- issue #26: a metric the check cannot compare never passes ----------------------------------


def _replace_result(report: R.Report, pipeline: str, **changes) -> R.Report:
    import dataclasses

    results = [
        dataclasses.replace(r, **changes) if r.pipeline == pipeline else r for r in report.results
    ]
    return dataclasses.replace(report, results=results)


def _with_timings(report: R.Report, value: float) -> R.Report:
    """Every timing of the report set to `value` (NaN, infinity), as an edited file would be
    before validation on load refuses it: the gate must be safe on its own."""
    import dataclasses

    def stats(s):
        return dataclasses.replace(s, median=value, mean=value, min=value, samples=[value] * s.n)

    def timing(t):
        return dataclasses.replace(t, stats=stats(t.stats))

    def batch(b):
        return dataclasses.replace(b, images_per_s=value, timing=timing(b.timing))

    def pre(p):
        return dataclasses.replace(p, us_per_image=stats(p.us_per_image))

    results = [
        dataclasses.replace(
            r,
            latency=timing(r.latency),
            throughput=[batch(b) for b in r.throughput],
            preprocess=[pre(p) for p in r.preprocess],
        )
        for r in report.results
    ]
    return dataclasses.replace(report, results=results)


TIMING_UNITS = ("ms", "images/s", "us/image")


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
@pytest.mark.parametrize("side", ["report", "baseline"])
def test_non_finite_timings_are_not_comparable_and_fail(value: float, side: str) -> None:
    bad = _with_timings(make_report(), value)
    cur, base = (bad, make_report()) if side == "report" else (make_report(), bad)
    verdicts = B.check(cur, base)
    keys = {r.key for r in R.metric_rows(make_report()) if r.unit in TIMING_UNITS}
    timings = [v for v in verdicts if v.metric in keys]
    assert timings and not [v for v in timings if v.verdict == B.PASS]
    assert all(v.verdict == B.NOT_COMPARABLE and v.failed for v in timings)
    ratio = by_key(verdicts)[("ratio", "latency_b1_median_ms")]
    assert "not a finite number" in ratio.note and ratio.kind == "portable"
    # exact metrics are untouched and still pass
    assert by_key(verdicts)[("direct48", "params_total")].verdict == B.PASS


def test_a_metric_the_report_lacks_is_not_comparable() -> None:
    cur = _replace_result(make_report(), "direct48", latency=None)
    verdicts = by_key(B.check(cur, make_report()))
    ratio = verdicts[("ratio", "latency_b1_median_ms")]
    assert ratio.verdict == B.NOT_COMPARABLE and ratio.failed
    assert ratio.note == "the report has no value"
    machine = verdicts[("direct48", "latency_b1_median_ms")]
    assert machine.failed and machine.baseline == pytest.approx(10.005, abs=0.01)
    assert machine.current is None
    # the baseline lacking it is just as incomparable
    back = by_key(B.check(make_report(), cur))[("ratio", "latency_b1_median_ms")]
    assert back.failed and back.note == "the baseline has no value"


def test_a_tail_percentile_one_report_lacks_is_shown_not_gated() -> None:
    import dataclasses

    def with_p90(report: R.Report) -> R.Report:
        lat = report.results[1].latency
        assert lat is not None
        stats = dataclasses.replace(lat.stats, p90=11.0)
        return _replace_result(report, "direct48", latency=dataclasses.replace(lat, stats=stats))

    verdicts = by_key(B.check(make_report(), with_p90(make_report())))
    p90 = verdicts[("direct48", "latency_b1_p90_ms")]
    assert p90.verdict == B.NOT_ESTIMATED and not p90.failed


def test_a_zero_baseline_is_not_comparable_when_the_report_exceeds_it() -> None:
    import dataclasses

    def rss(report: R.Report, value: int) -> R.Report:
        memory = report.results[1].memory
        assert memory.peak is not None
        peak = dataclasses.replace(memory.peak, cpu_peak_rss_growth_bytes=value)
        return _replace_result(report, "direct48", memory=dataclasses.replace(memory, peak=peak))

    key = ("direct48", "peak_cpu_rss_growth_bytes")
    grown = by_key(B.check(rss(make_report(), 4096), rss(make_report(), 0)))[key]
    assert grown.verdict == B.NOT_COMPARABLE and grown.failed
    assert "baseline is 0" in grown.note
    assert by_key(B.check(rss(make_report(), 0), rss(make_report(), 0)))[key].verdict == B.PASS


def test_an_exact_metric_only_one_device_type_measures_is_skipped_across_devices() -> None:
    """Host->device bytes exist on CUDA only: a CPU report checked against a CUDA baseline
    lacks them by design (shown as skipped); on one device type their absence gates."""
    base = R.MetricRow("vgg16", "transfer_b8_bytes", "", "bytes", False, "exact", 100, 10, 10.0)
    across = B._exact("vgg16", base, B._absent(base), same_device=False)
    assert [v.verdict for v in across] == [B.SKIPPED, B.SKIPPED]
    same = B._exact("vgg16", base, B._absent(base), same_device=True)
    assert [v.verdict for v in same] == [B.NOT_COMPARABLE, B.NOT_COMPARABLE]
    cuda = with_env(make_report(), device="cuda:0", gpu_name="NVIDIA H100")
    assert (B._device_type(cuda), B._device_type(make_report())) == ("cuda", "cpu")


def test_an_invariant_the_report_has_no_row_for_is_not_comparable() -> None:
    cur = _replace_result(other_class(make_report()), "direct48", flops_per_image=None)
    cur = _replace_result(cur, "upscale224", flops_per_image=None)
    verdicts = [v for v in B.check(cur, make_report()) if v.kind == B.INVARIANT]
    flops = next(v for v in verdicts if v.metric == "flops_per_image")
    assert flops.verdict == B.NOT_COMPARABLE and flops.note == "not in the report"


def test_a_busy_run_does_not_hide_a_value_it_could_not_compare() -> None:
    cur = _busy(_replace_result(make_report(), "direct48", latency=None))
    v = by_key(B.check(cur, make_report()))[("ratio", "latency_b1_median_ms")]
    assert v.verdict == B.NOT_COMPARABLE and v.failed


def test_a_stopping_rule_difference_keeps_ratios_gating_and_counts_nothing_unchecked() -> None:
    """Review of #26: a baseline recorded with another --max-time made every timing row
    'incomparable', which never gated, and the summary counted them as passes: a 10x slower
    direct48 read '92 of 92 checks pass', exit 0. A stopping rule changes the number of samples,
    not what a ratio estimates: ratios gate; absolute timings are not checked and the summary
    says so instead of counting them as passes."""
    from emobench.render.gate import check_summary

    base = with_config(make_report(), max_time_s=10.0)
    slow = with_config(make_report(dn_latency=[x * 10 for x in TIGHT_DN]), max_time_s=3.0)
    verdicts = B.check(slow, base)
    ratio_rows = [v for v in verdicts if v.kind == R.PORTABLE and v.metric.startswith("latency")]
    assert ratio_rows and any(v.verdict == B.FAIL for v in ratio_rows)
    machine_rows = [v for v in verdicts if v.kind == R.MACHINE and v.verdict == B.INCOMPARABLE]
    assert machine_rows
    line = check_summary(verdicts, None)[0]
    compared = len(verdicts) - len(machine_rows)
    assert f"of {compared} checks pass" in line
    assert f"{len(machine_rows)} not checked (measured under other settings)" in line
