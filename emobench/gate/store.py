"""Baselines on disk: one file per machine class under results/baselines/NAME/, found by name,
folder or file; several runs of one suite pooled into one baseline; never overwritten without
force. Also the machine class of a report, which decides which baseline it is checked against."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from emobench import files, machine
from emobench import results as R
from emobench.errors import ReportError, UsageError
from emobench.gate.calibrate import check_same_variants, combine_runs, distinct_runs
from emobench.names import BASELINE_DIR

CANDIDATE_NAME = "baseline-candidate-{machine_class}.json"  # under results/


def machine_class(report: R.Report) -> str:
    """The report's class id, computed from its environment (old reports store none)."""
    return machine.class_id(report.environment)


def same_class(a: R.Report, b: R.Report) -> bool:
    return machine_class(a) == machine_class(b)


def suite(report: R.Report) -> set[tuple[str, str, str]]:
    """What a report covers: backbone x pipeline x runtime variant."""
    return {(r.backbone, r.pipeline, r.variant) for r in report.results}


@dataclass(frozen=True)
class StoredBaseline:
    """One stored baseline file, under the name it is stored as."""

    name: str
    path: Path
    report: R.Report

    @property
    def machine_class(self) -> str:
        return machine_class(self.report)


@dataclass(frozen=True)
class Selection:
    """The baseline a check uses for one report, and why; the summary is written from it."""

    baseline: StoredBaseline
    current_class: str
    current_description: str
    differences: list[str]  # 'field: baseline vs current' per differing class field
    searched: Path | None  # the folder that held no baseline of the current class
    name: str  # what to save this class's baseline as
    directory: Path
    candidate: Path | None = None  # where the current report was written as a candidate
    candidate_withheld: bool = False  # not written: the report failed a gating check

    @property
    def same_class(self) -> bool:
        return self.baseline.machine_class == self.current_class

    @property
    def baseline_description(self) -> str:
        return machine.describe(self.baseline.report.environment)

    def adopt_command(self, report_path: Path) -> str:
        """The command that stores `report_path` as this class's baseline."""
        where = "" if self.directory == BASELINE_DIR else f" --dir {self.directory}"
        return f"emobench baseline save {report_path} --name {self.name}{where}"


@dataclass(frozen=True)
class BaselineSource:
    """What --baseline named: a name or folder (one file per machine class) or a single file."""

    name: str
    directory: Path  # the folder that holds NAME/ (results/baselines by default)
    stored: list[StoredBaseline]
    folder: Path | None  # None for a single file

    @property
    def metric_keys(self) -> set[str]:
        return {r.key for b in self.stored for r in R.metric_rows(b.report)}

    def select(self, current: R.Report) -> Selection:
        """The baseline of the current report's class; else the newest one of any class."""
        cls = machine_class(current)
        same = [b for b in self.stored if b.machine_class == cls]
        chosen = max(same or self.stored, key=lambda b: b.report.created_utc)
        return Selection(
            baseline=chosen,
            current_class=cls,
            current_description=machine.describe(current.environment),
            differences=machine.differences(chosen.report.environment, current.environment),
            searched=self.folder if not same else None,
            name=self.name,
            directory=self.directory,
        )


def _plain_name(text: str) -> bool:
    return bool(text) and "/" not in text and os.sep not in text and not text.startswith(".")


def _load_baseline(path: Path, name: str) -> StoredBaseline:
    report = R.load(path)
    if report.kind == "maxbatch":
        raise ReportError(f"{path}: a maxbatch report cannot be a timing baseline")
    return StoredBaseline(name, path, report)


def _folder_source(folder: Path) -> BaselineSource:
    files = sorted(folder.glob("*.json"))
    if not files:
        raise UsageError(f"--baseline {folder}: the folder holds no baseline files (*.json)")
    stored = [_load_baseline(f, folder.name) for f in files]
    return BaselineSource(folder.name, folder.parent, stored, folder)


def _file_source(path: Path) -> BaselineSource:
    # results/baselines/NAME/<class>.json belongs to NAME; an older NAME.json is its own name
    loaded = _load_baseline(path, path.stem)
    in_layout = path.stem == loaded.machine_class
    name = path.parent.name if in_layout else path.stem
    directory = path.parent.parent if in_layout else path.parent
    return BaselineSource(name, directory, [StoredBaseline(name, path, loaded.report)], None)


def baseline_files(text: str, directory: Path = BASELINE_DIR) -> list[Path]:
    """The files --baseline TEXT names, found without reading them (what a command must never
    write over): the file, the *.json of a folder or of NAME's folder, or NAME.json."""
    path = Path(text)
    if path.is_dir():
        return sorted(path.glob("*.json"))
    if path.exists():
        return [path]
    if _plain_name(text) and not text.endswith(".json"):
        if (directory / text).is_dir():
            return sorted((directory / text).glob("*.json"))
        if (directory / f"{text}.json").is_file():
            return [directory / f"{text}.json"]
    return []


def resolve_baseline(text: str, directory: Path = BASELINE_DIR) -> BaselineSource:
    """--baseline as a file, a folder of per-class files, or a NAME under `directory`."""
    path = Path(text)
    if path.is_dir():
        return _folder_source(path)
    if path.exists():  # a regular file, or something that is not: R.load says what it is
        return _file_source(path)
    if _plain_name(text) and not text.endswith(".json"):
        if (directory / text).is_dir():
            return _folder_source(directory / text)
        if (directory / f"{text}.json").is_file():  # the layout before machine classes
            return _file_source(directory / f"{text}.json")
        known = sorted({b.name for b in list_baselines(directory)})
        raise UsageError(
            f"--baseline {text!r}: no baseline of that name in {directory} "
            f"(stored: {', '.join(known) or 'none'}); record one with "
            f"`emobench baseline save REPORT --name {text}`"
        )
    raise ReportError(f"{path}: no such report file")


def list_baselines(directory: Path = BASELINE_DIR) -> list[StoredBaseline]:
    """Every stored baseline: NAME/<class>.json files, and NAME.json files of the older layout."""
    if not directory.is_dir():
        return []
    stored = []
    for entry in sorted(directory.iterdir()):
        if entry.is_dir():
            stored += [_load_baseline(f, entry.name) for f in sorted(entry.glob("*.json"))]
        elif entry.suffix == ".json":
            stored.append(_load_baseline(entry, entry.stem))
    return stored


def candidate_path(report: R.Report, directory: Path = BASELINE_DIR) -> Path:
    """Default artifact path of a report offered as its class's first baseline."""
    return directory.parent / CANDIDATE_NAME.format(machine_class=machine_class(report))


def baseline_target(report: R.Report, name: str, directory: Path = BASELINE_DIR) -> Path:
    """Where baseline NAME of this report's machine class is stored."""
    return directory / name / f"{machine_class(report)}.json"


def check_baseline_target(target: Path, force: bool) -> None:
    """A stored baseline is replaced only with force."""
    if target.exists() and not force:
        raise UsageError(f"baseline {target} already exists; pass --force to overwrite it")


def check_baseline_name(name: str) -> None:
    if not _plain_name(name):
        raise UsageError(f"--name {name!r}: use a plain file name such as 'ci' or 'h100-vgg16'")


def load_runs(paths: list[Path], name: str = "") -> list[R.Report]:
    """Reports that can be pooled as runs of one baseline: one machine class, one suite, the
    same runtime variants in the same order (each variant's ratios pool with its own)."""
    reports = [_load_baseline(p, name).report for p in paths]
    classes = {machine_class(r) for r in reports}
    if len(classes) > 1:
        raise UsageError(f"the reports come from {len(classes)} machine classes; save each apart")
    check_same_variants(reports)
    if len({frozenset(suite(r)) for r in reports}) > 1:
        raise UsageError("the reports cover different suites; a baseline is one suite's runs")
    return reports


def load_distinct_runs(paths: list[Path], name: str = "") -> tuple[list[R.Report], list[str]]:
    """`load_runs` with each run once, as calibrate --from counts them: a file given twice
    (or two names of one file) is read once, and two files of one run (calibrate.run_identity:
    a copy, a re-saved baseline, a baseline and its last run) are one. Returns the reports and
    one note per duplicate ('a.json given 3 times'), for a `note: ...: counted once` line."""
    unique: list[Path] = []
    for path in paths:
        if not any(path == seen or files.same_file(path, seen) for seen in unique):
            unique.append(path)
    notes = []
    for path in unique:
        times = sum(p == path or files.same_file(p, path) for p in paths)
        if times > 1:
            notes.append(f"{path} given {times} times")
    named = list(zip(map(str, unique), load_runs(unique, name), strict=True))
    kept, same_run = distinct_runs(named)
    return [report for _, report in kept], notes + same_run


def save_baseline(
    report_path: Path | list[Path],
    name: str,
    force: bool = False,
    directory: Path = BASELINE_DIR,
    note: Callable[[str], None] = lambda _: None,
) -> Path:
    """Copy a validated report to NAME/<machine class>.json; never overwrite without force.

    Several reports (runs of one suite on one machine class) are stored as one baseline that
    carries every run's ratios; with three or more, the check compares with their geometric
    mean at the threshold their spread gives (calibrate.gate_threshold). Each run counts once
    (`load_distinct_runs`; `note` gets a line per duplicate): the same report given three times
    would otherwise be three identical runs, a spread of 0 and a gate tighter than the runs
    justify. The target may be one of the inputs (with force): every input is read before the
    new baseline replaces it atomically, so new runs can be pooled into an existing baseline.
    """
    check_baseline_name(name)
    paths = report_path if isinstance(report_path, list) else [report_path]
    reports, notes = load_distinct_runs(paths, name)
    report = combine_runs(reports)
    target = baseline_target(report, name, directory)
    check_baseline_target(target, force)
    R.save(report, target)
    for line in notes:
        note(line)
    return target
