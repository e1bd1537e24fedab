"""The gate's commands: baseline save and list, check, ci, calibrate (exit codes, messages,
files)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from emobench import results as R
from emobench.cli import app
from emobench.files import marker
from emobench.gate import store as S
from emobench.gate import verdicts as B
from emobench.gate.calibrate import MIN_THRESHOLD
from emobench.machine import class_id
from tests.factories import TIGHT_DN, TINY_SUITE, make_report, other_class, with_config
from tests.paths import CONFIGS


def test_run_and_ci_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    suite = tmp_path / "tiny.toml"
    suite.write_text(TINY_SUITE)
    runner = CliRunner()
    first = runner.invoke(app, ["run", str(suite), "--out", "r1.json"])
    assert first.exit_code == 0, first.output
    data = json.loads((tmp_path / "r1.json").read_text())
    assert data["kind"] == "run" and data["config"]["name"] == "tiny"
    saved = runner.invoke(app, ["baseline", "save", "r1.json", "--name", "tiny"])
    assert saved.exit_code == 0
    ci = runner.invoke(
        app,
        [
            "ci",
            str(suite),
            "--baseline",
            "tiny",
            "--fail-on",
            "exact",
            "--markdown",
            "summary.md",
            "--out",
            "r2.json",
        ],
    )
    assert ci.exit_code == 0, ci.output
    assert "regression check" in ci.stdout
    assert "the same as this report's" in ci.stdout  # results/baselines/tiny/<this class>.json
    assert "| exact |" in (tmp_path / "summary.md").read_text()


def test_ci_bad_baseline_fails_before_running(tmp_path: Path) -> None:
    suite = tmp_path / "tiny.toml"
    suite.write_text(TINY_SUITE)
    result = CliRunner().invoke(app, ["ci", str(suite), "--baseline", str(tmp_path / "no.json")])
    assert result.exit_code == 2 and "no such report" in result.stderr


runner = CliRunner()


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
    assert md.startswith(marker("markdown") + "| backbone | pipeline | metric |")
    assert "**fail" in md
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


def test_check_cli_exits_2_when_settings_differ(tmp_path: Path) -> None:
    R.save(with_config(make_report(), precision="fp32"), tmp_path / "base.json")
    R.save(with_config(make_report(), precision="bf16"), tmp_path / "cur.json")
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
    assert table["schema"] == "emobench.calibration" and table["alpha"] == 0.05
    keys = {row["key"] for row in table["calibrations"]}
    assert keys >= {"latency_b1_median_ms", "throughput_b2_images_per_s"}
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


# -- issue #26: NaN never switches the gate off; outputs never clobber; calibrate's inputs --------


def _one_error(result, message: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert "Traceback" not in result.output


def test_check_refuses_a_nan_report_and_a_nan_baseline(files: Path) -> None:
    data = R.to_dict(make_report())
    for r in data["results"]:
        r["latency"]["stats"]["median"] = float("nan")
    (files / "nan.json").write_text(json.dumps(data))
    message = "nan.json: results[0].latency.stats.median must be a finite number > 0, got nan"
    _one_error(runner.invoke(app, ["check", "nan.json", "--baseline", "base.json"]), message)
    _one_error(runner.invoke(app, ["check", "base.json", "--baseline", "nan.json"]), message)
    _one_error(runner.invoke(app, ["baseline", "save", "nan.json", "--name", "x"]), message)
    assert not (files / "results").exists()


def test_check_fails_on_a_metric_it_cannot_compare(files: Path) -> None:
    """direct48's latency gone from the report: before, no row said so and the check passed."""
    import dataclasses

    report = make_report()
    up, dn = report.results
    R.save(
        dataclasses.replace(report, results=[up, dataclasses.replace(dn, latency=None)]),
        files / "cur.json",
    )
    result = runner.invoke(app, ["check", "cur.json", "--baseline", "base.json", "--json"])
    assert result.exit_code == 1, result.output
    rows = [v for v in json.loads(result.stdout) if v["verdict"] == B.NOT_COMPARABLE]
    assert ("ratio", "latency_b1_median_ms", "portable") in {
        (v["pipeline"], v["metric"], v["kind"]) for v in rows
    }
    assert "not comparable (a value missing or not a finite number), counted as failures" in (
        result.stderr
    )
    # it gates as a failure of its kind: leave the kinds out of --fail-on and it only shows
    only_exact = ["check", "cur.json", "--baseline", "base.json", "--fail-on", "exact"]
    assert runner.invoke(app, only_exact).exit_code == 0


def test_check_baseline_that_is_a_device_says_so(files: Path) -> None:
    result = runner.invoke(app, ["check", "base.json", "--baseline", "/dev/zero"])
    _one_error(result, "/dev/zero: is a character device, expected a regular file")


def test_check_markdown_follows_the_output_policy(files: Path) -> None:
    (files / "notes.md").write_text("mine\n")
    foreign = runner.invoke(
        app, ["check", "base.json", "--baseline", "base.json", "--markdown", "notes.md"]
    )
    _one_error(foreign, "--markdown notes.md: exists and is not an emobench markdown file")
    assert (files / "notes.md").read_text() == "mine\n"
    own = [
        "check",
        "base.json",
        "--baseline",
        "changed.json",
        "--markdown",
        "changed.json",
        "--force",
    ]
    _one_error(runner.invoke(app, own), "--markdown changed.json: is one of this command's inputs")
    candidate = ["check", "base.json", "--baseline", "base.json", "--candidate-out", "base.json"]
    _one_error(runner.invoke(app, candidate), "--candidate-out base.json: is one of this")
    forced = ["check", "base.json", "--baseline", "base.json", "--markdown", "notes.md", "--force"]
    assert runner.invoke(app, forced).exit_code == 0
    assert (files / "notes.md").read_text().startswith(marker("markdown"))
    again = ["check", "base.json", "--baseline", "base.json", "--markdown", "notes.md"]
    assert runner.invoke(app, again).exit_code == 0  # ours now: replaced without --force


def test_check_does_not_rewrite_the_candidate_it_is_checking(
    files: Path, classes: dict[str, str]
) -> None:
    candidate = Path("results") / f"baseline-candidate-{classes['avx2']}.json"
    first = runner.invoke(app, ["check", "avx2.json", "--baseline", "ci"])
    assert first.exit_code == 0, first.output
    written_at = (files / candidate).stat().st_mtime_ns
    again = runner.invoke(app, ["check", str(candidate), "--baseline", "ci"])
    assert again.exit_code == 0, again.output
    assert (files / candidate).stat().st_mtime_ns == written_at
    # a default candidate path that is not a report is not replaced without --force
    (files / candidate).write_text("mine")
    refused = runner.invoke(app, ["check", "avx2.json", "--baseline", "ci"])
    _one_error(refused, f"--candidate-out {candidate}: exists and is not an emobench report")


@pytest.fixture
def three_runs(files: Path) -> list[str]:
    from tests.factories import drifting_runs

    names = ["r1.json", "r2.json", "r3.json"]
    for name, report in zip(names, drifting_runs()[:3], strict=True):
        R.save(report, files / name)
    return names


def test_calibrate_from_one_report_is_one_error_line(files: Path) -> None:
    result = runner.invoke(app, ["calibrate", "--from", "base.json"])
    _one_error(result, "--from: 1 distinct run; calibration needs at least 3")


def test_calibrate_counts_a_run_given_twice_once(files: Path, three_runs: list[str]) -> None:
    same = ["calibrate", "--from", "base.json", "--from", "base.json", "--from", "./base.json"]
    _one_error(
        runner.invoke(app, same), "--from: 1 distinct run (base.json given 3 times: counted once)"
    )
    (files / "copy.json").write_bytes((files / "r1.json").read_bytes())
    two = ["calibrate", "--from", "r1.json", "--from", "copy.json", "--from", "r2.json"]
    _one_error(runner.invoke(app, two), "2 distinct runs (copy.json holds the same run as r1.json")
    ok = runner.invoke(app, [*two, "--from", "r3.json"])
    assert ok.exit_code == 0, ok.output
    assert "note: copy.json holds the same run as r1.json: counted once" in ok.stderr
    assert "A/A calibration" in ok.stdout


def test_calibrate_out_follows_the_output_policy(files: Path, three_runs: list[str]) -> None:
    runs = [a for name in three_runs for a in ("--from", name)]
    own = runner.invoke(app, ["calibrate", *runs, "--out", "r2.json", "--force"])
    _one_error(own, "--out r2.json: is one of this command's inputs")
    (files / "notes.txt").write_text("mine\n")
    foreign = runner.invoke(app, ["calibrate", *runs, "--out", "notes.txt"])
    _one_error(foreign, "--out notes.txt: exists and is not an emobench calibration file")
    assert (files / "notes.txt").read_text() == "mine\n"
    first = runner.invoke(app, ["calibrate", *runs, "--out", "c.json"])
    assert first.exit_code == 0, first.output
    table = json.loads((files / "c.json").read_text())
    assert table["schema"] == "emobench.calibration" and len(table["calibrations"]) > 0
    assert runner.invoke(app, ["calibrate", *runs, "--out", "c.json"]).exit_code == 0


def test_calibrate_refuses_an_existing_baseline_before_calibrating(
    files: Path, three_runs: list[str]
) -> None:
    runs = [a for name in three_runs for a in ("--from", name)]
    assert runner.invoke(app, ["calibrate", *runs, "--save-baseline", "ci"]).exit_code == 0
    again = runner.invoke(app, ["calibrate", *runs, "--save-baseline", "ci", "--out", "c.json"])
    _one_error(again, "already exists; pass --force to overwrite it")
    assert "A/A calibration" not in again.stdout and not (files / "c.json").exists()
    assert (
        runner.invoke(app, ["calibrate", *runs, "--save-baseline", "ci", "--force"]).exit_code == 0
    )


def test_calibrate_of_a_suite_refuses_an_existing_baseline_after_one_run(
    files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The machine class (and so the baseline's file) is known only once a run has measured
    it: the refusal costs that one run, not all of them."""
    import emobench.cli.gate as cli

    S.save_baseline(files / "base.json", "ci")
    calls: list[int] = []

    def one_run(config, repeat, kind="run"):
        calls.append(repeat)
        return [make_report()], "cpu"

    monkeypatch.setattr(cli, "measure_runs", one_run)
    suite = files / "vgg16.toml"
    suite.write_text(CI_SUITE.read_text().replace('"vgg16", "resnet18"', '"vgg16"'))
    result = runner.invoke(app, ["calibrate", str(suite), "--runs", "5", "--save-baseline", "ci"])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == "run 1 of 5"
    assert result.stderr.splitlines()[1:] == [
        f"error: baseline results/baselines/ci/{class_id(make_report().environment)}.json "
        "already exists; pass --force to overwrite it"
    ]
    assert calls == [1]


# -- review: baseline save counts each run once ------------------------------------------------


def test_baseline_save_counts_a_report_given_twice_once(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    R.save(make_report(), report)
    folder = tmp_path / "b"
    args = ["baseline", "save", str(report), str(report), str(report), "--name", "ci"]
    result = runner.invoke(app, [*args, "--dir", str(folder)])
    assert result.exit_code == 0, result.output
    assert f"note: {report} given 3 times: counted once" in result.stderr
    (stored,) = (folder / "ci").iterdir()
    assert R.load(stored).run_ratios == {}  # one run, not three identical ones


# -- review: calibration per runtime variant ----------------------------------------------------


def test_calibrate_from_variant_runs_calibrates_each_variant(files: Path) -> None:
    from tests.gate.test_calibrate_variants import runs

    names = []
    for i, report in enumerate(runs()[:3]):
        names += ["--from", f"v{i}.json"]
        R.save(report, files / f"v{i}.json")
    result = runner.invoke(
        app, ["calibrate", *names, "--save-baseline", "rt", "--out", "c.json"], terminal_width=200
    )
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if "latency_b1_median_ms" in line]
    assert len(rows) == 2 and "torch" in rows[0] and "onnxruntime" in rows[1]
    (stored,) = (files / "results" / "baselines" / "rt").iterdir()
    data = json.loads(stored.read_text())
    for variant in ("torch", "onnxruntime"):
        assert len(data["run_ratios"][f"{variant}|vgg16/latency_b1_median_ms"]) == 3
        assert data["thresholds"][f"{variant}|vgg16/latency_b1_median_ms"] >= MIN_THRESHOLD
    table = json.loads((files / "c.json").read_text())
    assert {row["variant"] for row in table["calibrations"]} == {"torch", "onnxruntime"}


def test_calibrate_and_baseline_save_refuse_runs_of_another_variant_order(files: Path) -> None:
    from tests.gate.test_calibrate_variants import run, runs

    for i, report in enumerate(runs()[:3]):
        R.save(report, files / f"v{i}.json")
    R.save(run(order=("onnxruntime", "torch"), i=8), files / "swapped.json")
    both = "[torch, onnxruntime] and [onnxruntime, torch]"
    pooled = ["--from", "v0.json", "--from", "v1.json", "--from", "v2.json", "--from"]
    _one_error(runner.invoke(app, ["calibrate", *pooled, "swapped.json"]), both)
    saved = ["baseline", "save", "v0.json", "swapped.json", "--name", "rt"]
    _one_error(runner.invoke(app, saved), both)
    assert not (files / "results").exists()
