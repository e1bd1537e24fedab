"""'Mobile friendly' and 'use 48x48 for production' read from onnxruntime variants (an x86
proxy against stated budgets), and the torch claims of reports that hold several variants."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from emobench import results as R
from emobench.errors import UsageError
from emobench.readout.claims import (
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    MOBILE_LATENCY_MS,
    NOT_MEASURED,
    PROXY,
    ClaimVerdict,
    evaluate_reports,
    mobile_budgets,
    parse_mobile_budgets,
)
from emobench.results.measurements import Deployment, FreshStart
from tests.factories import TIGHT_DN, TIGHT_UP, make_report, timing, with_env

MOBILE = "mobile friendly"
LATENCY = "mobile friendly: 1-thread latency"
FILE = "mobile friendly: int8 file size"
RSS = "mobile friendly: memory"
PRODUCTION = "use 48x48 for production"
TORCH_KEYS = ("memory", "preprocessing", "parameters", "inference", "processing", "batch")
MB = 1_000_000
WIDE = [28.0, 30.0, 31.0, 32.0, 33.0, 34.0, 35.0, 36.0, 38.0, 40.0]  # median 33.5, CI [30, 38]


def deployed(
    result: R.PipelineResult,
    latency_ms: list[float],
    quantize: str | None,
    threads: int | None,
    file_bytes: int,
    fresh: tuple[int, int] | None,
) -> R.PipelineResult:
    """The torch result as an onnxruntime variant: its latency, file and fresh start."""
    start = None if fresh is None else FreshStart(40.0, 5.0, fresh[0], fresh[1])
    deployment = Deployment(
        format="onnx",
        exporter="dynamo",
        opset=18,
        file_bytes=file_bytes,
        inside_graph="the model (preprocessing runs as in torch)",
        settings={"intra_op_threads": threads or 2},
        fresh=start,
        fresh_note=None if start else "the fresh process failed: killed",
    )
    return dataclasses.replace(
        result,
        runtime="onnxruntime",
        quantize=quantize,
        threads=threads,
        latency=timing(latency_ms),
        deployment=deployment,
    )


def runtime_report(
    dn_ms: list[float] = TIGHT_DN,
    up_ms: list[float] = TIGHT_UP,
    quantize: str | None = "int8",
    threads: int | None = 1,
    files: tuple[int, int] = (45 * MB, 2 * MB),  # upscale224, direct48
    fresh: tuple[tuple[int, int] | None, tuple[int, int] | None] = (
        (130 * MB, 60 * MB),  # 70 MB added: over 50
        (80 * MB, 60 * MB),  # 20 MB added
    ),
    torch: str = "first",  # "first", "second" or "none"
) -> R.Report:
    """make_report's vgg16 with an onnxruntime variant of both pipelines beside its torch one."""
    rep = make_report()
    ort = [
        deployed(r, lat, quantize, threads, f, start)
        for r, lat, f, start in zip(rep.results, (up_ms, dn_ms), files, fresh, strict=True)
    ]
    results = {"first": rep.results + ort, "second": ort + rep.results, "none": ort}[torch]
    return dataclasses.replace(rep, results=results)


def rows(
    reports: list[R.Report], budgets: dict[str, float] | None = None
) -> dict[str, ClaimVerdict]:
    """claim -> its vgg16 row (one machine class)."""
    loaded = [(Path(f"r{i}.json"), r) for i, r in enumerate(reports)]
    found = [v for v in evaluate_reports(loaded, budgets).verdicts if v.backbone == "vgg16"]
    out = {v.claim: v for v in found}
    assert len(out) == len(found), "one row per claim expected"
    return out


# -- the latency part: read from the interval ---------------------------------------------------


@pytest.mark.parametrize(
    ("dn_ms", "verdict"),
    [
        (TIGHT_DN, HOLDS),  # ~10 ms, interval wholly under 33.3 ms
        ([s * 5 for s in TIGHT_DN], FAILS),  # ~50 ms, wholly over
        (WIDE, INCONCLUSIVE),  # median 33.5 ms, 95% interval [30, 38] straddles 33.3
    ],
)
def test_latency_is_read_from_its_interval_against_the_budget(
    dn_ms: list[float], verdict: str
) -> None:
    v = rows([runtime_report(dn_ms=dn_ms)])[LATENCY]
    stats = timing(dn_ms).stats
    assert v.verdict == verdict and v.threshold == 1.0
    # the figure is the headroom, budget / latency; the interval's ends swap
    assert v.measured == pytest.approx(MOBILE_LATENCY_MS / stats.median)
    assert stats.median_ci_low is not None and stats.median_ci_high is not None
    assert v.low == pytest.approx(MOBILE_LATENCY_MS / stats.median_ci_high)
    assert v.high == pytest.approx(MOBILE_LATENCY_MS / stats.median_ci_low)
    assert "order-statistic interval, 10 samples (one run)" in v.interval
    assert f"{stats.median:.1f} ms" in v.reason and "(onnxruntime int8 1t)" in v.reason
    assert v.claimed_text == "<= 33.3 ms" and "one 30 fps frame" in v.reason
    if verdict == INCONCLUSIVE:
        assert "raise --max-time" in v.settle and "1-thread onnxruntime report" in v.settle
    else:
        assert v.settle.startswith("one run: within-run interval")


def test_reports_of_one_class_pool_their_latencies_as_runs() -> None:
    a = runtime_report(dn_ms=TIGHT_DN)
    b = runtime_report(dn_ms=[s * 1.1 for s in TIGHT_DN])
    b = dataclasses.replace(b, created_utc="2026-11-26T00:00:00Z")  # another run
    v = rows([a, b])[LATENCY]
    assert v.interval.startswith("Student's t over 2 runs (log ratio)") and v.verdict == HOLDS


# -- file size and memory: one-shot values against the budget ---------------------------------


def test_file_size_and_memory_are_compared_as_measured() -> None:
    found = rows([runtime_report()])
    size = found[FILE]
    assert size.verdict == HOLDS and size.exact and size.measured == pytest.approx(40 / 2)
    assert "2.0 MB" in size.reason and "upscale224 45.0 MB: over budget" in size.reason
    assert size.claimed_text == "<= 40 MB" and "Android Go app install size" in size.reason
    memory = found[RSS]
    assert memory.verdict == HOLDS and not memory.exact
    assert memory.measured == memory.low == memory.high == pytest.approx(50 / 20)
    assert "20.0 MB (peak 80.0 MB less 60.0 MB before the session)" in memory.reason
    assert "upscale224 70.0 MB" in memory.reason and "over budget" in memory.reason
    assert memory.interval == "one fresh start: no interval"


def test_budgets_are_configurable() -> None:
    tight = {"file_mb": 1.0, "rss_mb": 10.0, "latency_ms": 5.0}
    found = rows([runtime_report()], budgets=tight)
    assert found[FILE].verdict == FAILS and found[FILE].measured == pytest.approx(0.5)
    assert found[RSS].verdict == FAILS and found[RSS].measured == pytest.approx(0.5)
    assert found[LATENCY].verdict == FAILS and found[LATENCY].claimed_text == "<= 5.0 ms"
    assert all("set by --mobile-budget" in found[c].reason for c in (FILE, RSS, LATENCY))
    assert found[MOBILE].verdict == FAILS


# -- the whole claim and the production advice --------------------------------------------------


def test_mobile_friendly_holds_when_every_budget_holds() -> None:
    found = rows([runtime_report()])
    whole = found[MOBILE]
    assert whole.verdict == HOLDS and whole.measured is None
    assert "latency holds; file size holds; memory holds" in whole.reason
    production = found[PRODUCTION]
    # no paired rounds: both pipelines' samples bootstrapped, ~100 ms / ~10 ms
    assert production.verdict == HOLDS and production.measured == pytest.approx(10.0, rel=0.01)
    assert production.threshold == 1.0 and "bootstrap of both pipelines' samples" in (
        production.interval
    )
    assert "in onnxruntime int8 1t on one thread" in production.reason
    assert "direct48: latency within, file size within, memory within" in production.reason
    assert "upscale224: latency over, file size over, memory over" in production.reason
    assert "file 22.5x smaller, memory 3.5x less" in production.reason


def test_one_budget_over_makes_mobile_friendly_fail() -> None:
    rep = runtime_report(fresh=((130 * MB, 60 * MB), (200 * MB, 60 * MB)))
    found = rows([rep])
    assert found[RSS].verdict == FAILS and found[MOBILE].verdict == FAILS
    assert "memory does not hold" in found[MOBILE].reason


def test_direct48_missing_a_budget_upscale224_meets_is_no_production_advice() -> None:
    rep = runtime_report(files=(2 * MB, 45 * MB))  # an odd direct48 file, larger than upscale224
    production = rows([rep])[PRODUCTION]
    assert production.verdict == FAILS and production.measured == pytest.approx(10.0, rel=0.01)
    assert "direct48 misses the file size budget upscale224 meets" in production.reason


def test_a_paired_ratio_of_the_runtime_variant_is_its_interval() -> None:
    rep = runtime_report()
    paired = R.PairedRatio(
        "vgg16", "latency_b1_median_ms", 30, 0.9, 0.8, 1.05, "time cap", [0.9] * 30,
        variant="onnxruntime int8 1t",
    )  # fmt: skip
    production = rows([dataclasses.replace(rep, paired=[paired])])[PRODUCTION]
    assert (production.measured, production.low, production.high) == (0.9, 0.8, 1.05)
    assert production.verdict == INCONCLUSIVE and "30 rounds" in production.interval


# -- not measured: what is missing, and the command that measures it ---------------------------


def test_without_a_runtime_report_it_is_not_measured() -> None:
    found = rows([make_report()])
    command = (
        "`emobench compare --backbone vgg16 --runtime onnxruntime --quantize int8 --threads 1 "
        "--threads 2`"
    )
    for claim in (MOBILE, PRODUCTION):
        assert found[claim].verdict == NOT_MEASURED
        assert command in found[claim].reason and PROXY in found[claim].reason
    assert not {LATENCY, FILE, RSS} & set(found)  # no part rows without any runtime figure


def test_no_one_thread_variant_leaves_latency_not_measured() -> None:
    found = rows([runtime_report(threads=None)])  # the environment ran 2 threads
    assert found[LATENCY].verdict == NOT_MEASURED
    assert "no 1-thread onnxruntime variant of direct48 (the reports hold onnxruntime int8)" in (
        found[LATENCY].reason
    )
    assert "--threads 1" in found[LATENCY].reason
    assert found[FILE].verdict == HOLDS and found[RSS].verdict == HOLDS
    assert found[MOBILE].verdict == NOT_MEASURED
    assert found[PRODUCTION].verdict == NOT_MEASURED and "--threads 1" in found[PRODUCTION].reason
    # without a sweep, a run whose environment had one thread is the 1-thread figure
    one = rows([with_env(runtime_report(threads=None), num_threads=1)])
    assert one[LATENCY].verdict == HOLDS and "(onnxruntime int8)" in one[LATENCY].reason


def test_no_int8_variant_leaves_file_and_memory_not_measured() -> None:
    found = rows([runtime_report(quantize=None)])
    assert found[LATENCY].verdict == HOLDS and "(onnxruntime 1t)" in found[LATENCY].reason
    for claim in (FILE, RSS):
        assert found[claim].verdict == NOT_MEASURED and found[claim].measured is None
        assert "no int8 file" in found[claim].reason and "--quantize int8" in found[claim].reason
    assert found[MOBILE].verdict == NOT_MEASURED


def test_an_absent_fresh_start_leaves_memory_not_measured() -> None:
    found = rows([runtime_report(fresh=((130 * MB, 60 * MB), None))])
    memory = found[RSS]
    assert memory.verdict == NOT_MEASURED
    assert "no fresh-process start of direct48's onnxruntime int8 1t file" in memory.reason
    assert "the fresh process failed: killed" in memory.reason
    assert found[LATENCY].verdict == HOLDS and found[FILE].verdict == HOLDS


def test_a_cuda_run_is_no_phone_proxy_for_latency_or_memory() -> None:
    found = rows([with_env(runtime_report(), device="cuda:0")])
    assert found[LATENCY].verdict == NOT_MEASURED and "--device cpu" in found[LATENCY].reason
    assert found[RSS].verdict == NOT_MEASURED and "CUDA context" in found[RSS].reason
    assert found[FILE].verdict == HOLDS  # a file's size does not depend on where it ran


def test_every_mobile_row_says_it_is_a_proxy() -> None:
    cases = [
        [make_report()],
        [runtime_report()],
        [runtime_report(threads=None)],
        [runtime_report(quantize=None)],
        [runtime_report(fresh=((130 * MB, 60 * MB), None))],
    ]
    for reports in cases:
        found = rows(reports)
        runtime_rows = [v for c, v in found.items() if c.startswith(MOBILE) or c == PRODUCTION]
        assert len(runtime_rows) >= 2
        assert all(v.reason.startswith(PROXY) for v in runtime_rows), runtime_rows


def test_the_rows_render() -> None:
    from emobench.render.readout import claim_cells, claims_markdown

    result = evaluate_reports([(Path("r.json"), runtime_report(dn_ms=WIDE))])
    text = claims_markdown(result)
    assert PROXY in text
    latency = next(v for v in result.verdicts if v.claim == LATENCY)
    cells = claim_cells(latency)
    assert cells[3:7] == ["<= 33.3 ms", ">= 1.00x", "1.00x [0.88, 1.11]", INCONCLUSIVE]
    production = next(v for v in result.verdicts if v.claim == PRODUCTION)
    assert "direct48: latency unsettled, file size within" in production.reason


# -- the torch claims of reports holding several variants ---------------------------------------


def _torch_rows(reports: list[R.Report]) -> dict[str, ClaimVerdict]:
    loaded = [(Path(f"r{i}.json"), r) for i, r in enumerate(reports)]
    return {v.key: v for v in evaluate_reports(loaded).verdicts if v.key in TORCH_KEYS}


@pytest.mark.parametrize("torch", ["first", "second"])
def test_torch_claims_read_the_torch_variant_wherever_it_is(torch: str) -> None:
    """The onnxruntime variant (direct48 at ~50 ms, upscale224 at ~100 ms: a 2x ratio) must not
    replace the torch one (10x) in the torch claims, first in the report or not."""
    plain = _torch_rows([make_report()])
    mixed = _torch_rows([runtime_report(dn_ms=[s * 5 for s in TIGHT_DN], torch=torch)])
    assert mixed == plain
    assert mixed["inference"].measured == pytest.approx(10.0, rel=0.01)


def test_a_report_without_torch_reads_its_runtime_variant_and_says_so() -> None:
    rep = runtime_report(dn_ms=[s * 5 for s in TIGHT_DN], torch="none")
    result = evaluate_reports([(Path("ort.json"), rep)])
    assert result.notes == [
        "ort.json holds no torch variant: its memory, preprocessing, parameter, inference and "
        "processing rows read its onnxruntime int8 1t variant"
    ]
    inference = next(v for v in result.verdicts if v.key == "inference")
    assert inference.measured == pytest.approx(2.0, rel=0.01)
    assert "(onnxruntime int8 1t)" in inference.reason


def test_a_runtime_only_report_never_pools_with_torch_runs() -> None:
    torch_only = make_report()
    ort_only = dataclasses.replace(runtime_report(torch="none"), created_utc="2026-11-27T00:00:00Z")
    result = evaluate_reports([(Path("a.json"), torch_only), (Path("b.json"), ort_only)])
    inference = [v for v in result.verdicts if v.key == "inference"]
    assert len(inference) == 2 and all("one run" in v.interval for v in inference)
    assert [v.machine_class.split(" ", 1)[1] for v in inference] == [
        "(fp32)",
        "(fp32, onnxruntime int8 1t)",
    ]


# -- the --mobile-budget option's values ---------------------------------------------------------


def test_mobile_budgets_parse_and_refuse() -> None:
    assert parse_mobile_budgets(["latency_ms=16.7", "file_mb= 5"]) == {
        "latency_ms": 16.7,
        "file_mb": 5.0,
    }
    budgets = mobile_budgets({"rss_mb": 100})
    assert (budgets.latency_ms, budgets.file_mb, budgets.rss_mb) == (1000 / 30, 40.0, 100.0)
    assert budgets.source("rss_mb") == "set by --mobile-budget"
    assert budgets.source("file_mb") == "Android Go app install size"
    bad = {
        "latency_ms": "expected KEY=VALUE",
        "=3": "expected KEY=VALUE",
        "speed=3": "not a budget; one of latency_ms, file_mb, rss_mb",
        "latency_ms=fast": "'fast' is not a number",
        "latency_ms=0": "needs a positive number",
        "file_mb=-2": "needs a positive number",
        "rss_mb=inf": "needs a finite number",
        "rss_mb=nan": "needs a positive number",
    }
    for item, message in bad.items():
        with pytest.raises(UsageError, match=message):
            parse_mobile_budgets([item])
    with pytest.raises(UsageError, match="given twice"):
        parse_mobile_budgets(["file_mb=1", "file_mb=2"])
