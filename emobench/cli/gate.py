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
    ForceCalibrateOpt,
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

    target = save_baseline(
        list(report_files),
        name,
        force=force,
        directory=directory,
        note=lambda line: typer.echo(f"note: {line}: counted once", err=True),
    )
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

    A metric that cannot be compared (a value missing, or not a finite number) is a `not
    comparable` row and fails like a regression of its kind; it never passes.

    \b
    Example:
      emobench check results/ci.json --baseline ci --rule portable:30%
    """
    from emobench import results as report_mod
    from emobench.gate.store import baseline_files

    inputs = [report_file, *baseline_files(baseline)]
    gating = _check_gate_options(rule or [], fail_on, markdown, candidate_out, force, inputs)
    kind, _data = report_mod.load_header(report_file)
    if kind not in TIMING_KINDS:
        raise UsageError(
            f"{report_file}: a {kind} report; check compares a compare or run report with a "
            "baseline"
        )
    prepared = _prepare_check(baseline, rule or [], gating, markdown, candidate_out, force, inputs)
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
    from emobench.gate.store import baseline_files

    config = checked_plugins(load_suite(config_file))
    # bad options, output paths, a missing baseline or one of another suite fail here, before
    # the suite runs and before anything is written
    inputs = [config_file, *baseline_files(baseline)]
    gating = _check_gate_options(rule or [], fail_on, markdown, candidate_out, force, inputs, out)
    check_report_out(out, force)
    prepared = _prepare_check(baseline, rule or [], gating, markdown, candidate_out, force, inputs)
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
    inputs: list[Path],
    out: Path | None = None,
) -> set[str]:
    """What check and ci can check before loading anything: --fail-on, the form of each --rule
    (their metric names need the baseline) and the output paths (never an input, an existing
    file only when it is ours or with --force, no two alike). Returns the gating kinds."""
    from emobench.gate.verdicts import KINDS, parse_rules

    gating = _parse_fail_on(fail_on, KINDS)
    parse_rules(rules, None)
    outputs = [
        (markdown, "--markdown", "markdown"),
        (candidate_out, "--candidate-out", "report"),
        (out, "--out", "report"),
    ]
    fileio.check_outputs(outputs, force=force, inputs=inputs)
    if candidate_out is None:
        fileio.check_folder(RESULTS_DIR, "--candidate-out (default results/)")
    return gating


@dataclass(frozen=True)
class _PreparedCheck:
    source: Any  # baseline.BaselineSource
    rules: dict[str, float]
    gating: set[str]
    markdown: Path | None
    candidate_out: Path | None
    force: bool = False
    inputs: tuple[Path, ...] = ()  # the files read: never written over


def _prepare_check(
    baseline: str,
    rules: list[str],
    gating: set[str],
    markdown: Path | None,
    candidate_out: Path | None,
    force: bool = False,
    inputs: list[Path] | None = None,
) -> _PreparedCheck:
    """Find and load the baseline(s) and check the --rule metric names against them, once."""
    from emobench.gate.store import resolve_baseline
    from emobench.gate.verdicts import parse_rules

    source = resolve_baseline(baseline)
    parsed = parse_rules(rules, source.metric_keys)
    read = (*(inputs or []), *(b.path for b in source.stored))
    return _PreparedCheck(source, parsed, gating, markdown, candidate_out, force, read)


def _check_same_suite(source: Any, config: Any, config_file: Path) -> None:
    """UsageError before the run when no stored baseline covers this suite's backbones x
    pipelines (the check after the run would refuse it anyway)."""
    variants = [v.label for v in config.variants]
    suite = {(b, p, v) for b in config.backbones for p in config.pipelines for v in variants}
    covered = [
        {(r.backbone, r.pipeline, r.variant) for r in b.report.results} for b in source.stored
    ]
    if suite not in covered:
        first = source.stored[0]
        raise UsageError(
            f"--baseline {source.name}: {first.path} covers {_suite_text(covered[0])}, but "
            f"{config_file} runs {_suite_text(suite)}; give a baseline of this suite"
        )


def _suite_text(suite: set[tuple[str, str, str]]) -> str:
    """backbone/pipeline, with the runtime variant where it is not torch alone."""
    return (
        ", ".join(f"{b}/{p}" + ("" if v == "torch" else f" [{v}]") for b, p, v in sorted(suite))
        or "nothing"
    )


def _check_and_exit(current: Any, prepared: _PreparedCheck, json_out: bool) -> None:
    """Check against the baseline of the report's class (else any, plus the invariants);
    without one of its class, a report that passes becomes that class's candidate baseline."""
    import dataclasses
    import json

    from emobench.gate.store import candidate_path
    from emobench.gate.verdicts import check
    from emobench.render.gate import check_summary, render_verdicts, verdicts_markdown

    selection = prepared.source.select(current)
    candidate = prepared.candidate_out or candidate_path(current)
    # the default candidate path is known now; the report checked may already be that file
    already_there = any(fileio.same_file(candidate, p) for p in prepared.inputs)
    if not selection.same_class and prepared.candidate_out is None and not already_there:
        fileio.check_output(
            candidate, "--candidate-out", report=True, force=prepared.force, inputs=prepared.inputs
        )
    verdicts = check(current, selection.baseline.report, prepared.rules)
    failed = any(v.failed and v.kind in prepared.gating for v in verdicts)
    if not selection.same_class and failed:
        selection = dataclasses.replace(selection, candidate_withheld=True)
    elif not selection.same_class:
        if not already_there:
            save_report(current, candidate)
        selection = dataclasses.replace(selection, candidate=candidate)
    if prepared.markdown is not None:
        write_text(prepared.markdown, verdicts_markdown(verdicts, selection))
    if json_out:
        rows = [_finite_or_none(dataclasses.asdict(v)) for v in verdicts]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        for line in check_summary(verdicts, selection):
            typer.echo(line, err=True)
    else:
        render_verdicts(verdicts, stdout_console(), selection)
    if failed:
        raise typer.Exit(1)


def _finite_or_none(row: dict[str, Any]) -> dict[str, Any]:
    """A verdict for --json: a value that is not a finite number is null (JSON has no NaN)."""
    import math

    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()}


@clean_errors
def calibrate_cmd(
    config_file: CalibrateSuiteArg = None,
    runs: RunsOpt = 5,
    from_reports: FromReportsOpt = None,
    alpha: AlphaOpt = 0.05,
    save_baseline: SaveBaselineOpt = None,
    force: ForceCalibrateOpt = False,
    directory: BaselineDirOpt = BASELINE_DIR,
    out: CalibrateOutOpt = None,
) -> None:
    """A/A calibration: run a suite N times unchanged; per ratio, the run-to-run spread and
    the smallest regression the gate can detect at the false-alarm rate.

    With --from, a run given twice (the same file, or two files of one run) counts once, and
    at least 3 distinct runs are needed.

    \b
    Example:
      emobench calibrate configs/ci.toml --runs 20 --save-baseline ci --force
      emobench calibrate --from results/ci-run.json --from old.json --save-baseline ci --force
    """
    _check_calibrate_options(
        config_file, runs, from_reports, alpha, save_baseline, out, force, directory
    )

    def check_target(report: Any) -> None:
        """An existing --save-baseline file (this report's class) is refused before the work
        that would be lost: before calibrating --from reports, after a suite's first run."""
        if save_baseline is not None:
            from emobench.gate.store import baseline_target, check_baseline_target

            check_baseline_target(baseline_target(report, save_baseline, directory), force)

    reports = _calibration_runs(config_file, runs, from_reports, check_target)
    from emobench.gate.calibrate import calibrated_baseline
    from emobench.render.gate import calibration_table

    try:
        base, calibrations = calibrated_baseline(reports, alpha)
    except ValueError as exc:  # e.g. no portable ratio with 3 runs
        raise UsageError(f"cannot calibrate: {exc}") from None
    stdout_console().print(calibration_table(calibrations, alpha))
    busy = sum(bool(r.contention and r.contention.busy) for r in reports)
    if busy:
        typer.echo(f"warning: {busy} of {len(reports)} reports shared a busy machine", err=True)
    if out is not None:
        write_text(out, _calibration_json(calibrations, alpha))
    if save_baseline is not None:
        target = _store_calibrated(base, save_baseline, force, directory)
        typer.echo(f"baseline written to {target} with calibrated thresholds")


CALIBRATION_SCHEMA = "emobench.calibration"  # files.is_artefact recognises it


def _calibration_json(calibrations: list[Any], alpha: float) -> str:
    """calibrate --out: one JSON object, so a later run knows the file as its own."""
    import dataclasses
    import json

    data = {
        "schema": CALIBRATION_SCHEMA,
        "schema_version": 1,
        "alpha": alpha,
        "calibrations": [dataclasses.asdict(c) for c in calibrations],
    }
    return json.dumps(data, indent=2) + "\n"


def _check_calibrate_options(
    config_file: Path | None,
    runs: int,
    from_reports: list[Path] | None,
    alpha: float,
    save_baseline: str | None,
    out: Path | None,
    force: bool,
    directory: Path,
) -> None:
    """Everything calibrate can refuse before it runs or loads anything."""
    import math

    if (config_file is None) == (not from_reports):
        raise UsageError("give a suite file to run, or --from report files, not both")
    if runs < 3:
        raise UsageError(f"--runs must be >= 3 to estimate a spread, got {runs}")
    if not (math.isfinite(alpha) and 0 < alpha < 1):
        raise UsageError(f"--alpha must be a probability in (0, 1), got {alpha}")
    inputs = [*(from_reports or []), *([config_file] if config_file else [])]
    fileio.check_outputs([(out, "--out", "calibration")], force=force, inputs=inputs)
    if save_baseline is not None:
        from emobench.gate.store import check_baseline_name

        check_baseline_name(save_baseline)
        fileio.check_folder(directory / save_baseline, f"--save-baseline {save_baseline}")


def _calibration_runs(
    config_file: Path | None,
    runs: int,
    from_reports: list[Path] | None,
    check_target: Any,
) -> list[Any]:
    """The A/A runs: loaded from --from reports (each run once, at least 3), or measured by
    running the suite `runs` times. `check_target(report)` runs as soon as a report of this
    machine class is at hand."""
    if from_reports:
        loaded = _distinct_from_runs(from_reports)
        check_target(loaded[-1])
        return loaded
    from emobench.config import load_suite

    assert config_file is not None
    config = checked_plugins(load_suite(config_file))
    reports: list[Any] = []
    for i in range(runs):
        typer.echo(f"run {i + 1} of {runs}", err=True)
        measured, _device = measure_runs(config, 1)
        reports += measured
        if i == 0:  # the machine class is known only now: one run spent, not all of them
            check_target(measured[0])
    return reports


def _distinct_from_runs(paths: list[Path]) -> list[Any]:
    """The --from reports, each run counted once (gate.calibrate.run_identity); UsageError,
    before any calibration, when fewer than MIN_RUNS distinct runs remain."""
    from emobench.gate.calibrate import MIN_RUNS, runs_held
    from emobench.gate.store import load_distinct_runs

    kept, notes = load_distinct_runs(paths)
    total = sum(runs_held(report) for report in kept)
    counted = f" ({'; '.join(notes)}: counted once)" if notes else ""
    if total < MIN_RUNS:
        raise UsageError(
            f"--from: {total} distinct run{'' if total == 1 else 's'}{counted}; calibration "
            f"needs at least {MIN_RUNS} (a --repeat report counts each of its runs)"
        )
    for note in notes:
        typer.echo(f"note: {note}: counted once", err=True)
    return kept


def _store_calibrated(base: Any, name: str, force: bool, directory: Path) -> Path:
    """Store the calibrated report as baseline NAME through the same path as `baseline save`."""
    import tempfile

    from emobench import results as report_mod
    from emobench.gate.store import save_baseline as store

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "calibrated.json"
        report_mod.save(base, path)
        return store(path, name, force=force, directory=directory)
