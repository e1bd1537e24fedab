"""Reports as versioned JSON: round trip, plain dataclasses, the header checked first, malformed and
deeply nested files refused."""

from __future__ import annotations

import dataclasses
import json
import re
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


# -- issue #26: every number in its domain, refused with the field's JSON path ---------------


def _numeric_fields() -> set[tuple[type, str]]:
    """Every (dataclass, field) of the report tree whose type holds an int or a float."""
    import types
    import typing

    found: set[tuple[type, str]] = set()
    seen: set[type] = set()

    def leaves(tp: object) -> set[object]:
        args = typing.get_args(tp)
        if typing.get_origin(tp) in (typing.Union, types.UnionType, list, dict):
            return {leaf for a in args for leaf in leaves(a)}
        return {tp}

    def walk(cls: type) -> None:
        if cls in seen:
            return
        seen.add(cls)
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            for leaf in leaves(hints[f.name]):
                if leaf in (int, float):
                    found.add((cls, f.name))
                elif dataclasses.is_dataclass(leaf) and isinstance(leaf, type):
                    walk(leaf)

    walk(R.Report)
    return found


def test_every_numeric_field_has_a_domain() -> None:
    """A new int or float field needs a decision in results.io.DOMAINS, not a default."""
    from emobench.results.io import DOMAINS

    recorded = {(cls, name) for cls, fields in DOMAINS.items() for name in fields}
    assert _numeric_fields() - recorded == set()
    assert recorded - _numeric_fields() == set()  # no entry for a field that is gone


def test_every_committed_report_loads() -> None:
    """The domains refuse none of the reports the project keeps: the old-format fixtures and
    every stored baseline under results/."""
    from tests.paths import REPORTS, ROOT

    paths = sorted(REPORTS.glob("*.json")) + sorted((ROOT / "results").rglob("*.json"))
    assert len(paths) >= 4
    for path in paths:
        assert R.load(path).kind in R.KINDS, path


def _edited(tmp_path: Path, data: dict, edit) -> Path:
    edit(data)
    path = tmp_path / "r.json"
    path.write_text(json.dumps(data))  # json writes NaN and Infinity as Python reads them
    return path


def _set_latency_median(value: float):
    return lambda d: d["results"][0]["latency"]["stats"].__setitem__("median", value)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            _set_latency_median(-0.222),
            "results[0].latency.stats.median must be a finite number > 0, got -0.222",
        ),
        (
            _set_latency_median(float("nan")),
            "results[0].latency.stats.median must be a finite number > 0, got nan",
        ),
        (
            _set_latency_median(float("inf")),
            "results[0].latency.stats.median must be a finite number > 0, got inf",
        ),
        (
            lambda d: d["results"][1]["latency"]["stats"]["samples"].__setitem__(3, -1),
            "results[1].latency.stats.samples[3] must be a finite number >= 0, got -1.0",
        ),
        (
            lambda d: d["results"][0]["throughput"][0].__setitem__("batch_size", 0),
            "results[0].throughput[0].batch_size must be an integer >= 1, got 0",
        ),
        (
            lambda d: d["results"][0]["params"].__setitem__("total", -5),
            "results[0].params.total must be an integer >= 0, got -5",
        ),
        (
            lambda d: d.__setitem__("run_ratios", {"vgg16/latency_b1_median_ms": [9.0, -9.8]}),
            'run_ratios["vgg16/latency_b1_median_ms"][1] must be a finite number > 0, got -9.8',
        ),
        (
            lambda d: d.__setitem__("gate_alpha", 1.5),
            "gate_alpha must be a finite number in (0, 1), got 1.5",
        ),
        (
            lambda d: d["config"].__setitem__("min_time_s", float("nan")),
            "config.min_time_s must be a finite number, got nan",
        ),
        (
            lambda d: d["environment"].__setitem__("cpu count", float("-inf")),
            'environment["cpu count"] must be a finite number, got -inf',
        ),
        (
            lambda d: d.__setitem__("run_ratios", {"vgg16/latency_b1_median_ms": "fast"}),
            "malformed report (expected a list, got str)",
        ),
        (
            lambda d: d.__setitem__("thresholds", {"vgg16/latency_b1_median_ms": "10%"}),
            "malformed report (expected a number, got '10%')",
        ),
        (
            lambda d: d["results"][0].__setitem__("compile_s", 10**400),
            "results[0].compile_s must be a finite number > 0, got an integer of about 401 digits",
        ),
        (  # an integer field: the domain test itself used to raise OverflowError
            lambda d: d["results"][0]["params"].__setitem__("total", 10**400),
            "results[0].params.total must be a finite number >= 0, got an integer of about 401 "
            "digits",
        ),
        (
            lambda d: d["results"][0]["latency"]["stats"].__setitem__("n", -(10**400)),
            "results[0].latency.stats.n must be a finite number >= 1, got an integer of about 401 "
            "digits",
        ),
        (
            lambda d: d["results"][0]["latency"]["stats"].__setitem__("median_ci_high", 0.001),
            "results[0].latency.stats.median (100.05) must not be above "
            "results[0].latency.stats.median_ci_high (0.001)",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_numbers_outside_their_domain_are_refused_with_their_path(
    tmp_path: Path, edit, message: str
) -> None:
    from tests.factories import make_report

    path = _edited(tmp_path, R.to_dict(make_report()), edit)
    with pytest.raises(ReportError) as caught:
        R.load(path)
    assert str(caught.value) == f"{path}: {message}"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda ft: ft.__setitem__("runs", []), "finetune.runs must not be empty"),
        (lambda ft: ft["runs"][0].__setitem__("epochs", []), "finetune.runs[0].epochs must not"),
        (
            lambda ft: ft["runs"][1]["test"].__setitem__("accuracy", 1.5),
            "finetune.runs[1].test.accuracy must be a finite number in [0, 1], got 1.5",
        ),
        (
            lambda ft: ft["paired"][0].__setitem__("mcnemar_p", -0.1),
            "finetune.paired[0].mcnemar_p must be a finite number in [0, 1], got -0.1",
        ),
        (
            lambda ft: ft["runs"][0]["epochs"][0].__setitem__("train_s", 0),
            "finetune.runs[0].epochs[0].train_s must be a finite number > 0, got 0.0",
        ),
    ],
    ids=["no runs", "no epochs", "accuracy 1.5", "p -0.1", "train_s 0"],
)
def test_finetune_reports_are_checked_too(tmp_path: Path, edit, message: str) -> None:
    from tests.paths import REPORTS

    data = json.loads((REPORTS / "finetune-v1.json").read_text())
    path = _edited(tmp_path, data, lambda d: edit(d["finetune"]))
    with pytest.raises(ReportError, match=re.escape(message)):
        R.load(path)


def test_a_number_too_long_for_python_is_not_valid_json(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text('{"schema": "emobench.report", "n": ' + "9" * 5000 + "}")
    with pytest.raises(ReportError, match="not valid JSON"):
        R.load(path)


def test_saving_a_nan_is_a_report_error_not_a_traceback(tmp_path: Path) -> None:
    from tests.factories import make_report

    report = dataclasses.replace(make_report(), wall_time_s=float("nan"))
    with pytest.raises(ReportError, match="cannot write report"):
        R.save(report, tmp_path / "r.json")
    assert list(tmp_path.iterdir()) == []


# -- review: intervals hold their point, a low end is not above its high end -----------------


def _paired_data(ratio: float, low: float | None, high: float | None) -> dict:
    from tests.factories import make_report

    found = R.PairedRatio("vgg16", "latency_b1_median_ms", 3, ratio, low, high, "ci", [ratio] * 3)
    return R.to_dict(dataclasses.replace(make_report(), paired=[found]))


@pytest.mark.parametrize(
    ("ratio", "low", "high", "message"),
    [
        (14.0, 15.0, 13.0, "paired[0].ci_low (15.0) must not be above paired[0].ratio (14.0)"),
        (16.0, 13.0, 15.0, "paired[0].ratio (16.0) must not be above paired[0].ci_high (15.0)"),
        (14.0, None, 13.0, "paired[0].ratio (14.0) must not be above paired[0].ci_high (13.0)"),
        (14.0, 14.0 * (1 + 1e-12), None, None),  # rounding in the JSON: within the tolerance
        (14.0, None, None, None),
    ],
)
def test_a_paired_ratio_lies_within_its_interval(
    tmp_path: Path, ratio: float, low: float | None, high: float | None, message: str | None
) -> None:
    path = _edited(tmp_path, _paired_data(ratio, low, high), lambda d: None)
    if message is None:
        assert R.load(path).paired[0].ratio == ratio
        return
    with pytest.raises(ReportError) as caught:
        R.load(path)
    assert str(caught.value) == f"{path}: {message}"


def test_safe_batch_is_not_above_max_batch_and_frequencies_are_ordered(tmp_path: Path) -> None:
    from tests.factories import make_report, maxbatch_report

    data = R.to_dict(maxbatch_report(100, 200))
    path = _edited(tmp_path, data, lambda d: d["maxbatch"][1].__setitem__("safe_batch", 201))
    with pytest.raises(ReportError) as caught:
        R.load(path)
    assert str(caught.value) == (
        f"{path}: maxbatch[1].safe_batch (201) must not be above maxbatch[1].max_batch (200)"
    )
    from emobench.results.measurements import Contention

    contention = Contention(10.0, 2, 5.0, 0.0, 0.0, None, 3000.0, 2000.0, None, False)
    data = R.to_dict(dataclasses.replace(make_report(), contention=contention))
    path = _edited(tmp_path, data, lambda d: None)
    with pytest.raises(ReportError, match=r"contention.cpu_freq_mhz_min \(3000.0\) must not"):
        R.load(path)


def test_a_finetune_interval_is_ordered(tmp_path: Path) -> None:
    from tests.paths import REPORTS

    data = json.loads((REPORTS / "finetune-v1.json").read_text())
    paired = data["finetune"]["paired"][0]
    paired["ci_low_points"], paired["ci_high_points"] = 3.0, -3.0
    path = _edited(tmp_path, data, lambda d: None)
    with pytest.raises(ReportError, match=r"finetune.paired\[0\].ci_low_points \(3.0\) must not"):
        R.load(path)
