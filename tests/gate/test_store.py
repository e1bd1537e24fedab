"""Stored baselines: saved per machine class, never overwritten without force."""

from __future__ import annotations

from pathlib import Path

import pytest

from emobench import results as R
from emobench.errors import ReportError, UsageError
from emobench.gate import store as S
from emobench.machine import class_id
from tests.factories import make_report, other_class


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


# -- review: each run counts once in a baseline, as calibrate --from counts them --------------


def _runs(tmp_path: Path, n: int) -> list[Path]:
    import dataclasses

    paths = []
    for i in range(n):
        report = dataclasses.replace(
            make_report(up_latency=[100.0 + i, 101.0 + i, 99.0 + i]),
            created_utc=f"2026-11-25T00:0{i}:00Z",
        )
        paths.append(tmp_path / f"run{i}.json")
        R.save(report, paths[-1])
    return paths


def test_the_same_report_given_three_times_is_one_run(tmp_path: Path) -> None:
    (run,) = _runs(tmp_path, 1)
    notes: list[str] = []
    target = S.save_baseline(
        [run, run, tmp_path / "." / run.name], "x", directory=tmp_path / "b", note=notes.append
    )
    assert R.load(target) == R.load(run)  # one run: stored as it is, no run_ratios of 3
    assert R.load(target).run_ratios == {}
    assert notes == [f"{run} given 3 times"]


def test_a_copy_of_a_run_counts_once_and_distinct_runs_all_count(tmp_path: Path) -> None:
    import shutil

    paths = _runs(tmp_path, 3)
    shutil.copy(paths[0], tmp_path / "copy.json")
    notes: list[str] = []
    target = S.save_baseline(
        [*paths, tmp_path / "copy.json"], "x", directory=tmp_path / "b", note=notes.append
    )
    ratios = R.load(target).run_ratios
    assert ratios and all(len(v) == 3 for v in ratios.values())
    assert notes == [f"{tmp_path / 'copy.json'} holds the same run as {paths[0]}"]


def test_new_runs_pool_into_an_existing_baseline_with_force(tmp_path: Path) -> None:
    paths = _runs(tmp_path, 4)
    target = S.save_baseline(paths[:3], "x", directory=tmp_path / "b")
    # the baseline's own file is an input and the target: read first, then replaced atomically
    notes: list[str] = []
    again = S.save_baseline(
        [paths[3], target, paths[2]], "x", force=True, directory=tmp_path / "b", note=notes.append
    )
    assert again == target
    ratios = R.load(target).run_ratios
    assert ratios and all(len(v) == 4 for v in ratios.values())  # run 2 is inside the baseline
    assert notes == [f"{paths[2]} holds the same run as {target}"]
