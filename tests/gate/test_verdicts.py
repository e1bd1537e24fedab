from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from emobench import results as R
from emobench.cli import app
from emobench.errors import ReportError, UsageError
from emobench.gate import store as S
from emobench.gate import verdicts as B
from emobench.machine import class_id
from emobench.stats import gate as G
from tests.factories import TIGHT_DN, TIGHT_UP, make_report, other_class
from tests.paths import CONFIGS

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


def test_mann_whitney() -> None:
    assert G.mann_whitney_p_greater([2.0] * 10, [1.0] * 10) < 1e-3
    assert G.mann_whitney_p_greater([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) > 0.4
    assert G.mann_whitney_p_greater([5.0], [1.0, 2.0]) == 1.0  # too few samples to tell


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    R.save(make_report(), tmp_path / "base.json")
    R.save(make_report(dn_params=8_424_776), tmp_path / "changed.json")
    return tmp_path


def test_check_cli_exit_codes(files: Path) -> None:
    ok = runner.invoke(app, ["check", "base.json", "--baseline", "base.json"])
    assert ok.exit_code == 0, ok.output
    assert "regression check" in ok.stdout
    n = len(B.check(make_report(), make_report()))
    assert f"{n} of {n} checks pass" in ok.stdout
    bad = runner.invoke(
        app, ["check", "changed.json", "--baseline", "base.json", "--markdown", "s.md"]
    )
    assert bad.exit_code == 1
    md = (files / "s.md").read_text()
    assert md.startswith("| backbone | pipeline | metric |") and "**fail" in md
    js = runner.invoke(app, ["check", "changed.json", "--baseline", "base.json", "--json"])
    assert js.exit_code == 1
    failed = [v for v in json.loads(js.stdout) if v["verdict"] == "fail"]
    assert {(v["pipeline"], v["metric"]) for v in failed} >= {("direct48", "params_total")}
    only_machine = runner.invoke(
        app, ["check", "changed.json", "--baseline", "base.json", "--fail-on", "machine"]
    )
    assert only_machine.exit_code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["check", "missing.json", "--baseline", "base.json"], "no such report"),
        (["check", "base.json", "--baseline", "garbage.json"], "not valid JSON"),
        (["check", "base.json", "--baseline", "base.json", "--rule", "x:1%"], "unknown metric"),
        (["check", "base.json", "--baseline", "base.json", "--fail-on", "vibes"], "--fail-on"),
        (["check", "newer.json", "--baseline", "base.json"], "newer than this emobench"),
        (["check", "two.json", "--baseline", "base.json"], "different suites"),
    ],
)
def test_check_cli_bad_input(files: Path, args: list[str], message: str) -> None:
    (files / "garbage.json").write_text("{")
    newer = R.to_dict(make_report()) | {"schema_version": R.SCHEMA_VERSION + 1}
    (files / "newer.json").write_text(json.dumps(newer))
    R.save(make_report(backbones=("vgg16", "resnet18")), files / "two.json")
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_baseline_save_refuses_overwrite(files: Path) -> None:
    first = runner.invoke(app, ["baseline", "save", "base.json", "--name", "ci"])
    assert first.exit_code == 0, first.output
    stored = files / "results" / "baselines" / "ci" / f"{class_id(make_report().environment)}.json"
    assert f"baseline written to results/baselines/ci/{stored.name}" in first.stdout
    original = stored.read_bytes()
    again = runner.invoke(app, ["baseline", "save", "changed.json", "--name", "ci"])
    assert again.exit_code == 2 and "--force" in again.stderr
    assert stored.read_bytes() == original
    forced = runner.invoke(app, ["baseline", "save", "changed.json", "--name", "ci", "--force"])
    assert forced.exit_code == 0
    assert R.load(stored).result("vgg16", "direct48").params.total == 8_424_776  # type: ignore[union-attr]


def test_baseline_save_bad_input_changes_nothing(files: Path) -> None:
    (files / "garbage.json").write_text("[]")
    for args in (
        ["baseline", "save", "garbage.json", "--name", "x"],
        ["baseline", "save", "nope.json", "--name", "x"],
        ["baseline", "save", "base.json", "--name", "../escape"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, args
    assert not (files / "results").exists()


def test_save_baseline_library(tmp_path: Path) -> None:
    R.save(make_report(), tmp_path / "r.json")
    target = S.save_baseline(tmp_path / "r.json", "x", directory=tmp_path / "b")
    assert target == tmp_path / "b" / "x" / f"{class_id(make_report().environment)}.json"
    assert R.load(target) == R.load(tmp_path / "r.json")
    # another class goes beside it, not over it
    R.save(other_class(make_report()), tmp_path / "avx2.json")
    second = S.save_baseline(tmp_path / "avx2.json", "x", directory=tmp_path / "b")
    assert second.parent == target.parent and second != target
    assert [b.machine_class for b in S.list_baselines(tmp_path / "b")] == sorted(
        [S.machine_class(make_report()), S.machine_class(other_class(make_report()))]
    )
    with pytest.raises(UsageError, match="already exists"):
        S.save_baseline(tmp_path / "r.json", "x", directory=tmp_path / "b")
    with pytest.raises(ReportError):
        S.save_baseline(tmp_path / "none.json", "y", directory=tmp_path / "b")


def test_portable_ratio_move_within_noise_passes_as_noisy() -> None:
    rng = random.Random(7)
    noisy_dn = [10.0 * rng.uniform(0.4, 2.5) for _ in range(8)]
    shifted = sorted(noisy_dn)[:3] + [s * 1.6 for s in sorted(noisy_dn)[3:]]
    base, cur = make_report(dn_latency=noisy_dn), make_report(dn_latency=shifted)
    verdicts = by_key(B.check(cur, base, {"machine": 10.0}))
    v = verdicts[("ratio", "latency_b1_median_ms")]
    assert v.delta is not None and abs(v.delta) > B.DEFAULT_PORTABLE_TOLERANCE
    assert v.verdict == B.NOISY and "95% intervals" in v.note


def test_ratio_interval_brackets_the_ratio_and_is_deterministic() -> None:
    lo, hi = G.ratio_interval(TIGHT_UP, TIGHT_DN)
    assert lo <= 100.1 / 10.005 <= hi and hi / lo < 1.05
    assert G.ratio_interval(TIGHT_UP, TIGHT_DN) == (lo, hi)


# -- machine classes: one baseline per class, fallback, candidate ------------------------------

SLOW_DN = [s * 20 for s in TIGHT_DN]  # direct48 twice as slow as upscale224
CI_SUITE = CONFIGS / "ci.toml"


@pytest.fixture
def classes(files: Path) -> dict[str, str]:
    """results/baselines/ci/ holding the AVX-512 class; AVX2-only reports next to it."""
    S.save_baseline(files / "base.json", "ci")
    R.save(other_class(make_report()), files / "avx2.json")
    R.save(other_class(make_report(dn_params=8_424_776)), files / "avx2-changed.json")
    R.save(other_class(make_report(dn_latency=SLOW_DN)), files / "avx2-slow.json")
    return {
        "avx512": class_id(make_report().environment),
        "avx2": class_id(other_class(make_report()).environment),
    }


def test_no_baseline_of_this_class_gates_on_exact_and_invariants(
    files: Path, classes: dict[str, str]
) -> None:
    ok = runner.invoke(app, ["check", "avx2.json", "--baseline", "ci", "--markdown", "s.md"])
    assert ok.exit_code == 0, ok.output
    candidate = Path("results") / f"baseline-candidate-{classes['avx2']}.json"
    assert R.load(files / candidate) == R.load(files / "avx2.json")
    out = ok.stdout
    assert f"no baseline of machine class {classes['avx2']} in results/baselines/ci" in out
    assert f"baseline class {classes['avx512']}: AMD EPYC, ISA avx512" in out
    assert (
        f"this report's class {classes['avx2']}: AMD EPYC, ISA avx2 (torch dispatches AVX2)" in out
    )
    assert "what differs (baseline vs this report): cpu_capability: AVX512 vs AVX2; " in out
    assert f"written to {candidate}; adopt it with: " in out
    assert f"emobench baseline save {candidate} --name ci\n" in out
    assert "shown, not compared (different machine class)" in out
    md = (files / "s.md").read_text()
    assert f"`emobench baseline save {candidate} --name ci`" in md
    assert "| ratio | latency_b1_median_ms (x) | invariant | > 1 |" in md

    changed = runner.invoke(app, ["check", "avx2-changed.json", "--baseline", "ci", "--json"])
    assert changed.exit_code == 1
    verdicts = json.loads(changed.stdout)
    failed = {(v["kind"], v["metric"]) for v in verdicts if v["verdict"] == "fail"}
    # the factory derives FLOPs and weight bytes from the parameter count
    assert failed == {
        ("exact", key)
        for key in ("params_total", "params_trainable", "flops_per_image", "weight_bytes")
    }
    assert "no baseline of machine class" in changed.stderr

    slow_args = ["check", "avx2-slow.json", "--baseline", "ci", "--candidate-out", "slow.json"]
    slow = runner.invoke(app, [*slow_args, "--json"])
    assert slow.exit_code == 1
    # a report that fails a gating check is no candidate
    assert not (files / "slow.json").exists()
    assert f"no candidate baseline written for {classes['avx2']}: this report failed" in (
        slow.stderr
    )
    failed_verdicts = [v for v in json.loads(slow.stdout) if v["verdict"] == "fail"]
    assert {(v["kind"], v["metric"]) for v in failed_verdicts} == {
        ("invariant", "latency_b1_median_ms"),
        ("invariant", "throughput_b8_images_per_s"),
    }
    # invariants gate like any kind: leave them out of --fail-on and they only show
    exact_only = ["check", "avx2-slow.json", "--baseline", "ci", "--fail-on", "exact"]
    assert runner.invoke(app, exact_only).exit_code == 0


def test_baseline_name_folder_and_file_resolve(files: Path, classes: dict[str, str]) -> None:
    S.save_baseline(files / "avx2.json", "ci")
    folder = Path("results/baselines/ci")
    for arg in ("ci", str(folder), str(files / folder)):
        for report, cls in (("avx2.json", "avx2"), ("base.json", "avx512")):
            result = runner.invoke(app, ["check", report, "--baseline", arg])
            assert result.exit_code == 0, result.output
            assert f"{classes[cls]}, the same as this report's" in result.stdout
    assert not (files / "results" / f"baseline-candidate-{classes['avx2']}.json").exists()
    # one file of another class: the cross-class rules, saved under its folder's name
    single = folder / f"{classes['avx512']}.json"
    result = runner.invoke(app, ["check", "avx2.json", "--baseline", str(single)])
    assert result.exit_code == 0, result.output
    assert f"baseline {single} is of another machine class" in result.stdout
    assert "--name ci\n" in result.stdout
    # the older layout: NAME.json is still read, by name or path
    (files / folder / f"{classes['avx2']}.json").unlink()
    (files / folder / f"{classes['avx512']}.json").rename(files / "results/baselines/old.json")
    legacy = runner.invoke(app, ["check", "base.json", "--baseline", "old"])
    assert legacy.exit_code == 0 and "old.json: machine class" in legacy.stdout


def test_missing_baseline_name_is_one_error_line(files: Path, classes: dict[str, str]) -> None:
    result = runner.invoke(app, ["check", "base.json", "--baseline", "nightly"])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: --baseline 'nightly': no baseline of that name in results/baselines "
        "(stored: ci); record one with `emobench baseline save REPORT --name nightly`"
    ]
    (files / "results" / "baselines" / "empty").mkdir()
    empty = runner.invoke(app, ["check", "base.json", "--baseline", "empty"])
    assert empty.exit_code == 2 and "holds no baseline files" in empty.stderr


def test_baseline_list(files: Path, classes: dict[str, str]) -> None:
    empty = runner.invoke(app, ["baseline", "list", "--dir", "elsewhere"])
    assert empty.exit_code == 0 and "no baselines in elsewhere" in empty.stdout
    S.save_baseline(files / "avx2.json", "ci")
    S.save_baseline(files / "base.json", "nightly")
    result = runner.invoke(app, ["baseline", "list"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if "│ ci" in line]
    assert len(lines) == 2
    assert sum("│ nightly" in line for line in result.stdout.splitlines()) == 1
    assert classes["avx2"] in lines[0] and "2026-11-25T00:00:00Z" in lines[0]
    assert classes["avx512"] in lines[1] and "vgg16" in lines[1]
    assert "ISA avx2 (torch dispatches AVX2)" in result.stdout


def test_ci_without_a_baseline_of_this_class_writes_the_candidate(
    files: Path, classes: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import emobench.cli.gate as cli

    measured = other_class(make_report())
    monkeypatch.setattr(cli, "measure_and_save", lambda *args, **kwargs: measured)
    suite = files / "vgg16.toml"  # the suite of the stored baselines (vgg16 only)
    suite.write_text(CI_SUITE.read_text().replace('"vgg16", "resnet18"', '"vgg16"'))
    args = ["ci", str(suite), "--baseline", "ci", "--candidate-out", "art/cand.json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert R.load(files / "art" / "cand.json") == measured
    assert (
        f"candidate baseline for {classes['avx2']} written to art/cand.json; adopt it with: "
        "emobench baseline save art/cand.json --name ci\n"
    ) in result.stdout
    monkeypatch.setattr(
        cli, "measure_and_save", lambda *a, **k: other_class(make_report(dn_latency=SLOW_DN))
    )
    assert runner.invoke(app, args).exit_code == 1


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


def _with_config(report: R.Report, **config: object) -> R.Report:
    import dataclasses

    return dataclasses.replace(report, config=report.config | config)


def test_different_precision_is_nothing_comparable() -> None:
    base = _with_config(make_report(), precision="fp32")
    cur = _with_config(make_report(), precision="bf16")
    with pytest.raises(UsageError, match=r"nothing comparable: .*precision bf16 vs fp32"):
        B.check(cur, base)


def test_threads_in_force_differ_is_nothing_comparable() -> None:
    base = _with_config(make_report(), in_force={"num_threads": 2})
    cur = _with_config(make_report(), in_force={"num_threads": 1})
    with pytest.raises(UsageError, match="num_threads 1 vs 2"):
        B.check(cur, base)


def test_a_different_preprocessing_size_makes_only_preprocessing_incomparable() -> None:
    slow = [s * 2 for s in TIGHT_DN]
    base = _with_config(make_report(), preprocess_images=64)
    cur = _with_config(make_report(dn_latency=slow), preprocess_images=16)
    verdicts = by_key(B.check(cur, base))
    pre = verdicts[("ratio", "preprocess_per_image_pil_us")]
    assert pre.verdict == B.INCOMPARABLE and not pre.failed
    assert pre.note == "preprocess_images 16 vs 64"
    # the latency regression is still seen: its settings match
    assert verdicts[("direct48", "latency_b1_median_ms")].failed
    assert verdicts[("direct48", "params_total")].verdict == B.PASS


def test_check_cli_exits_2_when_settings_differ(tmp_path: Path) -> None:
    R.save(_with_config(make_report(), precision="fp32"), tmp_path / "base.json")
    R.save(_with_config(make_report(), precision="bf16"), tmp_path / "cur.json")
    result = runner.invoke(
        app, ["check", str(tmp_path / "cur.json"), "--baseline", str(tmp_path / "base.json")]
    )
    assert result.exit_code == 2
    assert "error: nothing comparable" in result.stderr and "Traceback" not in result.output


def test_baseline_save_refuses_an_empty_report(files: Path) -> None:
    empty = files / "empty.json"
    empty.write_text(json.dumps(R.to_dict(make_report()) | {"results": []}))
    result = runner.invoke(app, ["baseline", "save", "empty.json", "--name", "ci"])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: empty.json: a run report with no results: nothing was measured"
    ]
    assert not (files / "results" / "baselines" / "ci").exists()
