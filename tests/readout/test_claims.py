"""The write-up's claims checked against reports: verdicts read from intervals, per machine
class, reports of one class pooled as runs."""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import sys
from pathlib import Path

import pytest
from scipy import stats as sps

from emobench import results as R
from emobench.readout.claims import (
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    NOT_MEASURED,
    NOT_TESTABLE,
    ClaimVerdict,
    evaluate,
    evaluate_reports,
    interval_verdict,
)
from emobench.results.finetune import FinetuneRun, PairedComparison
from tests.factories import make_report, maxbatch_report, other_class, with_config, with_env
from tests.paths import REPORTS

LATENCY = "latency_b1_median_ms"
INFERENCE = "16x faster inference"


def with_paired(
    rep: R.Report,
    ratio: float,
    low: float | None,
    high: float | None,
    key: str = LATENCY,
    rounds: int = 30,
    stop: str = "time cap",
) -> R.Report:
    """The report with a paired ratio for `key` (vgg16): its median and 95% interval."""
    paired = R.PairedRatio("vgg16", key, rounds, ratio, low, high, stop, [ratio] * rounds)
    return dataclasses.replace(rep, paired=[*rep.paired, paired])


def rows(
    reports: list[R.Report], names: list[str] | None = None
) -> dict[tuple[str, str], ClaimVerdict]:
    """(claim, machine class) -> the vgg16 row, for these reports."""
    names = names or [f"r{i}.json" for i in range(len(reports))]
    loaded = [(Path(n), r) for n, r in zip(names, reports, strict=True)]
    found = evaluate_reports(loaded).verdicts
    return {(v.claim, v.machine_class): v for v in found if v.backbone in ("vgg16", "—")}


def one(reports: list[R.Report], claim: str = INFERENCE) -> ClaimVerdict:
    found = [v for (c, _), v in rows(reports).items() if c == claim]
    assert len(found) == 1, found
    return found[0]


# -- three verdicts from the interval ----------------------------------------------------------


@pytest.mark.parametrize(
    ("ratio", "low", "high", "verdict"),
    [
        (14.0, 13.1, 15.2, INCONCLUSIVE),  # straddles 16 x 0.9 = 14.4
        (15.2, 14.6, 15.9, HOLDS),  # wholly at or above
        (13.0, 12.0, 13.9, FAILS),  # wholly below
    ],
)
def test_the_verdict_is_read_from_the_interval(
    ratio: float, low: float, high: float, verdict: str
) -> None:
    v = one([with_paired(make_report(), ratio, low, high)])
    assert v.verdict == verdict
    assert v.threshold == pytest.approx(14.4)
    assert (v.measured, v.low, v.high) == (ratio, low, high)
    assert "paired rounds" in v.interval and "30 rounds" in v.interval
    if verdict == INCONCLUSIVE:
        # about 30 x (half-width / distance to the threshold)^2 rounds, on the log scale
        half = (math.log(high) - math.log(low)) / 2
        need = math.ceil(30 * (half / abs(math.log(ratio / 14.4))) ** 2)
        assert f"about {need} rounds" in v.settle and "raise --max-time" in v.settle
        assert "--repeat 3" in v.settle
    else:  # one run's verdict carries its caveat: the interval is within that run only
        assert v.settle == "one run: within-run interval; pool --repeat 3 for a run-level one"


def test_a_point_above_the_threshold_is_not_enough() -> None:
    """The old point-estimate verdict said 'holds' at 15x (>= 14.4x); the interval says not."""
    v = one([with_paired(make_report(), 15.0, 13.5, 16.5, stop="ci")])
    assert v.verdict == INCONCLUSIVE
    assert "lower --target-ci" in v.settle  # the rounds stopped at the target: ask for less


def test_interval_edges() -> None:
    assert interval_verdict(14.4, 15.0, 14.4) == HOLDS  # at the threshold counts
    assert interval_verdict(13.0, 14.4, 14.4) == INCONCLUSIVE  # touching it is not below
    assert interval_verdict(13.0, 14.39, 14.4) == FAILS
    assert interval_verdict(None, None, 14.4) == INCONCLUSIVE


def test_too_few_rounds_give_no_interval_and_say_so() -> None:
    v = one([with_paired(make_report(), 20.0, None, None, rounds=4)])
    assert v.verdict == INCONCLUSIVE and v.low is None and v.measured == 20.0
    assert "4 paired rounds: too few" in v.interval
    assert "4 now, 6 give an interval" in v.settle


def test_without_paired_rounds_a_bootstrap_of_both_sides() -> None:
    """An older report (no paired rounds): the samples of both pipelines, resampled."""
    v = one([make_report()])  # tight samples, upscale224 ~100 ms vs direct48 ~10 ms
    assert "bootstrap of both pipelines' samples (10 and 10" in v.interval
    assert v.low is not None and v.high is not None
    assert v.measured == pytest.approx(10.0, rel=0.01)
    assert v.measured is not None and v.low <= v.measured <= v.high < 14.4
    assert v.verdict == FAILS


def test_exact_claims_need_no_interval() -> None:
    found = rows([make_report()])
    params = next(v for (c, _), v in found.items() if c == "29x fewer parameters")
    assert params.verdict == FAILS and params.exact and "123.6M" in params.reason
    assert params.low == params.high == params.measured == pytest.approx(134_289_223 / 8_424_775)
    memory = next(v for (c, _), v in found.items() if c == "22x less memory per image")
    assert memory.verdict == HOLDS and memory.measured == pytest.approx(224**2 / 48**2)
    assert memory.interval == "exact: the same on every machine"


def test_claims_not_measured_when_absent() -> None:
    rep = make_report()
    stripped = dataclasses.replace(
        rep, results=[dataclasses.replace(r, preprocess=[], latency=None) for r in rep.results]
    )
    assert one([stripped], "8.6x faster preprocessing").verdict == NOT_MEASURED
    v = one([stripped])
    assert v.verdict == NOT_MEASURED and "no batch-1 latency in this class's reports" in v.reason
    batch = one([rep], "22x larger batches")
    assert batch.verdict == NOT_MEASURED and "emobench maxbatch" in batch.reason


# -- the batch claim ---------------------------------------------------------------------------


def test_batch_claim_from_maxbatch_reports() -> None:
    fails = one([make_report(), maxbatch_report(100, 1200)], "22x larger batches")
    assert fails.verdict == FAILS and fails.measured == pytest.approx(12.0)
    assert "input size alone" in fails.reason and "one search" in fails.interval
    assert fails.machine_class.startswith("cuda-nvidia-h100")  # the maxbatch report's class
    holds = one([make_report(), maxbatch_report(100, 2500)], "22x larger batches")
    assert holds.verdict == HOLDS
    # a capped direct48 search is a lower bound: 15x or more straddles 19.8x
    capped = one([make_report(), maxbatch_report(100, 1500, capped=True)], "22x larger batches")
    assert capped.verdict == INCONCLUSIVE and capped.low == 15.0 and math.isinf(capped.high or 0)
    assert "raise `emobench maxbatch --max-batch`" in capped.settle


# -- machine classes and pooling --------------------------------------------------------------


def test_several_classes_give_a_row_each_and_a_summary() -> None:
    holds = with_paired(make_report(), 15.2, 14.6, 15.9)
    fails = other_class(with_paired(make_report(), 13.0, 12.0, 13.9))
    unsure = with_env(with_paired(make_report(), 14.0, 13.1, 15.2), cpu_model="Intel Xeon")
    result = evaluate_reports(
        [(Path("a.json"), holds), (Path("b.json"), fails), (Path("c.json"), unsure)]
    )
    ids = [c.id for c in result.classes]
    assert len(ids) == 3 and [c.sources for c in result.classes] == [
        ["a.json"],
        ["b.json"],
        ["c.json"],
    ]
    inference = [v for v in result.verdicts if v.claim == INFERENCE]
    assert [(v.machine_class, v.verdict) for v in inference] == [
        (ids[0], HOLDS),
        (ids[1], FAILS),
        (ids[2], INCONCLUSIVE),
    ]
    summary = next(s for s in result.summaries if s.claim == INFERENCE)
    assert summary.backbone == "vgg16"
    assert summary.text == (
        f"holds on 1 of 3 machine classes; inconclusive on {ids[2]}; does not hold on {ids[1]}"
    )
    assert "avx2" in ids[1]
    params = next(s for s in result.summaries if s.claim == "29x fewer parameters")
    assert params.text == f"holds on 0 of 3 machine classes; does not hold on {', '.join(ids)}"


def test_reports_of_one_class_pool_as_runs() -> None:
    ratios = [14.0, 15.0, 16.5]
    reports = [with_paired(make_report(), r, r - 0.5, r + 0.5) for r in ratios]
    v = one(reports)
    logs = [math.log(r) for r in ratios]
    mean, sd = sum(logs) / 3, float(sps.tstd(logs))
    half = float(sps.t.ppf(0.975, 2)) * sd / math.sqrt(3)
    assert v.measured == pytest.approx(math.exp(mean))
    assert (v.low, v.high) == (
        pytest.approx(math.exp(mean - half)),
        pytest.approx(math.exp(mean + half)),
    )
    assert v.interval == "Student's t over 3 runs (log ratio)"
    assert v.verdict == INCONCLUSIVE and "runs at this spread (3 now)" in v.settle
    assert v.settle.startswith("about ")  # a run-level verdict: no one-run caveat


def test_two_runs_pool_to_a_t_interval_with_one_degree_of_freedom() -> None:
    """#22 review: [15.0, 15.1] (a `--repeat 2` report) read '15.05x [15.00, 15.10] holds': the
    range of two draws covers the median about half the time. t(0.975, 1) = 12.71."""
    rep = with_paired(make_report(), 15.0, 14.9, 15.1)
    v = one([dataclasses.replace(rep, run_ratios={f"vgg16/{LATENCY}": [15.0, 15.1]})])
    logs = [math.log(15.0), math.log(15.1)]
    half = 12.706 * float(sps.tstd(logs)) / math.sqrt(2)
    mean = sum(logs) / 2
    assert v.low == pytest.approx(math.exp(mean - half), rel=1e-3)
    assert v.high == pytest.approx(math.exp(mean + half), rel=1e-3)
    assert v.low < 14.5 and v.high > 15.6  # far wider than the old [15.00, 15.10]
    assert v.interval == "Student's t over 2 runs (log ratio)"
    # the old span [14.8, 15.3] read 'holds'; the t interval [12.2, 18.6] straddles 14.4
    u = one([dataclasses.replace(rep, run_ratios={f"vgg16/{LATENCY}": [14.8, 15.3]})])
    assert u.low == pytest.approx(12.2, abs=0.1) and u.verdict == INCONCLUSIVE
    assert "(2 now)" in u.settle


def test_two_runs_with_intervals_are_never_narrower_than_theirs() -> None:
    # equal figures: the t interval has zero width, the runs' own intervals do not
    same = [
        with_paired(make_report(), 15.0, 14.0, 16.0),
        with_paired(make_report(), 15.0, 13.0, 15.5),
    ]
    v = one(same)
    assert (v.low, v.high) == (13.0, 16.0) and v.verdict == INCONCLUSIVE
    assert "at least as wide as the span of the runs' own intervals" in v.interval
    # far apart: the t interval is wider than the span, and it is what is shown
    apart = [with_paired(make_report(), r, r - 0.5, r + 0.5) for r in (15.0, 16.5)]
    w = one(apart)
    logs = [math.log(15.0), math.log(16.5)]
    half = 12.706 * float(sps.tstd(logs)) / math.sqrt(2)
    assert w.low == pytest.approx(math.exp(sum(logs) / 2 - half), rel=1e-3) and w.low < 14.5
    assert w.high == pytest.approx(math.exp(sum(logs) / 2 + half), rel=1e-3) and w.high > 17.0


def test_a_single_run_without_an_interval_stays_inconclusive() -> None:
    v = one([with_paired(make_report(), 30.0, None, None, rounds=4)])
    assert v.verdict == INCONCLUSIVE and v.low is None


def test_run_ratios_past_the_float_range_give_an_open_bound() -> None:
    """#22 review: run_ratios [1e-300, 1e300, 1.0] overflowed exp in claims and report --html."""
    rep = dataclasses.replace(make_report(), run_ratios={f"vgg16/{LATENCY}": [1e-300, 1e300, 1.0]})
    v = one([rep])
    assert v.measured == pytest.approx(1.0) and v.low == 0.0 and v.high == math.inf
    assert v.verdict == INCONCLUSIVE
    from emobench.render.readout import claim_measured

    assert claim_measured(v) == "1.00x [0.00, ∞]"


def test_a_repeat_report_gives_each_of_its_runs() -> None:
    rep = with_paired(make_report(), 15.0, 14.9, 15.1)
    repeated = dataclasses.replace(rep, run_ratios={f"vgg16/{LATENCY}": [14.0, 15.0, 16.5]})
    v = one([repeated])
    assert v.interval == "Student's t over 3 runs (log ratio)"
    assert v.measured == pytest.approx((14.0 * 15.0 * 16.5) ** (1 / 3))


def test_one_run_in_two_files_counts_once() -> None:
    rep = with_paired(make_report(), 15.2, 14.6, 15.9)
    result = evaluate_reports([(Path("a.json"), rep), (Path("copy.json"), rep)])
    assert result.notes == ["copy.json holds the same run as a.json: counted once"]
    v = next(v for v in result.verdicts if v.claim == INFERENCE)
    assert v.verdict == HOLDS and "one run" in v.interval


def test_other_settings_on_one_class_are_not_pooled() -> None:
    fp32 = with_paired(make_report(), 15.2, 14.6, 15.9)
    bf16 = with_config(with_paired(make_report(), 13.0, 12.0, 13.9), precision="bf16")
    found = rows([fp32, bf16])
    classes = sorted(cls for (c, cls) in found if c == INFERENCE)
    assert [c.rsplit(" ", 1)[-1] for c in classes] == ["(bf16)", "(fp32)"]


def test_evaluate_keeps_its_one_report_form() -> None:
    verdicts = {v.claim: v for v in evaluate(make_report(), [maxbatch_report(100, 2500)])}
    assert verdicts["22x larger batches"].verdict == HOLDS
    assert verdicts[INFERENCE].verdict == FAILS


# -- every claim of the write-up has a row ------------------------------------------------------


def _finetune(
    up_epochs: list[float],
    dn_epochs: list[float],
    seeds: int = 1,
    diffs: list[tuple[float, float, float]] | None = None,
) -> R.Report:
    """The stored v1 finetune report (resnet18) with these epoch times and paired results."""
    rep = R.load(REPORTS / "finetune-v1.json")
    ft = rep.finetune
    assert ft is not None
    base = {r.pipeline: r for r in ft.runs}
    epoch = base["upscale224"].epochs[0]

    def run(pipeline: str, seed: int, times: list[float]) -> FinetuneRun:
        epochs = [dataclasses.replace(epoch, epoch=i + 1, train_s=t) for i, t in enumerate(times)]
        return dataclasses.replace(base[pipeline], seed=seed, epochs=epochs)

    runs = [
        run(p, s, [t * (1 + 0.01 * s) for t in times])
        for s in range(seeds)
        for p, times in (("upscale224", up_epochs), ("direct48", dn_epochs))
    ]
    paired = [
        PairedComparison(s, 700, d, lo, hi, 10, 12, 0.83)
        for s, (d, lo, hi) in enumerate(diffs or [])
    ]
    return dataclasses.replace(rep, finetune=dataclasses.replace(ft, runs=runs, paired=paired))


def _ft_rows(rep: R.Report) -> dict[str, ClaimVerdict]:
    return {v.claim: v for v in evaluate_reports([(Path("ft.json"), rep)]).verdicts}


def test_training_claim_from_finetune_reports() -> None:
    # one seed, 3 epochs: the whole range of epoch times (too few for a bootstrap)
    v = _ft_rows(_finetune([60.0, 62.0, 61.0], [10.0, 10.5, 10.2]))[
        "training 5-10x faster per epoch"
    ]
    assert v.measured == pytest.approx(61.0 / 10.2)
    assert (v.low, v.high) == (pytest.approx(60 / 10.5), pytest.approx(62 / 10.0))
    assert v.verdict == HOLDS and "range of 3 and 3 epoch times" in v.interval
    assert v.threshold == pytest.approx(4.5) and v.claimed_text == "5-10x"
    slow = _ft_rows(_finetune([30.0, 50.0, 40.0], [10.0, 10.5, 10.2]))
    unsure = slow["training 5-10x faster per epoch"]
    assert unsure.verdict == INCONCLUSIVE and "emobench finetune --seeds 3" in unsure.settle
    # three seeds: a t interval over them
    seeds = _ft_rows(_finetune([60.0, 62.0], [10.0, 10.5], seeds=3))
    assert (
        seeds["training 5-10x faster per epoch"].interval == "Student's t over 3 runs (log ratio)"
    )


@pytest.mark.parametrize(
    ("diff", "verdict"),
    [
        ((-0.5, -0.9, -0.1), HOLDS),  # at most one point lost
        ((-5.0, -7.0, -3.0), FAILS),
        ((-1.0, -2.5, 0.5), INCONCLUSIVE),
    ],
)
def test_accuracy_claim_is_the_paired_trade_off(
    diff: tuple[float, float, float], verdict: str
) -> None:
    v = _ft_rows(_finetune([6.0, 6.0], [2.0, 2.0], diffs=[diff]))[
        "no upscaling artifacts, transfer learning maintained"
    ]
    assert v.verdict == verdict and v.unit == "points"
    assert (v.measured, v.low, v.high) == diff
    assert v.threshold == -1.0 and "McNemar p=0.83" in v.reason


def test_accuracy_claim_without_a_paired_comparison_is_not_measured() -> None:
    rows_ = _ft_rows(_finetune([6.0], [2.0]))
    v = rows_["no upscaling artifacts, transfer learning maintained"]
    assert v.verdict == NOT_MEASURED and "with both --pipeline" in v.reason
    assert rows_["training 5-10x faster per epoch"].verdict == INCONCLUSIVE  # one epoch a side


def test_every_claim_of_the_write_up_has_a_row() -> None:
    found = {c for c, _ in rows([make_report()])}
    assert found >= {
        "22x less memory per image",
        "8.6x faster preprocessing",
        "29x fewer parameters",
        INFERENCE,
        "22x larger batches",
        "8-16x faster processing and inference",
        "training 5-10x faster per epoch",
        "no upscaling artifacts, transfer learning maintained",
        "real-time ready",
        "mobile friendly",
    }
    by_claim = {c: v for (c, _), v in rows([make_report()]).items()}
    assert "`emobench stream`" in by_claim["real-time ready"].reason
    assert "--runtime onnxruntime" in by_claim["mobile friendly"].reason
    assert by_claim["real-time ready"].verdict == NOT_MEASURED
    assert by_claim["training 5-10x faster per epoch"].verdict == NOT_MEASURED
    untestable = [v for v in by_claim.values() if v.verdict == NOT_TESTABLE]
    assert untestable and all(v.reason and "\n" not in v.reason for v in untestable)


def test_processing_claim_is_end_to_end() -> None:
    rep = make_report()
    e2e = [R.BatchTiming(1, 100.0, r.latency) for r in rep.results]  # type: ignore[arg-type]
    e2e = [
        dataclasses.replace(e2e[0], images_per_s=10.0),
        dataclasses.replace(e2e[1], images_per_s=120.0),
    ]
    rep = dataclasses.replace(
        rep,
        results=[
            dataclasses.replace(r, end_to_end=[b]) for r, b in zip(rep.results, e2e, strict=True)
        ],
    )
    rep = with_paired(rep, 12.0, 11.0, 13.0, key="end_to_end_b1_images_per_s")
    v = one([rep], "8-16x faster processing and inference")
    assert v.verdict == HOLDS and v.threshold == pytest.approx(7.2)
    assert "end to end at batch 1" in v.reason and v.claimed_text == "8-16x"


# -- benchmarks/claims_repeat.py: parsing and the flip rule -----------------------------------


def _script():  # type: ignore[no-untyped-def]
    path = Path(__file__).parents[2] / "benchmarks" / "claims_repeat.py"
    spec = importlib.util.spec_from_file_location("claims_repeat", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["claims_repeat"] = module
    spec.loader.exec_module(module)
    return module


def test_claims_repeat_reads_the_markdown_and_flags_flips() -> None:
    from emobench.render.readout import claims_markdown

    script = _script()
    text = claims_markdown(
        evaluate_reports([(Path("r.json"), with_paired(make_report(), 14.0, 13.1, 15.2))])
    )
    assert script.verdicts_of(text, INFERENCE, "vgg16") == [INCONCLUSIVE]
    (row,) = script.rows_of(text, INFERENCE, "vgg16")  # the cells main() prints
    assert row["measured [95% CI]"] == "14.00x [13.10, 15.20]"
    assert row["threshold"] == ">= 14.40x" and row["machine class"].startswith("cpu-amd-epyc")
    assert script.flipped([HOLDS, INCONCLUSIVE, HOLDS]) is False
    assert script.flipped([INCONCLUSIVE, INCONCLUSIVE]) is False
    assert script.flipped([HOLDS, INCONCLUSIVE, FAILS]) is True


def test_claims_repeat_dry_run_prints_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    script = _script()
    assert script.main(["--dry-run", "--runs", "2", "--out", "/tmp/cr"]) == 0
    out = capsys.readouterr().out
    assert out.count("compare --backbone vgg16 --out /tmp/cr/run-") == 2
    assert "claims /tmp/cr/run-1.json /tmp/cr/run-2.json --markdown /tmp/cr/pooled.md" in out


# -- #22 review: seeds on one test set, untyped fields, the end-to-end batch ----------------------

ACCURACY = "no upscaling artifacts, transfer learning maintained"
PROCESSING = "8-16x faster processing and inference"


def test_seeds_on_one_test_set_keep_the_test_sets_uncertainty() -> None:
    """Three seeds at +0.0 pts, each +-42.9 on the same test images, pooled to a zero-width
    'holds': the spread across seeds leaves out the test set's sampling error."""
    diffs = [(0.0, -42.9, 42.9)] * 3
    v = _ft_rows(_finetune([6.0, 6.0], [2.0, 2.0], seeds=3, diffs=diffs))[ACCURACY]
    assert (v.measured, v.low, v.high) == (0.0, -42.9, 42.9)
    assert v.verdict == INCONCLUSIVE
    assert "at least as wide as the median run's own interval" in v.interval
    # where the seeds disagree more than one seed's interval, the t interval shows
    spread = [(-10.0, -11.0, -9.0), (0.0, -1.0, 1.0), (10.0, 9.0, 11.0)]
    w = _ft_rows(_finetune([6.0, 6.0], [2.0, 2.0], seeds=3, diffs=spread))[ACCURACY]
    half = float(sps.t.ppf(0.975, 2)) * 10.0 / math.sqrt(3)
    assert (w.low, w.high) == (pytest.approx(-half), pytest.approx(half))


def test_a_maxbatch_budget_is_read_from_the_typed_field() -> None:
    rep = maxbatch_report(100, 2500)
    rep = dataclasses.replace(rep, config={**rep.config, "budget_bytes": "8 GiB"})
    v = one([make_report(), rep], "22x larger batches")
    assert "within 8.0 GiB" in v.reason and v.verdict == HOLDS


@pytest.mark.parametrize(
    "data",
    [{"counts": "train=100"}, {"counts": {"train": "100"}}, {"counts": {"train": [1, "x"]}}, {}],
)
def test_untyped_finetune_counts_read_as_unknown(data: object) -> None:
    rep = _finetune([60.0, 62.0, 61.0], [10.0, 10.5, 10.2])
    assert rep.finetune is not None
    rep = dataclasses.replace(rep, finetune=dataclasses.replace(rep.finetune, data=data))
    v = _ft_rows(rep)["training 5-10x faster per epoch"]
    assert "? training images" in v.reason and v.verdict == HOLDS


def _e2e(batches: dict[int, tuple[float, float]], env: dict[str, str] | None = None) -> R.Report:
    """A vgg16 report with end-to-end throughput at these batches: (upscale224, direct48)."""
    rep = make_report()
    by = {p: i for i, p in enumerate(("upscale224", "direct48"))}
    results = [
        dataclasses.replace(
            r,
            end_to_end=[
                R.BatchTiming(b, sides[by[r.pipeline]], r.latency)  # type: ignore[arg-type]
                for b, sides in sorted(batches.items())
            ],
        )
        for r in rep.results
    ]
    rep = dataclasses.replace(rep, results=results)
    return with_env(rep, **env) if env else rep


def test_processing_claim_reads_batch_1_and_names_other_batches() -> None:
    """#22 review: each class's first report's smallest batch: batch 1 on one class, batch 16
    on another, under one claim; reports lacking that batch dropped silently."""
    # class A: batch 1 in one report, only batch 16 in the other (used to be dropped silently)
    a1 = _e2e({1: (10.0, 120.0), 16: (100.0, 900.0)})
    a2 = _e2e({16: (100.0, 950.0)})
    # class B: no batch 1; batch 16 is common, batch 4 only in its first report
    b1 = other_class(_e2e({4: (10.0, 50.0), 16: (100.0, 1000.0)}))
    b2 = other_class(_e2e({16: (100.0, 1100.0)}))
    result = evaluate_reports([(Path(f"{n}.json"), r) for n, r in enumerate([a1, a2, b1, b2])])
    found = [v for v in result.verdicts if v.claim == PROCESSING]
    assert [v.batch for v in found] == [1, 16]
    a, b = found
    assert a.measured == pytest.approx(12.0) and "end to end at batch 1" in a.reason
    assert "1 of 2 reports lack batch 1: left out of the pool" in a.reason
    assert b.measured == pytest.approx(math.sqrt(10.0 * 11.0), rel=1e-3)  # both runs pooled
    assert "end to end at batch 16" in b.reason and "lack batch" not in b.reason
    summary = next(s for s in result.summaries if s.claim == PROCESSING)
    assert f"read at batch 1 on {a.machine_class}, batch 16 on {b.machine_class}" in summary.text
