"""Runs across report files: how many runs a report holds and which files hold the same run,
so calibrate, baseline save and claims count each run once. Torch-free."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from typing import TypeVar

from emobench.results.schema import Report
from emobench.stats.gate import usable

N = TypeVar("N")


def runs_held(report: Report) -> int:
    """How many runs a report holds: one, or the runs whose ratios it carries (`--repeat`, a
    combined or calibrated baseline)."""
    return max((len(usable(v)) for v in report.run_ratios.values()), default=0) or 1


def run_identity(report: Report) -> str:
    """What makes two report files the same run: its start time, environment, settings and
    results of every kind (a copy of a file, a file re-saved as a baseline, or a baseline and
    its last run: combining runs changes only run_ratios, contention and thresholds)."""
    held = {
        "created_utc": report.created_utc,
        "environment": report.environment,
        "config": report.config,
        "results": [dataclasses.asdict(r) for r in report.results],
        "paired": [dataclasses.asdict(p) for p in report.paired],
        "maxbatch": [dataclasses.asdict(m) for m in report.maxbatch],
        "finetune": dataclasses.asdict(report.finetune) if report.finetune else None,
    }
    if report.stream is not None:  # only then: every other report's identity stays as it was
        held["stream"] = dataclasses.asdict(report.stream)
    text = json.dumps(held, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def distinct_runs(
    named: list[tuple[N, Report]], label: Callable[[N], str] = str
) -> tuple[list[tuple[N, Report]], list[str]]:
    """The reports with each run once (of two files of one run, the one holding more runs is
    kept) and one note per duplicate dropped: '<label> holds the same run as <label>'."""
    kept: dict[str, int] = {}
    out: list[tuple[N, Report]] = []
    notes: list[str] = []
    for name, report in named:
        identity = run_identity(report)
        if identity not in kept:
            kept[identity] = len(out)
            out.append((name, report))
            continue
        i = kept[identity]
        notes.append(f"{label(name)} holds the same run as {label(out[i][0])}")
        if runs_held(report) > runs_held(out[i][1]):
            out[i] = (name, report)
    return out, notes


VARIANT_SEP = "|"  # "variant|backbone/metric": a ratio of a report that holds runtime variants


def variant_run_ratios(report: Report, variant: str) -> dict[str, list[float]]:
    """One variant's runs' ratios, keyed "backbone/metric" ({} for a variant the report does
    not hold): those named "variant|...", else the plain names when it is the report's first
    variant (a plain torch report's, or, in a report of several variants whose runs were
    combined before ratios were kept per variant, the first variant's, the only ones kept)."""
    if variant not in report.variants:
        return {}
    prefix = f"{variant}{VARIANT_SEP}"
    own = {k[len(prefix) :]: v for k, v in report.run_ratios.items() if k.startswith(prefix)}
    if own or variant != report.variants[0]:
        return own
    return {k: v for k, v in report.run_ratios.items() if VARIANT_SEP not in k}
