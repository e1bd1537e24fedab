"""A/A calibration: thresholds from run-to-run spread, and a check that uses them."""

from __future__ import annotations

import math
import statistics

import pytest
from scipy.stats import norm, t

from emobench import baseline as B
from emobench.calibrate import MIN_THRESHOLD, calibrate, calibrated_baseline
from tests.factories import TIGHT_DN, TIGHT_UP, make_report
from tests.test_config import TINY_SUITE

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
    noise = sd * math.sqrt(1 + 1 / 5)
    assert c.runs == 5 and c.log_sd == pytest.approx(sd)
    crit = t.ppf(1 - per_ratio / 2, 4)
    assert c.threshold == pytest.approx(max(MIN_THRESHOLD, math.expm1(crit * noise)))
    assert c.detectable == pytest.approx(math.expm1((crit + norm.ppf(0.8)) * noise))
    assert c.spread == pytest.approx(max(ratios) / min(ratios) - 1)


def test_calibrated_baseline_gates_at_its_own_threshold() -> None:
    base, _ = calibrated_baseline(runs())
    threshold = base.thresholds["vgg16/latency_b1_median_ms"]
    assert 0.03 <= threshold < 0.5
    assert len(base.run_ratios["vgg16/latency_b1_median_ms"]) == 5
    median_ratio = statistics.median(base.run_ratios["vgg16/latency_b1_median_ms"])

    def verdict(factor: float) -> B.Verdict:
        cur = make_report(dn_latency=[s * factor for s in TIGHT_DN])
        return next(
            v
            for v in B.check(cur, base)
            if v.pipeline == "ratio" and v.metric == "latency_b1_median_ms"
        )

    inside = verdict(1.0 + threshold / 2)  # direct48 a little slower than the runs' median
    assert inside.verdict == B.PASS and inside.threshold == threshold
    assert inside.baseline == pytest.approx(median_ratio)
    outside = verdict(1.0 / (1.0 - min(0.9, threshold * 1.5)))  # beyond it: a regression
    assert outside.failed and "calibration runs" in outside.note


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
