"""A/A calibration: thresholds from run-to-run spread, and a check that uses them."""

from __future__ import annotations

import dataclasses
import math
import statistics

import pytest
from scipy.stats import norm, t

from emobench.gate import verdicts as B
from emobench.gate.calibrate import MIN_THRESHOLD, calibrate, calibrated_baseline
from tests.factories import TIGHT_DN, TIGHT_UP, TINY_SUITE, make_report

# five runs whose direct48 latency drifts run to run (the within-run samples stay tight)
DRIFT = (1.00, 1.04, 0.97, 1.02, 0.99)


def runs() -> list:
    return [make_report(dn_latency=[s * f for s in TIGHT_DN]) for f in DRIFT]


def test_threshold_is_students_t_times_the_run_to_run_noise() -> None:
    calibrations = calibrate(runs(), alpha=0.05)
    cal = {(c.backbone, c.key): c for c in calibrations}
    c = cal[("vgg16", "latency_b1_median_ms")]
    per_ratio = 0.05 / len(calibrations)  # Bonferroni: the whole gate's rate is 5%
    ratios = [statistics.median(TIGHT_UP) / (statistics.median(TIGHT_DN) * f) for f in DRIFT]
    sd = statistics.stdev(math.log(r) for r in ratios)
    noise = sd * math.sqrt(1 + 1 / 5)  # a check (its runs count as one) vs the mean of 5
    assert c.runs == 5 and c.log_sd == pytest.approx(sd)
    crit = t.ppf(1 - per_ratio / 2, 4)
    assert c.threshold == pytest.approx(max(MIN_THRESHOLD, math.expm1(crit * noise)))
    assert c.detectable == pytest.approx(math.expm1((crit + norm.ppf(0.8)) * noise))
    assert c.spread == pytest.approx(max(ratios) / min(ratios) - 1)
    assert c.mean_ratio == pytest.approx(math.exp(statistics.fmean(math.log(r) for r in ratios)))
    strict = {(x.backbone, x.key): x for x in calibrate(runs(), alpha=0.01)}
    assert strict[("vgg16", "latency_b1_median_ms")].threshold > c.threshold


def _ratio_verdict(cur, base, rules=None) -> B.Verdict:
    return next(
        v
        for v in B.check(cur, base, rules)
        if v.pipeline == "ratio" and v.metric == "latency_b1_median_ms"
    )


def _at(base, move: float):
    """A one-run report whose vgg16 latency ratio is the baseline runs' centre x (1 + move)."""
    stored = base.run_ratios["vgg16/latency_b1_median_ms"]
    centre = math.exp(statistics.fmean(math.log(r) for r in stored))
    scale = statistics.median(TIGHT_UP) / statistics.median(TIGHT_DN) / centre / (1 + move)
    return make_report(dn_latency=[s * scale for s in TIGHT_DN])


def test_calibrated_baseline_gates_at_its_own_threshold() -> None:
    base, _ = calibrated_baseline(runs())
    assert base.gate_alpha == 0.05  # the default: 5% false alarms for the whole gate
    threshold = base.thresholds["vgg16/latency_b1_median_ms"]
    assert 0.03 <= threshold < 0.5
    stored = base.run_ratios["vgg16/latency_b1_median_ms"]
    assert len(stored) == 5
    centre = math.exp(statistics.fmean(math.log(r) for r in stored))
    inside = _ratio_verdict(_at(base, -threshold * 0.95), base)  # direct48 a little slower
    assert inside.verdict == B.PASS and inside.threshold == pytest.approx(threshold)
    assert inside.baseline == pytest.approx(centre)
    assert inside.delta == pytest.approx(-threshold * 0.95)
    assert _ratio_verdict(_at(base, threshold * 0.95), base).verdict == B.PASS
    slower = _ratio_verdict(_at(base, -threshold * 1.05), base)  # beyond it: a regression
    assert slower.failed and "1 run beyond the spread of 5 baseline runs" in slower.note
    assert "advantage shrank" in slower.note
    faster = _ratio_verdict(_at(base, threshold * 1.05), base)  # the other way fails too
    assert faster.failed and "advantage grew" in faster.note


def test_a_checks_runs_count_as_one_and_damp_a_disturbed_run() -> None:
    """Three runs of a check: their geometric mean is compared, at the same threshold as one
    run (they share the machine's state); one disturbed run moves it by about a third."""
    base, _ = calibrated_baseline(runs())
    threshold = base.thresholds["vgg16/latency_b1_median_ms"]
    cur = _at(base, 0.0)
    centre = math.exp(
        statistics.fmean(map(math.log, base.run_ratios["vgg16/latency_b1_median_ms"]))
    )
    disturbed = centre * (1 + 2 * threshold)
    alone = _ratio_verdict(_at(base, 2 * threshold), base)
    assert alone.failed
    three = dataclasses.replace(
        cur, run_ratios={"vgg16/latency_b1_median_ms": [centre, centre, disturbed]}
    )
    damped = _ratio_verdict(three, base)
    assert damped.verdict == B.PASS and damped.threshold == pytest.approx(threshold)
    assert damped.current == pytest.approx((centre * centre * disturbed) ** (1 / 3))


def test_baseline_alpha_missing_or_invalid_falls_back_to_the_default() -> None:
    strict, _ = calibrated_baseline(runs(), alpha=0.01)
    default, _ = calibrated_baseline(runs())
    loose, _ = calibrated_baseline(runs(), alpha=0.2)
    cur = make_report()
    assert _ratio_verdict(cur, strict).threshold > _ratio_verdict(cur, default).threshold
    assert _ratio_verdict(cur, default).threshold > _ratio_verdict(cur, loose).threshold
    for alpha in (None, float("nan"), -1.0, 1.0):
        odd = dataclasses.replace(loose, gate_alpha=alpha)
        assert _ratio_verdict(cur, odd).threshold == pytest.approx(
            _ratio_verdict(cur, default).threshold
        )


def test_calibration_expands_reports_that_hold_several_runs() -> None:
    """`baseline save` / calibration over --repeat reports keeps every run, not one per file."""
    from emobench.gate.calibrate import run_ratios

    held = dataclasses.replace(
        make_report(), run_ratios={"vgg16/latency_b1_median_ms": [9.0, 10.0, 11.0]}
    )
    values = run_ratios([held, make_report()])
    assert values[("vgg16", "latency_b1_median_ms")][:3] == [9.0, 10.0, 11.0]
    assert len(values[("vgg16", "latency_b1_median_ms")]) == 4


def test_calibration_needs_three_runs() -> None:
    with pytest.raises(ValueError, match="at least 3 runs"):
        calibrate(runs()[:2])


@pytest.fixture
def suite(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_SUITE)
    return path


def test_calibrate_command_stores_a_baseline_with_thresholds(suite) -> None:
    import json

    from typer.testing import CliRunner

    from emobench.cli import app

    result = CliRunner().invoke(
        app, ["calibrate", str(suite), "--runs", "3", "--save-baseline", "tiny", "--out", "c.json"]
    )
    assert result.exit_code == 0, result.output
    assert "A/A calibration" in result.stdout and "latency_b1_median_ms" in result.stdout
    (stored,) = (suite.parent / "results" / "baselines" / "tiny").iterdir()
    data = json.loads(stored.read_text())
    assert data["thresholds"]["resnet18/latency_b1_median_ms"] >= MIN_THRESHOLD
    assert len(data["run_ratios"]["resnet18/latency_b1_median_ms"]) == 3
    table = json.loads((suite.parent / "c.json").read_text())
    assert {row["key"] for row in table} >= {"latency_b1_median_ms", "throughput_b2_images_per_s"}
    # the gate then runs on the carried thresholds, no --rule needed
    ci = CliRunner().invoke(
        app, ["ci", str(suite), "--baseline", "tiny", "--repeat", "2", "--out", "r.json",
              "--fail-on", "exact"],
    )  # fmt: skip
    assert ci.exit_code == 0, ci.output
    report = json.loads((suite.parent / "r.json").read_text())
    assert len(report["run_ratios"]["resnet18/latency_b1_median_ms"]) == 2


def test_baseline_from_several_runs_keeps_every_runs_ratio(suite) -> None:
    import json

    from typer.testing import CliRunner

    from emobench.cli import app

    runner = CliRunner()
    for name in ("a.json", "b.json"):
        assert runner.invoke(app, ["run", str(suite), "--out", name]).exit_code == 0
    saved = runner.invoke(app, ["baseline", "save", "a.json", "b.json", "--name", "two"])
    assert saved.exit_code == 0, saved.output
    (stored,) = (suite.parent / "results" / "baselines" / "two").iterdir()
    ratios = json.loads(stored.read_text())["run_ratios"]
    assert len(ratios["resnet18/latency_b1_median_ms"]) == 2


def test_calibrate_refuses_bad_options_before_running(suite) -> None:
    from typer.testing import CliRunner

    from emobench.cli import app

    for args, message in (
        (["--runs", "2"], "--runs must be >= 3"),
        (["--alpha", "1.5"], "--alpha must be a probability"),
        (["--save-baseline", "../x"], "use a plain file name"),
    ):
        result = CliRunner().invoke(app, ["calibrate", str(suite), *args])
        assert result.exit_code == 2 and message in result.stderr
        assert not (suite.parent / "results").exists()


def test_a_kind_rule_is_a_floor_under_calibrated_thresholds() -> None:
    base, _ = calibrated_baseline(runs())
    carried = base.thresholds["vgg16/latency_b1_median_ms"]
    cur = make_report(dn_latency=[s * 1.0 for s in TIGHT_DN])

    def tol(rules: dict[str, float]) -> float | None:
        v = next(
            v for v in B.check(cur, base, rules)
            if v.pipeline == "ratio" and v.metric == "latency_b1_median_ms"
        )  # fmt: skip
        return v.threshold

    assert tol({}) == carried
    assert tol({"portable": carried + 0.2}) == pytest.approx(carried + 0.2)  # looser floor wins
    assert tol({"portable": 0.0}) == carried  # a tighter kind rule does not undercut it
    assert tol({"latency_b1_median_ms": 0.01}) == 0.01  # a key rule is exact


def test_calibrate_from_reports_pools_every_run(suite) -> None:
    """Runs already made (two --repeat 2 reports) calibrate without running the suite again."""
    import json

    from typer.testing import CliRunner

    from emobench.cli import app

    runner = CliRunner()
    for name in ("a.json", "b.json"):
        made = runner.invoke(app, ["run", str(suite), "--repeat", "2", "--out", name])
        assert made.exit_code == 0, made.output
    result = runner.invoke(
        app, ["calibrate", "--from", "a.json", "--from", "b.json", "--save-baseline", "pooled"]
    )
    assert result.exit_code == 0, result.output
    assert "A/A calibration" in result.stdout and "run 1 of" not in result.stderr
    (stored,) = (suite.parent / "results" / "baselines" / "pooled").iterdir()
    data = json.loads(stored.read_text())
    assert len(data["run_ratios"]["resnet18/latency_b1_median_ms"]) == 4
    assert data["gate_alpha"] == 0.05
    for args in ([], [str(suite), "--from", "a.json"]):
        refused = runner.invoke(app, ["calibrate", *args])
        assert refused.exit_code == 2 and "not both" in refused.stderr
