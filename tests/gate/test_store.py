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
