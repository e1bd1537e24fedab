"""The regression gate's commands: `baseline save|list`, `check`, `ci` and `calibrate`."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from emobench import files as fileio
from emobench.cli.compare import measure_and_save, measure_runs
from emobench.cli.options import (
    DEFAULT_FAIL_ON,
    AlphaOpt,
    BaselineDirOpt,
    BaselineNameOpt,
    BaselineOpt,
    BaselineReportsArg,
    CalibrateOutOpt,
    CalibrateSuiteArg,
    CandidateOpt,
    CheckJsonOpt,
    FailOnOpt,
    ForceBaselineOpt,
    ForceCandidateOpt,
    ForceOutOrCandidateOpt,
    FreshReportArg,
    FromReportsOpt,
    OutOpt,
    RepeatOpt,
    RuleOpt,
    RunsOpt,
    SaveBaselineOpt,
    SuiteFileArg,
    VerdictMarkdownOpt,
    checked_plugins,
)
from emobench.cli.shell import (
    check_report_out,
    clean_errors,
    save_report,
    write_text,
)
from emobench.errors import UsageError
from emobench.names import BASELINE_DIR, RESULTS_DIR, TIMING_KINDS
from emobench.render.console import stdout_console


def baseline_root() -> None:
    """Manage stored baselines: results/baselines/NAME/<machine class>.json.

    \b
    Example:
      emobench baseline save results/ci.json --name ci
    """


@clean_errors
def baseline_save(
    report_files: BaselineReportsArg,
    name: BaselineNameOpt,
    force: ForceBaselineOpt = False,
    directory: BaselineDirOpt = BASELINE_DIR,
) -> None:
    """Store a report as the baseline of its machine class (refuses to overwrite without --force).

    \b
    Several reports (runs of one suite on one machine) make one baseline that keeps every
    run's ratios; the check compares with their median.

    \b
    Example:
      emobench baseline save results/ci.json --name ci
    """
    from emobench import results as report_mod
    from emobench.gate.store import machine_class, save_baseline
    from emobench.machine import describe

    target = save_baseline(list(report_files), name, force=force, directory=directory)
    stored = report_mod.load(target)
    typer.echo(
        f"baseline written to {target} "
        f"(machine class {machine_class(stored)}: {describe(stored.environment)})"
    )


@clean_errors
def baseline_list(directory: BaselineDirOpt = BASELINE_DIR) -> None:
    """List stored baselines: name, machine class, creation date and backbones.

    \b
    Example:
      emobench baseline list
    """
    from emobench.gate.store import list_baselines
    from emobench.render.gate import baselines_table

    stored = list_baselines(directory)
    if not stored:
        typer.echo(f"no baselines in {directory}; store one with `emobench baseline save`")
        return
    stdout_console().print(baselines_table(stored, directory))


@clean_errors
def check_cmd(
    report_file: FreshReportArg,
    baseline: BaselineOpt,
    rule: RuleOpt = None,
    markdown: VerdictMarkdownOpt = None,
    json_out: CheckJsonOpt = False,
    fail_on: FailOnOpt = DEFAULT_FAIL_ON,
    candidate_out: CandidateOpt = None,
    force: ForceCandidateOpt = False,
) -> None:
    """Compare a report with a baseline: exit 0 if all pass, 1 on a regression, 2 on bad input.

    \b
    Example:
      emobench check results/ci.json --baseline ci --rule portable:30%
    """
    from emobench import results as report_mod

    gating = _check_gate_options(rule or [], fail_on, markdown, candidate_out, force)
    kind, _data = report_mod.load_header(report_file)
    if kind not in TIMING_KINDS:
        raise UsageError(
            f"{report_file}: a {kind} report; check compares a compare or run report with a "
            "baseline"
        )
    prepared = _prepare_check(baseline, rule or [], gating, markdown, candidate_out)
    _check_and_exit(report_mod.load(report_file), prepared, json_out)


@clean_errors
def ci_cmd(
    config_file: SuiteFileArg,
    baseline: BaselineOpt,
    rule: RuleOpt = None,
    markdown: VerdictMarkdownOpt = None,
    out: OutOpt = None,
    fail_on: FailOnOpt = DEFAULT_FAIL_ON,
    candidate_out: CandidateOpt = None,
    force: ForceOutOrCandidateOpt = False,
    repeat: RepeatOpt = 1,
) -> None:
    """Run a suite and check it against a baseline in one step, for CI jobs.

    With no baseline of this machine's class it gates on exact metrics and invariants and,
    when those pass, writes the report as the class's candidate baseline.

    \b
    Example:
      emobench ci configs/ci.toml --baseline ci --markdown summary.md
    """
    from emobench.config import load_suite

    config = checked_plugins(load_suite(config_file))
    # bad options, output paths, a missing baseline or one of another suite fail here, before
    # the suite runs and before anything is written
    gating = _check_gate_options(rule or [], fail_on, markdown, candidate_out, force)
    check_report_out(out, force)
    prepared = _prepare_check(baseline, rule or [], gating, markdown, candidate_out)
    _check_same_suite(prepared.source, config, config_file)
    current = measure_and_save(
        config, out, kind="run", label=f"ci-{config.name}", force=force, repeat=repeat
    )
    _check_and_exit(current, prepared, False)


def _parse_fail_on(text: str, kinds: tuple[str, ...]) -> set[str]:
    chosen = {k.strip() for k in text.split(",") if k.strip()}
    if not chosen:
        raise UsageError(
            f"--fail-on {text!r} names no kind, which would disable the gate; name at least one "
            f"of: {', '.join(kinds)}"
        )
    unknown = chosen - set(kinds)
    if unknown:
        raise UsageError(f"--fail-on: unknown kind {sorted(unknown)[0]!r}; use {', '.join(kinds)}")
    return chosen


def _check_gate_options(
    rules: list[str],
    fail_on: str,
    markdown: Path | None,
    candidate_out: Path | None,
    force: bool,
) -> set[str]:
    """What check and ci can check before loading anything: --fail-on, the form of each --rule
    (their metric names need the baseline) and the output paths. Returns the gating kinds."""
    from emobench.gate.verdicts import KINDS, parse_rules

    gating = _parse_fail_on(fail_on, KINDS)
    parse_rules(rules, None)
    if markdown is not None:
        fileio.check_output(markdown, "--markdown")
    if candidate_out is not None:
        fileio.check_output(candidate_out, "--candidate-out", report=True, force=force)
    else:
        fileio.check_folder(RESULTS_DIR, "--candidate-out (default results/)")
    return gating


@dataclass(frozen=True)
class _PreparedCheck:
    source: Any  # baseline.BaselineSource
    rules: dict[str, float]
    gating: set[str]
    markdown: Path | None
    candidate_out: Path | None


def _prepare_check(
    baseline: str,
    rules: list[str],
    gating: set[str],
    markdown: Path | None,
    candidate_out: Path | None,
) -> _PreparedCheck:
    """Find and load the baseline(s) and check the --rule metric names against them, once."""
    from emobench.gate.store import resolve_baseline
    from emobench.gate.verdicts import parse_rules

    source = resolve_baseline(baseline)
    parsed = parse_rules(rules, source.metric_keys)
    return _PreparedCheck(source, parsed, gating, markdown, candidate_out)


def _check_same_suite(source: Any, config: Any, config_file: Path) -> None:
    """UsageError before the run when no stored baseline covers this suite's backbones x
    pipelines (the check after the run would refuse it anyway)."""
    suite = {(b, p) for b in config.backbones for p in config.pipelines}
    covered = [{(r.backbone, r.pipeline) for r in b.report.results} for b in source.stored]
    if suite not in covered:
        first = source.stored[0]
        raise UsageError(
            f"--baseline {source.name}: {first.path} covers {_suite_text(covered[0])}, but "
            f"{config_file} runs {_suite_text(suite)}; give a baseline of this suite"
        )


def _suite_text(suite: set[tuple[str, str]]) -> str:
    return ", ".join(f"{b}/{p}" for b, p in sorted(suite)) or "nothing"


def _check_and_exit(current: Any, prepared: _PreparedCheck, json_out: bool) -> None:
    """Check against the baseline of the report's class (else any, plus the invariants);
    without one of its class, a report that passes becomes that class's candidate baseline."""
    import dataclasses
    import json

    from emobench.gate.store import candidate_path
    from emobench.gate.verdicts import check
    from emobench.render.gate import check_summary, render_verdicts, verdicts_markdown

    selection = prepared.source.select(current)
    verdicts = check(current, selection.baseline.report, prepared.rules)
    failed = any(v.failed and v.kind in prepared.gating for v in verdicts)
    if not selection.same_class and failed:
        selection = dataclasses.replace(selection, candidate_withheld=True)
    elif not selection.same_class:
        candidate = prepared.candidate_out or candidate_path(current)
        save_report(current, candidate)
        selection = dataclasses.replace(selection, candidate=candidate)
    if prepared.markdown is not None:
        write_text(prepared.markdown, verdicts_markdown(verdicts, selection))
    if json_out:
        sys.stdout.write(json.dumps([dataclasses.asdict(v) for v in verdicts], indent=2) + "\n")
        for line in check_summary(verdicts, selection):
            typer.echo(line, err=True)
    else:
        render_verdicts(verdicts, stdout_console(), selection)
    if failed:
        raise typer.Exit(1)


@clean_errors
def calibrate_cmd(
    config_file: CalibrateSuiteArg = None,
    runs: RunsOpt = 5,
    from_reports: FromReportsOpt = None,
    alpha: AlphaOpt = 0.05,
    save_baseline: SaveBaselineOpt = None,
    force: ForceBaselineOpt = False,
    directory: BaselineDirOpt = BASELINE_DIR,
    out: CalibrateOutOpt = None,
) -> None:
    """A/A calibration: run a suite N times unchanged; per ratio, the run-to-run spread and
    the smallest regression the gate can detect at the false-alarm rate.

    \b
    Example:
      emobench calibrate configs/ci.toml --runs 20 --save-baseline ci --force
      emobench calibrate --from results/ci-run.json --from old.json --save-baseline ci --force
    """
    _check_calibrate_options(config_file, runs, from_reports, alpha, save_baseline, out)
    reports = _calibration_runs(config_file, runs, from_reports)
    from emobench.gate.calibrate import calibrated_baseline
    from emobench.render.gate import calibration_table

    base, calibrations = calibrated_baseline(reports, alpha)
    stdout_console().print(calibration_table(calibrations, alpha))
    busy = sum(bool(r.contention and r.contention.busy) for r in reports)
    if busy:
        typer.echo(f"warning: {busy} of {len(reports)} reports shared a busy machine", err=True)
    if out is not None:
        import dataclasses
        import json

        write_text(out, json.dumps([dataclasses.asdict(c) for c in calibrations], indent=2))
    if save_baseline is not None:
        target = _store_calibrated(base, save_baseline, force, directory)
        typer.echo(f"baseline written to {target} with calibrated thresholds")


def _check_calibrate_options(
    config_file: Path | None,
    runs: int,
    from_reports: list[Path] | None,
    alpha: float,
    save_baseline: str | None,
    out: Path | None,
) -> None:
    """Everything calibrate can refuse before it runs or loads anything."""
    import math

    if (config_file is None) == (not from_reports):
        raise UsageError("give a suite file to run, or --from report files, not both")
    if runs < 3:
        raise UsageError(f"--runs must be >= 3 to estimate a spread, got {runs}")
    if not (math.isfinite(alpha) and 0 < alpha < 1):
        raise UsageError(f"--alpha must be a probability in (0, 1), got {alpha}")
    if out is not None:
        check_report_out(out, True)
    if save_baseline is not None:
        from emobench.gate.store import check_baseline_name

        check_baseline_name(save_baseline)


def _calibration_runs(
    config_file: Path | None, runs: int, from_reports: list[Path] | None
) -> list[Any]:
    """The A/A runs: loaded from --from reports, or measured by running the suite `runs` times."""
    if from_reports:
        from emobench.gate.store import load_runs

        return load_runs(from_reports)
    from emobench.config import load_suite

    assert config_file is not None
    reports, _device = measure_runs(checked_plugins(load_suite(config_file)), runs)
    return reports


def _store_calibrated(base: Any, name: str, force: bool, directory: Path) -> Path:
    """Store the calibrated report as baseline NAME through the same path as `baseline save`."""
    import tempfile

    from emobench import results as report_mod
    from emobench.gate.store import save_baseline as store

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "calibrated.json"
        report_mod.save(base, path)
        return store(path, name, force=force, directory=directory)
