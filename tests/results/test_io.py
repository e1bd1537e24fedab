"""Reports as versioned JSON: round trip, plain dataclasses, the header checked first, malformed and
deeply nested files refused."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from emobench import results as R
from emobench.errors import ReportError


def test_json_round_trip(real_report: R.Report, tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    R.save(real_report, path)
    data = json.loads(path.read_text())
    assert data["schema"] == "emobench.report" and data["schema_version"] == R.SCHEMA_VERSION
    loaded = R.load(path)
    assert loaded == real_report
    assert R.to_dict(loaded) == data
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary file left


def test_load_rejects_bad_files(real_report: R.Report, tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="no such report"):
        R.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ReportError, match="not valid JSON"):
        R.load(bad)
    bad.write_text('{"hello": 1}')
    with pytest.raises(ReportError, match="not an emobench report"):
        R.load(bad)
    newer = R.to_dict(real_report) | {"schema_version": R.SCHEMA_VERSION + 1}
    bad.write_text(json.dumps(newer))
    with pytest.raises(ReportError, match="newer than this emobench"):
        R.load(bad)
    broken = R.to_dict(real_report)
    del broken["results"][0]["params"]
    bad.write_text(json.dumps(broken))
    with pytest.raises(ReportError, match="malformed report"):
        R.load(bad)
    wrong_type = R.to_dict(real_report)
    wrong_type["results"][0]["params"]["total"] = "many"
    bad.write_text(json.dumps(wrong_type))
    with pytest.raises(ReportError, match="malformed"):
        R.load(bad)


def test_report_is_plain_dataclasses(real_report: R.Report) -> None:
    assert dataclasses.is_dataclass(real_report)
    json.dumps(dataclasses.asdict(real_report))  # every field serialises


# -- issue #13: what a report file may be, and how it is written ---------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"results": []}, "a run report with no results"),
        ({"schema_version": 0}, "schema version 0 is not one this emobench reads"),
        ({"schema_version": True}, "no integer schema_version"),
        ({"kind": "weird"}, "unknown report kind 'weird'"),
        ({"kind": "maxbatch", "maxbatch": []}, "a maxbatch report with no maxbatch"),
    ],
)
def test_load_checks_kind_version_and_results(
    real_report: R.Report, tmp_path: Path, change: dict, message: str
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(R.to_dict(real_report) | {"kind": "run"} | change))
    with pytest.raises(ReportError, match=message):
        R.load(bad)


def test_deeply_nested_json_is_a_report_error(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ReportError, match="nested too deeply"):
        R.load(deep)
