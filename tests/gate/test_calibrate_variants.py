"""Calibration of reports holding runtime variants: each variant's ratios are calibrated, stored
and gated on their own ("variant|backbone/metric"); runs pool only with the same variants in
the same order; a plain torch report keeps its "backbone/metric" names."""

from __future__ import annotations

import dataclasses
import math
import statistics
from pathlib import Path

import pytest
from rich.console import Console

from emobench import results as R
from emobench.errors import UsageError
from emobench.gate import store as S
from emobench.gate import verdicts as B
from emobench.gate.calibrate import (
    calibrate,
    calibrated_baseline,
    combine_runs,
    run_ratios,
    variant_run_ratios,
)
from emobench.names import ORT_RUNTIME, TORCH_RUNTIME
from emobench.render.gate import calibration_table
from tests.factories import DRIFT, TIGHT_DN, TIGHT_UP, make_report

LATENCY = "latency_b1_median_ms"
TORCH_KEY = f"torch|vgg16/{LATENCY}"
ORT_KEY = f"onnxruntime|vgg16/{LATENCY}"
ORT_DRIFT = (1.00, 1.12, 0.90, 1.06, 0.95)  # onnxruntime's runs spread wider than torch's
TORCH_CENTRE = 10.0  # upscale224 100 ms / direct48 10 ms
ORT_CENTRE = 20.0  # upscale224 50 ms / direct48 2.5 ms
ROUNDS = (0.99, 1.0, 1.01, 1.0, 0.995, 1.005)  # a paired run's per-round spread


def _paired(variant: str, ratio: float) -> R.PairedRatio:
    rounds = [ratio * r for r in ROUNDS]
    return R.PairedRatio.from_rounds("vgg16", LATENCY, rounds, "target reached", variant)


def run(
    torch_factor: float = 1.0,
    ort_factor: float = 1.0,
    order: tuple[str, ...] = (TORCH_RUNTIME, ORT_RUNTIME),
    i: int = 0,
) -> R.Report:
    """One run holding torch and onnxruntime side by side: direct48's latency x `*_factor`
    (so the ratio / factor), each variant with its paired latency ratio."""
    torch = make_report(dn_latency=[s * torch_factor for s in TIGHT_DN])
    ort = make_report(
        up_latency=[s * 0.5 for s in TIGHT_UP], dn_latency=[s * 0.25 * ort_factor for s in TIGHT_DN]
    )
    by_variant = {
        TORCH_RUNTIME: (torch.results, _paired(TORCH_RUNTIME, TORCH_CENTRE / torch_factor)),
        ORT_RUNTIME: (
            [dataclasses.replace(r, runtime=ORT_RUNTIME) for r in ort.results],
            _paired(ORT_RUNTIME, ORT_CENTRE / ort_factor),
        ),
    }
    return dataclasses.replace(
        torch,
        results=[r for v in order for r in by_variant[v][0]],
        paired=[by_variant[v][1] for v in order],
        created_utc=f"2026-11-25T00:0{i}:00Z",
    )


def runs(order: tuple[str, ...] = (TORCH_RUNTIME, ORT_RUNTIME)) -> list[R.Report]:
    return [run(t, o, order, i) for i, (t, o) in enumerate(zip(DRIFT, ORT_DRIFT, strict=True))]


def _ratio(verdicts: list[B.Verdict], variant: str) -> B.Verdict:
    return next(
        v
        for v in verdicts
        if v.variant == variant and v.pipeline == "ratio" and v.metric == LATENCY
    )


def _geomean(values: list[float]) -> float:
    return math.exp(statistics.fmean(map(math.log, values)))


def test_each_variant_is_calibrated_with_its_own_threshold() -> None:
    base, calibrations = calibrated_baseline(runs())
    latency = {c.variant: c for c in calibrations if c.key == LATENCY}
    assert set(latency) == {TORCH_RUNTIME, ORT_RUNTIME}
    assert base.run_ratios[TORCH_KEY] == pytest.approx([TORCH_CENTRE / f for f in DRIFT])
    assert base.run_ratios[ORT_KEY] == pytest.approx([ORT_CENTRE / f for f in ORT_DRIFT])
    assert latency[ORT_RUNTIME].mean_ratio == pytest.approx(_geomean(base.run_ratios[ORT_KEY]))
    # every ratio is named per variant: nothing of either lands under a plain name
    assert all(k.split("|")[0] in (TORCH_RUNTIME, ORT_RUNTIME) for k in base.run_ratios)
    assert set(base.thresholds) == set(base.run_ratios)
    assert base.thresholds[TORCH_KEY] == latency[TORCH_RUNTIME].threshold
    assert base.thresholds[ORT_KEY] == latency[ORT_RUNTIME].threshold
    # onnxruntime's wider run-to-run spread gives it the looser threshold
    assert base.thresholds[ORT_KEY] > base.thresholds[TORCH_KEY] * 1.5


def test_a_calibrated_baseline_gates_each_variant_at_its_own_threshold() -> None:
    base, _ = calibrated_baseline(runs())
    t_tol, o_tol = base.thresholds[TORCH_KEY], base.thresholds[ORT_KEY]
    move = (t_tol + o_tol) / 2  # beyond torch's threshold, inside onnxruntime's
    t_centre, o_centre = _geomean(base.run_ratios[TORCH_KEY]), _geomean(base.run_ratios[ORT_KEY])
    # direct48 slower in both variants: each ratio falls by `move` from its own runs' centre
    cur = run(TORCH_CENTRE / (t_centre * (1 - move)), ORT_CENTRE / (o_centre * (1 - move)), i=9)
    verdicts = B.check(cur, base)
    torch, ort = _ratio(verdicts, TORCH_RUNTIME), _ratio(verdicts, ORT_RUNTIME)
    assert torch.threshold == pytest.approx(t_tol) and ort.threshold == pytest.approx(o_tol)
    assert torch.baseline == pytest.approx(t_centre) and ort.baseline == pytest.approx(o_centre)
    assert torch.delta == pytest.approx(-move) and ort.delta == pytest.approx(-move)
    assert torch.failed and "beyond the spread of 5 baseline runs" in torch.note
    assert ort.verdict == B.PASS


def test_a_repeat_report_keeps_each_variants_runs_and_is_checked_on_them() -> None:
    repeated = combine_runs(runs()[:3])
    assert set(repeated.run_ratios) >= {TORCH_KEY, ORT_KEY}
    assert repeated.run_ratios[ORT_KEY] == pytest.approx([ORT_CENTRE / f for f in ORT_DRIFT[:3]])
    assert repeated.run_ratios[TORCH_KEY] == pytest.approx([TORCH_CENTRE / f for f in DRIFT[:3]])
    base, _ = calibrated_baseline(runs())
    verdicts = B.check(repeated, base)
    for variant, key in ((TORCH_RUNTIME, TORCH_KEY), (ORT_RUNTIME, ORT_KEY)):
        assert _ratio(verdicts, variant).current == pytest.approx(
            _geomean(repeated.run_ratios[key])
        )
    # a --repeat report pools into a later calibration with each of its runs, per variant
    pooled = run_ratios([repeated, *runs()[3:]])
    assert pooled[("vgg16", LATENCY, ORT_RUNTIME)] == pytest.approx(
        [ORT_CENTRE / f for f in ORT_DRIFT]
    )


def test_the_check_reads_each_variant_by_name_whatever_its_order() -> None:
    """A baseline of torch then onnxruntime checks a report of onnxruntime then torch on each
    variant's own runs: nothing depends on which variant came first."""
    base, _ = calibrated_baseline(runs())
    swapped = combine_runs(runs((ORT_RUNTIME, TORCH_RUNTIME))[:3])
    verdicts = B.check(swapped, base)
    assert _ratio(verdicts, ORT_RUNTIME).current == pytest.approx(
        _geomean([ORT_CENTRE / f for f in ORT_DRIFT[:3]])
    )
    assert _ratio(verdicts, ORT_RUNTIME).threshold == pytest.approx(base.thresholds[ORT_KEY])
    assert _ratio(verdicts, TORCH_RUNTIME).threshold == pytest.approx(base.thresholds[TORCH_KEY])


def test_runs_of_another_variant_order_are_never_pooled(tmp_path: Path) -> None:
    mixed = [*runs()[:3], run(order=(ORT_RUNTIME, TORCH_RUNTIME), i=7)]
    both = r"\[torch, onnxruntime\] and \[onnxruntime, torch\]"
    for pool in (calibrate, combine_runs, run_ratios, calibrated_baseline):
        with pytest.raises(UsageError, match=both):
            pool(mixed)
    paths = []
    for i, report in enumerate(mixed):
        paths.append(tmp_path / f"r{i}.json")
        R.save(report, paths[-1])
    with pytest.raises(UsageError, match=both):
        S.load_runs(paths)
    with pytest.raises(UsageError, match=both):
        S.save_baseline(paths, "x", directory=tmp_path / "b")
    assert not (tmp_path / "b").exists()
    # a report without the second variant is refused the same way, naming both lists
    torch_only = dataclasses.replace(make_report(), created_utc="2026-11-25T00:08:00Z")
    R.save(torch_only, tmp_path / "torch.json")
    with pytest.raises(UsageError, match=r"\[torch, onnxruntime\] and \[torch\]"):
        S.load_runs([paths[0], tmp_path / "torch.json"])


def test_a_report_combined_before_per_variant_names_keeps_them_for_its_first_variant() -> None:
    """Runs combined before ratios were kept per variant carry plain names, and they were the
    first variant's only: calibration reads them as that variant's, never another's."""
    old = dataclasses.replace(run(), run_ratios={f"vgg16/{LATENCY}": [9.0, 10.0, 11.0]})
    assert variant_run_ratios(old, TORCH_RUNTIME) == {f"vgg16/{LATENCY}": [9.0, 10.0, 11.0]}
    assert variant_run_ratios(old, ORT_RUNTIME) == {}
    values = run_ratios([old])
    assert values[("vgg16", LATENCY, TORCH_RUNTIME)] == [9.0, 10.0, 11.0]
    assert values[("vgg16", LATENCY, ORT_RUNTIME)] == pytest.approx([ORT_CENTRE])


def test_an_onnxruntime_only_report_names_its_ratios_per_variant() -> None:
    only = [
        dataclasses.replace(
            r, results=[x for x in r.results if x.runtime == ORT_RUNTIME], paired=r.paired[1:]
        )
        for r in runs()
    ]
    base, calibrations = calibrated_baseline(only)
    assert {c.variant for c in calibrations} == {ORT_RUNTIME}
    assert ORT_KEY in base.thresholds and all(k.startswith("onnxruntime|") for k in base.run_ratios)
    verdicts = B.check(only[0], base)
    assert _ratio(verdicts, ORT_RUNTIME).threshold == pytest.approx(base.thresholds[ORT_KEY])


def test_a_plain_torch_calibration_keeps_its_names() -> None:
    torch_runs = [
        dataclasses.replace(r, results=r.results[:2], paired=r.paired[:1]) for r in runs()
    ]
    base, calibrations = calibrated_baseline(torch_runs)
    assert all(c.variant is None for c in calibrations)
    assert f"vgg16/{LATENCY}" in base.thresholds and "|" not in "".join(base.run_ratios)
    assert set(combine_runs(torch_runs).run_ratios) == set(base.run_ratios)


def test_the_calibration_table_names_each_rows_variant() -> None:
    _, calibrations = calibrated_baseline(runs())
    console = Console(record=True, width=200)
    console.print(calibration_table(calibrations, 0.05))
    lines = console.export_text().splitlines()
    header = next(line for line in lines if "backbone" in line)
    assert header.index("variant") < header.index("ratio")
    rows = [line for line in lines if LATENCY in line]
    assert [TORCH_RUNTIME in r and ORT_RUNTIME not in r for r in rows] == [True, False]
    assert ORT_RUNTIME in rows[1]
    _, plain = calibrated_baseline(
        [dataclasses.replace(r, results=r.results[:2], paired=r.paired[:1]) for r in runs()]
    )
    console = Console(record=True, width=200)
    console.print(calibration_table(plain, 0.05))
    assert "variant" not in console.export_text()
