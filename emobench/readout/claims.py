"""The original write-up's claims, checked claim by claim against measured reports.

Each claim gets one row per backbone and machine class, with the measured figure, its 95%
interval and one of three verdicts read from the interval against the claim's threshold (the
claimed figure x (1 - HOLDS_WITHIN)): *holds* when the whole interval is at or above it, *does
not hold* when the whole interval is below it, *inconclusive* when it straddles it (or there is
no interval), with what would settle it. Claims the reports cannot speak to are *not measured*
(naming the command that measures them) or *not testable* (saying why).

The interval, by what the reports of one class hold (reports of one class pool as runs):

* exact figures (parameters, input bytes) are the same on every machine: no interval;
* one run: its paired rounds' interval (the 95% order-statistic interval of the median
  per-round ratio, `PairedRatio`), else a percentile bootstrap of both pipelines' samples;
* two runs or more (several reports of the class, a `--repeat` report's runs, a calibrated
  baseline's): Student's t interval of the mean log ratio over the runs with n - 1 degrees of
  freedom (`stats.summary`), which carries the run-to-run spread one run's rounds cannot see;
  for two runs never narrower than the span of their own intervals; for accuracy differences
  (seeds scored on one test set) never narrower than the median seed's own interval.

One run's interval covers the noise within that run only: a one-run holds / does not hold
says so in its settle text.

Reports holding several runtime variants (`--runtime torch --runtime onnxruntime`): the
write-up's timing claims are about PyTorch, so they read each report's torch variant wherever
it holds one, first or not (`torch_view`); a report with no torch variant is read through its
first variant, a notes line names it, and its machine class is split by that variant so it
never pools with torch runs. "Mobile friendly" and "use 48x48 for production" read the
onnxruntime variants instead: an x86 proxy against budgets (`MobileBudgets`), never a phone
measurement, and labelled so on every row.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from emobench import machine
from emobench import results as R
from emobench.errors import UsageError
from emobench.names import ORT_RUNTIME, TIMING_KINDS, TORCH_RUNTIME
from emobench.readout.merge import MachineClass, settings_name
from emobench.results.finetune import FinetuneRun, verdict_sentence
from emobench.results.measurements import Deployment
from emobench.results.runs import distinct_runs, variant_run_ratios
from emobench.results.stream import LoadgenRun, StreamResult, StreamSummary
from emobench.stats.gate import ratio_interval, usable
from emobench.stats.summary import log_t_interval, median_ci_min_n, t_interval

HOLDS_WITHIN = 0.10  # the threshold factor: a claim's threshold is claimed x (1 - HOLDS_WITHIN)
INPUT_RATIO = (224 * 224) / (48 * 48)
RUN_LEVEL_MIN_RUNS = 3  # runs a go/no-go reading should pool (`--repeat 3`)
# A one-run verdict's caveat: its interval is the noise within that run (its paired rounds);
# runs on one machine can differ by more.
ONE_RUN_CAVEAT = (
    f"one run: within-run interval; pool --repeat {RUN_LEVEL_MIN_RUNS} for a run-level one"
)
_TIMED_CLAIMS = ("preprocessing", "inference", "processing", "mobile_latency", "production")
ACCURACY_MARGIN_POINTS = 1.0  # "maintained": direct48 at most this many points less accurate

HOLDS = "holds"
FAILS = "does not hold"
INCONCLUSIVE = "inconclusive"
NOT_MEASURED = "not measured"
NOT_TESTABLE = "not testable"
VERDICTS = (HOLDS, INCONCLUSIVE, FAILS, NOT_MEASURED, NOT_TESTABLE)

RATIO = "x"  # upscale224 / direct48, > 1: direct48 wins
POINTS = "points"  # direct48 - upscale224 test accuracy, percentage points
NO_CLASS = "—"  # the row of a claim no report measured

# the loop stopping reasons a paired ratio records (measure.timing.STOP_*; torch-free copy)
_STOPPED_AT_TARGET = "ci"


@dataclass(frozen=True)
class Claim:
    key: str
    text: str
    claimed: float | None  # None: nothing numeric to test
    evidence: str  # what the write-up gave for it
    unit: str = RATIO
    claimed_text: str = ""  # how the write-up put it when not one number ("5-10x")
    fixed_threshold: float | None = None  # instead of claimed x (1 - HOLDS_WITHIN)

    @property
    def threshold(self) -> float | None:
        if self.fixed_threshold is not None:
            return self.fixed_threshold
        return None if self.claimed is None else self.claimed * (1 - HOLDS_WITHIN)


CLAIMS = (
    Claim("memory", "22x less memory per image", 22.0, "27KB vs 588KB per image"),
    Claim("preprocessing", "8.6x faster preprocessing", 8.6, "image preprocessing, no method"),
    Claim("parameters", "29x fewer parameters", 29.0, "8.4M vs 245M parameters"),
    Claim("inference", "16x faster inference", 16.0, "13ms vs 209ms per inference"),
    Claim("batch", "22x larger batches", 22.0, "'possible with same GPU memory'"),
)
PROCESSING_CLAIM = Claim(
    "processing",
    "8-16x faster processing and inference",
    8.0,
    "'8-16x faster processing and inference' (key benefits)",
    claimed_text="8-16x",
)
TRAINING_CLAIM = Claim(
    "training",
    "training 5-10x faster per epoch",
    5.0,
    "'expected 5-10x faster per epoch'",
    claimed_text="5-10x",
)
ACCURACY_CLAIM = Claim(
    "accuracy",
    "no upscaling artifacts, transfer learning maintained",
    0.0,
    "'no upscaling artifacts', 'transfer learning benefits maintained'",
    unit=POINTS,
    claimed_text="no loss",
    fixed_threshold=-ACCURACY_MARGIN_POINTS,
)
# "Mobile friendly" as an x86 proxy: direct48's deployable file in ONNX Runtime against budgets
# (MobileBudgets). Each part's figure is its headroom, budget / measured (>= 1: within budget),
# so the verdict is read from the interval exactly as the ratio claims' are.
_EDGE = "'suitable for edge deployment'"
MOBILE_CLAIM = Claim("mobile", "mobile friendly", None, _EDGE, claimed_text="within budgets")
MOBILE_LATENCY_CLAIM = Claim(
    "mobile_latency", "mobile friendly: 1-thread latency", None, _EDGE, fixed_threshold=1.0
)
MOBILE_FILE_CLAIM = Claim(
    "mobile_file", "mobile friendly: int8 file size", None, _EDGE, fixed_threshold=1.0
)
MOBILE_RSS_CLAIM = Claim("mobile_rss", "mobile friendly: memory", None, _EDGE, fixed_threshold=1.0)
MOBILE_PARTS = (MOBILE_LATENCY_CLAIM, MOBILE_FILE_CLAIM, MOBILE_RSS_CLAIM)
PRODUCTION_CLAIM = Claim(
    "production",
    "use 48x48 for production",
    None,
    "'Deploy accordingly: use 48x48 for production'",
    claimed_text="direct48 wins",
    fixed_threshold=1.0,  # upscale224 / direct48 under the deployment runtime: direct48 faster
)
MOBILE_MORE = (
    "more samples (raise --max-time) or more runs: another 1-thread onnxruntime report of this "
    "machine class beside this one"
)
# "Real-time ready" from `stream` reports: direct48 serves at least one camera stream at the
# report's frame rate with LoadGen's server p99 within the frame deadline (max streams >= 1).
# The measured figure is the max-streams ratio direct48 / upscale224 (what a deployment buys).
REALTIME_CLAIM = Claim(
    "realtime",
    "real-time ready",
    None,
    "'perfect for production systems'",
    claimed_text=">= 1 stream",
)
REALTIME_COMMAND = (
    "`emobench stream --backbone {backbone} --scenario server --scenario single-stream`"
)
# Claims no report measures yet: the command that will, in one line.
UNMEASURED: tuple[tuple[Claim, str], ...] = ()
# Claims no measurement can settle: why, in one line.
UNTESTABLE = (
    (
        Claim("research", "research efficient", None, "'faster experimentation cycles'"),
        "restates the training claim: no figure of its own; see 'training 5-10x faster per epoch'",
    ),
    (
        Claim("scalable", "scalable", None, "'handles large datasets efficiently'"),
        "names no data-set size or rate to hold it to; the throughput and batch rows are its "
        "measurable part",
    ),
    (
        Claim("proven", "architecture proven", None, "'based on established CNN designs'"),
        "a statement about where the design came from, not about anything that runs",
    ),
)
ALL_CLAIMS = (
    *CLAIMS,
    PROCESSING_CLAIM,
    TRAINING_CLAIM,
    ACCURACY_CLAIM,
    MOBILE_CLAIM,
    *MOBILE_PARTS,
    PRODUCTION_CLAIM,
    REALTIME_CLAIM,
    *(c for c, _ in UNMEASURED),
    *(c for c, _ in UNTESTABLE),
)


@dataclass(frozen=True)
class Interval:
    """A measured figure and its 95% interval (low/high None: no interval could be made)."""

    point: float
    low: float | None
    high: float | None
    method: str  # how the interval was made, for people
    runs: int = 1
    rounds: int | None = None  # the paired rounds behind a one-run interval
    stop_reason: str | None = None  # why those rounds stopped
    exact: bool = False  # the same on every machine: no interval needed
    additive: bool = False  # a difference (accuracy points), not a ratio
    advice: str = ""  # what would settle it, where more rounds or runs would not


@dataclass(frozen=True)
class ClaimVerdict:
    backbone: str
    claim: str  # the claim's text
    claimed: float | None
    measured: float | None
    verdict: str
    reason: str
    low: float | None = None  # the measured figure's 95% interval
    high: float | None = None
    threshold: float | None = None  # holds when the whole interval is at or above it
    machine_class: str = NO_CLASS  # a MachineClass id; NO_CLASS where no report measured it
    interval: str = ""  # how the interval was made
    settle: str = ""  # what would settle an inconclusive verdict
    unit: str = RATIO
    claimed_text: str = ""
    key: str = ""  # the Claim's key
    exact: bool = False
    batch: int | None = None  # the batch size a batch-dependent claim was read at


@dataclass(frozen=True)
class ClaimSummary:
    backbone: str
    claim: str
    text: str  # "holds on 2 of 3 machine classes; does not hold on cpu-..."


@dataclass(frozen=True)
class ClaimsResult:
    verdicts: list[ClaimVerdict]
    summaries: list[ClaimSummary]
    classes: list[MachineClass]
    notes: list[str]


def interval_verdict(low: float | None, high: float | None, threshold: float) -> str:
    """holds when the whole interval is at or above the threshold, does not hold when it is
    wholly below, inconclusive when it straddles it or there is no interval."""
    if low is None or high is None:
        return INCONCLUSIVE
    if low >= threshold:
        return HOLDS
    if high < threshold:
        return FAILS
    return INCONCLUSIVE


# -- runs and their pooling --------------------------------------------------------------------


@dataclass(frozen=True)
class RunFigure:
    """One run's figure and its own interval (None where it has none)."""

    value: float
    low: float | None
    high: float | None
    method: str
    rounds: int | None = None
    stop_reason: str | None = None


def pool(runs: list[RunFigure], additive: bool = False) -> Interval | None:
    """The interval of one machine class's runs: one run's own; from two runs on, Student's t
    over the runs (of the log ratio; of the difference when `additive`) with n - 1 degrees of
    freedom, widened where the runs' own intervals say more:

    * two ratio runs: never narrower than the span of the runs' own intervals (two draws'
      range alone covers the median about half the time; t(0.975, 1) = 12.71 is honest);
    * differences (accuracy, seeds scored on one test set): never narrower than the median
      per-seed interval, since the spread across seeds leaves out the test set's sampling."""
    if not runs:
        return None
    n = len(runs)
    if n == 1:
        r = runs[0]
        return Interval(
            r.value, r.low, r.high, r.method, 1, r.rounds, r.stop_reason, additive=additive
        )
    values = [r.value for r in runs]
    own = [r for r in runs if r.low is not None and r.high is not None]
    lows = [r.low for r in own if r.low is not None]
    highs = [r.high for r in own if r.high is not None]
    if additive:
        point, low, high = t_interval(values)
        method = f"Student's t over {n} runs (difference)"
        if own:
            low = min(low, statistics.median(lows))
            high = max(high, statistics.median(highs))
            method += ", at least as wide as the median run's own interval"
    else:
        point, low, high = log_t_interval(values)
        method = f"Student's t over {n} runs (log ratio)"
        if n == 2 and own:
            low, high = min(low, *lows), max(high, *highs)
            method += ", at least as wide as the span of the runs' own intervals"
    return Interval(point, low, high, method, n, additive=additive)


def _needed(iv: Interval, threshold: float, now: int) -> int | None:
    """Roughly how many rounds (or runs) would shrink the interval off the threshold at this
    spread (width ~ 1/sqrt(n)); None when the figure sits on the threshold."""
    if iv.low is None or iv.high is None or now < 1:
        return None
    if iv.additive:
        half, dist = (iv.high - iv.low) / 2, abs(iv.point - threshold)
    else:
        if min(iv.low, iv.point, threshold) <= 0 or not math.isfinite(iv.high):
            return None
        half = (math.log(iv.high) - math.log(iv.low)) / 2
        dist = abs(math.log(iv.point) - math.log(threshold))
    if dist <= 0:
        return None
    return max(now + 1, math.ceil(now * (half / dist) ** 2))


MORE_RUNS = "more runs (`emobench run SUITE --repeat 3`, or more reports of this machine class)"


def _settle(iv: Interval, threshold: float, hint: str = MORE_RUNS) -> str:
    """What would settle an inconclusive verdict; `hint` says where more runs come from."""
    if iv.advice:
        return iv.advice
    if iv.low is None or iv.high is None:
        if iv.rounds is not None:
            return (
                f"more rounds ({iv.rounds} now, {median_ci_min_n()} give an interval: raise "
                f"--max-time), or {hint}"
            )
        return hint
    if iv.runs >= 2:
        need = _needed(iv, threshold, iv.runs)
        about = f"about {need} runs" if need else "more runs"
        return f"{about} at this spread ({iv.runs} now): {hint}"
    if iv.rounds is not None:
        need = _needed(iv, threshold, iv.rounds)
        about = f"about {need} rounds" if need else "more rounds"
        knob = "lower --target-ci" if iv.stop_reason == _STOPPED_AT_TARGET else "raise --max-time"
        return f"{about} at this spread ({iv.rounds} now: {knob}), or {hint}"
    return hint


# -- machine classes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Group:
    """The reports of one machine class (and one set of speed settings)."""

    id: str
    description: str
    reports: list[tuple[Path, R.Report]]

    def of_kind(self, *kinds: str) -> list[R.Report]:
        return [rep for _, rep in self.reports if rep.kind in kinds]


def _distinct(
    loaded: list[tuple[Path, R.Report]],
) -> tuple[list[tuple[Path, R.Report]], list[str]]:
    """Each run once (results.runs.distinct_runs), named by file name in the notes."""
    kept, notes = distinct_runs(loaded, label=lambda path: path.name)
    return kept, [f"{note}: counted once" for note in notes]


_JOINING_KINDS = ("maxbatch", "stream")  # no speed settings of their own: join a class's group


def machine_groups(loaded: list[tuple[Path, R.Report]]) -> list[_Group]:
    """Reports by machine class. A class whose compare/run/finetune reports differ in speed
    settings (precision, channels-last, compile) is split, the settings named after its id;
    maxbatch and stream reports join their class's first group (the batch and real-time
    claims read only them)."""
    by: dict[tuple[str, str], list[tuple[Path, R.Report]]] = {}
    settings_of: dict[str, list[str]] = {}
    for path, rep in loaded:
        if rep.kind not in _JOINING_KINDS:
            cid, settings = machine.class_id(rep.environment), _settings(rep)
            if settings not in settings_of.setdefault(cid, []):
                settings_of[cid].append(settings)
            by.setdefault((cid, settings), []).append((path, rep))
    for path, rep in loaded:
        if rep.kind in _JOINING_KINDS:
            cid = machine.class_id(rep.environment)
            first = settings_of.setdefault(cid, [""])[0]
            by.setdefault((cid, first), []).append((path, rep))
    return [
        _Group(
            cid if len(settings_of[cid]) == 1 else f"{cid} ({settings})",
            machine.describe(reps[0][1].environment),
            reps,
        )
        for (cid, settings), reps in by.items()
    ]


def _settings(rep: R.Report) -> str:
    """The speed settings a compare/run/finetune report was measured with; for a report whose
    torch claims read a variant other than plain torch (no torch variant, or a torch thread
    sweep), that variant too, so its runs never pool with plain torch runs."""
    name = settings_name(rep)
    if rep.kind in TIMING_KINDS:
        variant = torch_variant(rep)
        if variant != TORCH_RUNTIME:
            name += f", {variant}"
    return name


# -- which variant the torch claims read ------------------------------------------------------


def torch_variant(rep: R.Report) -> str:
    """The variant the write-up's torch claims read in a report: its first torch variant
    (plain "torch", or "torch 1t" of a thread sweep) wherever it holds one, whatever came
    first; else its first variant (a report of onnxruntime variants only)."""
    variants = rep.variants
    runtimes = {r.variant: r.runtime for r in rep.results}
    torch = [v for v in variants if runtimes.get(v, TORCH_RUNTIME) == TORCH_RUNTIME]
    if TORCH_RUNTIME in torch:
        return TORCH_RUNTIME
    return torch[0] if torch else variants[0]


def torch_view(rep: R.Report) -> R.Report:
    """The report as the torch claims read it: only `torch_variant`'s results and paired
    ratios. A report whose first variant is onnxruntime is never read for the torch claims
    through `Report.result`'s first-variant default: its torch variant is used where it holds
    one; with none, its runtime variant is (the claims' notes say so, and `_settings` keeps
    its class apart)."""
    if rep.kind not in TIMING_KINDS or len(rep.variants) == 1:
        return rep
    return rep.view(torch_variant(rep))


def _variant_notes(loaded: list[tuple[Path, R.Report]]) -> list[str]:
    notes = []
    for path, rep in loaded:
        if rep.kind not in TIMING_KINDS:
            continue
        variant = torch_variant(rep)
        if not any(r.runtime == TORCH_RUNTIME for r in rep.results if r.variant == variant):
            notes.append(
                f"{path.name} holds no torch variant: its memory, preprocessing, parameter, "
                f"inference and processing rows read its {variant} variant"
            )
    return notes


def _torch_group(group: _Group) -> _Group:
    return dataclasses.replace(group, reports=[(p, torch_view(r)) for p, r in group.reports])


# -- the claims --------------------------------------------------------------------------------


def evaluate_reports(
    loaded: list[tuple[Path, R.Report]], budgets: Mapping[str, float] | None = None
) -> ClaimsResult:
    """Every claim for every backbone and machine class of these reports (compare/run,
    maxbatch, finetune and stream reports, in any mix); reports of one class pool as runs. `budgets`
    overrides the mobile budgets by key (`MobileBudgets`: latency_ms, file_mb, rss_mb)."""
    limits = mobile_budgets(budgets)
    distinct, notes = _distinct(loaded)
    notes += _variant_notes(distinct)
    groups = machine_groups(distinct)
    torch_groups = [_torch_group(g) for g in groups]
    backbones = _backbones([rep for _, rep in distinct])
    verdicts: list[ClaimVerdict] = []
    for backbone in backbones:
        verdicts += _timing_claims(backbone, torch_groups)
        verdicts += _batch_claims(backbone, groups)
        verdicts += _processing_claims(backbone, torch_groups)
        verdicts += _finetune_claims(backbone, groups)
        verdicts += _mobile_claims(backbone, groups, limits)
        realtime, realtime_notes = _realtime_claims(backbone, groups)
        verdicts += realtime
        notes += realtime_notes
    if not backbones:
        verdicts += _mobile_unmeasured("B", NO_CLASS)
        verdicts.append(_realtime_unmeasured("B", NO_CLASS))
    for claim, why in UNMEASURED:
        verdicts.append(_flat(claim, NOT_MEASURED, why))
    for claim, why in UNTESTABLE:
        verdicts.append(_flat(claim, NOT_TESTABLE, why))
    classes = [
        MachineClass(g.id, g.description, [p.name for p, _ in g.reports])
        for g in groups
        if any(v.machine_class == g.id for v in verdicts)
    ]
    return ClaimsResult(verdicts, summaries(verdicts), classes, notes)


def evaluate(
    timing: R.Report,
    maxbatch: list[R.Report] | None = None,
    budgets: Mapping[str, float] | None = None,
) -> list[ClaimVerdict]:
    """The rows of one report (and maxbatch reports if given): evaluate_reports on them."""
    loaded = [(Path(f"report-{i}.json"), r) for i, r in enumerate([timing, *(maxbatch or [])])]
    return evaluate_reports(loaded, budgets).verdicts


def _backbones(reports: list[R.Report]) -> list[str]:
    found: dict[str, None] = {}
    for rep in reports:
        if rep.kind in TIMING_KINDS:
            found.update(dict.fromkeys(rep.backbones))
        elif rep.kind == "maxbatch":
            found.update(dict.fromkeys(m.backbone for m in rep.maxbatch))
        elif rep.finetune is not None:
            found.update(dict.fromkeys(r.backbone for r in rep.finetune.runs))
        elif rep.stream is not None:
            found.update(dict.fromkeys(r.backbone for r in rep.stream.results))
    return list(found)


def _flat(claim: Claim, verdict: str, why: str, backbone: str = NO_CLASS) -> ClaimVerdict:
    return ClaimVerdict(
        backbone,
        claim.text,
        claim.claimed,
        None,
        verdict,
        why,
        threshold=claim.threshold,
        unit=claim.unit,
        claimed_text=claim.claimed_text,
        key=claim.key,
    )


_SETTLE_HINTS = {
    MOBILE_LATENCY_CLAIM.key: MOBILE_MORE,
    TRAINING_CLAIM.key: "more seeds (`emobench finetune --seeds 3`) or finetune reports of this "
    "machine class",
    ACCURACY_CLAIM.key: "a larger test split, more seeds (`emobench finetune --seeds 3`) or "
    "finetune reports of this machine class",
}


def _row(
    claim: Claim,
    backbone: str,
    group: _Group,
    iv: Interval | None,
    reason: str,
    missing: str | None = None,
) -> ClaimVerdict:
    """A claim's row for one class: the verdict read from the interval (not measured, saying
    `missing`, when there is no figure)."""
    threshold = claim.threshold
    assert threshold is not None
    if iv is None:
        why = missing or reason
        return dataclasses.replace(
            _flat(claim, NOT_MEASURED, why, backbone), machine_class=group.id
        )
    low, high = (iv.point, iv.point) if iv.exact else (iv.low, iv.high)
    verdict = interval_verdict(low, high, threshold)
    hint = _SETTLE_HINTS.get(claim.key, MORE_RUNS)
    settle = _settle(iv, threshold, hint) if verdict == INCONCLUSIVE else ""
    if verdict in (HOLDS, FAILS) and iv.runs == 1 and claim.key in _TIMED_CLAIMS:
        settle = ONE_RUN_CAVEAT
    return ClaimVerdict(
        backbone,
        claim.text,
        claim.claimed,
        iv.point,
        verdict,
        reason,
        low=low,
        high=high,
        threshold=threshold,
        machine_class=group.id,
        interval=iv.method,
        settle=settle,
        unit=claim.unit,
        claimed_text=claim.claimed_text,
        key=claim.key,
        exact=iv.exact,
    )


def _rows_of(rep: R.Report, backbone: str) -> dict[str, R.MetricRow]:
    return {r.key: r for r in R.metric_rows(rep) if r.backbone == backbone}


def _exact(rep: R.Report, backbone: str, key: str) -> Interval | None:
    row = _rows_of(rep, backbone).get(key)
    if row is None or row.ratio is None:
        return None
    return Interval(row.ratio, row.ratio, row.ratio, "exact: the same on every machine", exact=True)


def timing_runs(reports: list[R.Report], backbone: str, key: str) -> list[RunFigure]:
    """One run per report (or each run a `--repeat` report or a calibrated baseline holds),
    with the interval that run carries; each report read through `torch_view`."""
    runs: list[RunFigure] = []
    for original in reports:
        rep = torch_view(original)
        row = _rows_of(rep, backbone).get(key)
        if row is None or row.ratio is None or row.ratio <= 0:
            continue
        own = variant_run_ratios(original, rep.variants[0]) if rep.results else {}
        held = usable(own.get(f"{backbone}/{key}") or [])
        if len(held) >= 2:
            runs += [RunFigure(v, None, None, "one of a --repeat report's runs") for v in held]
            continue
        paired = rep.paired_ratio(backbone, key)
        if paired is not None:
            if paired.ci_low is not None and paired.ci_high is not None:
                method = (
                    f"paired rounds: the median per-round ratio's 95% interval, "
                    f"{paired.rounds} rounds (one run)"
                )
                runs.append(
                    RunFigure(
                        row.ratio,
                        paired.ci_low,
                        paired.ci_high,
                        method,
                        paired.rounds,
                        paired.stop_reason,
                    )
                )
            else:
                method = f"{paired.rounds} paired rounds: too few for a 95% interval (6 needed)"
                runs.append(
                    RunFigure(row.ratio, None, None, method, paired.rounds, paired.stop_reason)
                )
            continue
        runs.append(_unpaired_run(rep, backbone, key, row.ratio))
    return runs


def _unpaired_run(rep: R.Report, backbone: str, key: str, ratio: float) -> RunFigure:
    """A run timed without paired rounds (an older report, --no-paired): a percentile bootstrap
    of both pipelines' samples (times: the ratio is upscale224 / direct48 of their medians)."""
    up = R.stats_for(rep.result(backbone, R.UPSCALE), key)
    dn = R.stats_for(rep.result(backbone, R.DIRECT), key)
    need = median_ci_min_n()
    if up is None or dn is None or min(up.n, dn.n) < need:
        n = min(up.n if up else 0, dn.n if dn else 0)
        return RunFigure(ratio, None, None, f"{n} samples a side: too few for a 95% interval")
    low, high = ratio_interval(up.samples, dn.samples)
    method = (
        f"bootstrap of both pipelines' samples ({up.n} and {dn.n}, unpaired; one run): "
        "95% interval of the ratio of medians"
    )
    return RunFigure(ratio, low, high, method)


def _class_device(group: _Group) -> str:
    reps = group.of_kind(*TIMING_KINDS) or [rep for _, rep in group.reports]
    return str(reps[0].environment.get("device")) if reps else "?"


def _variant_tag(rep: R.Report) -> str:
    """' (onnxruntime int8)' where a torch claim reads a variant other than plain torch."""
    variant = rep.variants[0]
    return "" if variant == TORCH_RUNTIME else f" ({variant})"


def _ratio_text(row: R.MetricRow | None) -> str:
    return "not measured" if row is None or row.ratio is None else f"{row.ratio:.1f}x"


def _mb(value: float | None) -> str:
    return "?" if value is None else f"{value / 1e6:.1f}M"


_LEFT_OUT = (
    "no {what} in this class's reports of the backbone: the run left it out or it failed (the "
    "report's notes say which)"
)


def _timing_claims(backbone: str, groups: list[_Group]) -> list[ClaimVerdict]:
    """The table's memory, preprocessing, parameter and inference claims, per class."""
    out: dict[str, list[ClaimVerdict]] = {c.key: [] for c in CLAIMS[:4]}
    for group in groups:
        reps = [r for r in group.of_kind(*TIMING_KINDS) if backbone in r.backbones]
        if not reps:
            continue
        first, device = reps[0], _class_device(group) + _variant_tag(reps[0])
        rows = _rows_of(first, backbone)
        peak = rows.get("tensor_peak_bytes")
        out["memory"].append(
            _row(
                CLAIMS[0],
                backbone,
                group,
                _exact(first, backbone, "input_bytes_per_image"),
                "input tensor only (224²/48² = 21.8x); the write-up's pixel counts are off by 3x "
                "on both sides (48x48 is 2,304 pixels, not 6,912) but cancel; peak live tensors "
                f"in inference: {_ratio_text(peak)}",
            )
        )
        batched = rows.get("preprocess_batched_tensor_us")
        key = "preprocess_per_image_pil_us"
        out["preprocessing"].append(
            _row(
                CLAIMS[1],
                backbone,
                group,
                pool(timing_runs(reps, backbone, key)),
                f"the write-up's per-image PIL path on {device}; batched tensor path: "
                f"{_ratio_text(batched)}",
                _LEFT_OUT.format(what="per-image PIL preprocessing"),
            )
        )
        params = rows.get("params_total")
        up = first.result(backbone, R.UPSCALE)
        unused = up.params.unused if up else None
        out["parameters"].append(
            _row(
                CLAIMS[2],
                backbone,
                group,
                _exact(first, backbone, "params_total"),
                f"{_mb(params.upscale224 if params else None)} vs "
                f"{_mb(params.direct48 if params else None)} measured, {unused} unused in "
                f"upscale224; {_params_origin(backbone)}",
            )
        )
        tput = [r for k, r in rows.items() if k.startswith("throughput_b")]
        tput_text = ", ".join(f"{r.key.split('_')[1]}: {_ratio_text(r)}" for r in tput)
        out["inference"].append(
            _row(
                CLAIMS[3],
                backbone,
                group,
                pool(timing_runs(reps, backbone, "latency_b1_median_ms")),
                f"batch-1 median latency on {device}; throughput ratios {tput_text or 'n/a'}",
                _LEFT_OUT.format(what="batch-1 latency"),
            )
        )
    return [v for claim in CLAIMS[:4] for v in out[claim.key] or [_no_timing(claim, backbone)]]


def _no_timing(claim: Claim, backbone: str) -> ClaimVerdict:
    why = f"no compare or run report of {backbone}: run `emobench compare --backbone {backbone}`"
    return _flat(claim, NOT_MEASURED, why, backbone)


def _e2e_batches(rep: R.Report, backbone: str) -> dict[int, R.MetricRow]:
    """A report's end-to-end rows with a ratio, by batch size."""
    return {
        int(k.removeprefix("end_to_end_b").split("_")[0]): r
        for k, r in _rows_of(rep, backbone).items()
        if k.startswith("end_to_end_b") and r.ratio is not None
    }


def _processing_batch(held: list[dict[int, R.MetricRow]]) -> int:
    """The batch the class's end-to-end claim reads: 1 where any report has it, else the
    smallest batch every report has, else the batch most reports have (the smallest of ties)."""
    every = set().union(*held)
    if 1 in every:
        return 1
    common = set.intersection(*(set(h) for h in held))
    if common:
        return min(common)
    return min(every, key=lambda b: (-sum(b in h for h in held), b))


def _processing_claims(backbone: str, groups: list[_Group]) -> list[ClaimVerdict]:
    """'8-16x faster processing and inference': end to end, uint8 host batch to logits, at
    batch 1 where the class has it (else the smallest batch all its reports have)."""
    claim = PROCESSING_CLAIM
    out = []
    for group in groups:
        reps = [r for r in group.of_kind(*TIMING_KINDS) if backbone in r.backbones]
        if not reps:
            continue
        held = [_e2e_batches(rep, backbone) for rep in reps]
        if not any(held):
            out.append(
                _row(
                    claim,
                    backbone,
                    group,
                    None,
                    "no end-to-end throughput in the reports (measured by `emobench compare` "
                    "unless --measure leaves it out)",
                )
            )
            continue
        bs = _processing_batch(held)
        first = next(h for h in held if bs in h)
        key = first[bs].key
        others = ", ".join(f"b{b}: {_ratio_text(r)}" for b, r in sorted(first.items()) if b != bs)
        lacking = sum(bs not in h for h in held)
        reason = (
            f"end to end at batch {bs} on {_class_device(group)}{_variant_tag(reps[0])} "
            "(uint8 host batch -> "
            "preprocessing -> forward -> logits); the range's low end, 8x, is what is tested"
            + (f"; other batch sizes {others}" if others else "")
            + (
                f"; {lacking} of {len(reps)} reports lack batch {bs}: left out of the pool"
                if lacking
                else ""
            )
        )
        row = _row(claim, backbone, group, pool(timing_runs(reps, backbone, key)), reason)
        out.append(dataclasses.replace(row, batch=bs))
    return out or [_no_timing(claim, backbone)]


_STRIDE_ONLY = (
    "direct48 only changes the stem's stride: the very same tensors, so the parameter count "
    "cannot shrink"
)
# Why direct48 has the parameters it has, by backbone-name prefix (the registry's families).
_PARAMS_ORIGIN = {
    "vgg": (
        "the write-up's 245M counted an unused 123.6M-parameter classifier; the real saving "
        "is the dropped conv block 5 and the 4096-wide fully connected layers"
    ),
    "resnet": (
        "conv parameters do not depend on input size, and direct48's head (a 256-wide hidden "
        "layer) is larger than a single fc, so there is no saving to claim"
    ),
    "mobilenet_v3": _STRIDE_ONLY,
    "efficientnet": _STRIDE_ONLY,
    "convnext": _STRIDE_ONLY,
}
_PLUGIN_ORIGIN = "a plugin backbone: both models are the plugin's own, counted as they are"


def _params_origin(backbone: str) -> str:
    found = [note for prefix, note in _PARAMS_ORIGIN.items() if backbone.startswith(prefix)]
    return found[0] if found else _PLUGIN_ORIGIN


def _batch_claims(backbone: str, groups: list[_Group]) -> list[ClaimVerdict]:
    """'22x larger batches' per class of maxbatch reports: max batch direct48 / upscale224."""
    claim = CLAIMS[4]
    origin = f"the write-up derived it from input size alone ({INPUT_RATIO:.1f}x)"
    out = []
    for group in groups:
        for mode in ("infer", "train"):
            runs, reason = _batch_runs(group.of_kind("maxbatch"), backbone, mode)
            if runs:
                out.append(_row(claim, backbone, group, _pool_batches(runs), f"{reason}; {origin}"))
                break
    if out:
        return out
    why = (
        f"no maxbatch report for {backbone}: run `emobench maxbatch` and pass its report; {origin}"
    )
    return [_flat(claim, NOT_MEASURED, why, backbone)]


def _batch_runs(
    reports: list[R.Report], backbone: str, mode: str
) -> tuple[list[tuple[float, bool]], str]:
    """(ratio, direct48 capped) per maxbatch report, and the first one's description."""
    runs: list[tuple[float, bool]] = []
    reason = ""
    for rep in reports:
        # torch's search (the write-up's claim is about the torch pipelines); another
        # runtime's, where a report holds only that one
        runtime = "torch" if any(m.runtime == "torch" for m in rep.maxbatch) else None
        by = {
            (m.pipeline, m.mode): m
            for m in rep.maxbatch
            if m.backbone == backbone and (runtime is None or m.runtime == runtime)
        }
        up, dn = by.get((R.UPSCALE, mode)), by.get((R.DIRECT, mode))
        if not (up and dn and up.max_batch and dn.max_batch) or up.error or dn.error:
            continue
        runs.append((dn.max_batch / up.max_batch, dn.capped))
        if not reason:
            capped = " (direct48 capped: the real ratio is higher)" if dn.capped else ""
            budget = dn.budget_bytes  # the typed field, not the untyped config dict
            within = (
                f"{budget / 2**30:.1f} GiB"
                if isinstance(budget, (int, float)) and not isinstance(budget, bool)
                else "? GiB"
            )
            reason = (
                f"{mode} max batch {dn.max_batch:,} vs {up.max_batch:,} on "
                f"{rep.environment.get('device')} within {within}{capped}"
            )
    return runs, reason


def _pool_batches(runs: list[tuple[float, bool]]) -> Interval:
    """A search gives one number, no sampling interval; a capped direct48 search a lower
    bound; several searches of one class pool as runs."""
    capped = any(c for _, c in runs)
    if len(runs) == 1:
        ratio = runs[0][0]
        method = "one search: its result, no sampling interval" + (
            " (direct48 capped: a lower bound)" if capped else ""
        )
        iv = Interval(ratio, ratio, math.inf if capped else ratio, method)
    else:
        pooled = pool([RunFigure(r, None, None, "a search") for r, _ in runs])
        assert pooled is not None
        iv = pooled
        if capped:
            iv = dataclasses.replace(iv, high=math.inf, method=iv.method + "; a capped search")
    if capped:
        advice = "a direct48 search that is not capped: raise `emobench maxbatch --max-batch`"
        iv = dataclasses.replace(iv, advice=advice)
    return iv


# -- fine-tune claims --------------------------------------------------------------------------


def _finetune_claims(backbone: str, groups: list[_Group]) -> list[ClaimVerdict]:
    """'training 5-10x faster per epoch' and 'transfer learning maintained', per class of
    finetune reports."""
    training: list[ClaimVerdict] = []
    accuracy: list[ClaimVerdict] = []
    for group in groups:
        reps = [
            r
            for r in group.of_kind("finetune")
            if r.finetune and any(x.backbone == backbone for x in r.finetune.runs)
        ]
        if not reps:
            continue
        training.append(_training_row(backbone, group, reps))
        accuracy.append(_accuracy_row(backbone, group, reps))
    if not training:
        why = (
            f"no finetune report of {backbone}: run `emobench finetune --backbone {backbone} "
            "--data ...` and pass its report"
        )
        return [
            _flat(TRAINING_CLAIM, NOT_MEASURED, why, backbone),
            _flat(ACCURACY_CLAIM, NOT_MEASURED, why, backbone),
        ]
    return training + accuracy


def _epoch_run(up: FinetuneRun, dn: FinetuneRun) -> RunFigure:
    """One seed's upscale224 / direct48 median training pass per epoch, with an interval from
    the epochs: a bootstrap of both sides' epoch times from 6 epochs, else their whole range."""
    a, b = [e.train_s for e in up.epochs], [e.train_s for e in dn.epochs]
    ratio = up.train_s_per_epoch / dn.train_s_per_epoch
    if min(len(a), len(b)) >= median_ci_min_n():
        low, high = ratio_interval(a, b)
        return RunFigure(
            ratio, low, high, f"bootstrap of {len(a)} and {len(b)} epoch times (one seed)"
        )
    if min(len(a), len(b)) >= 2:
        method = f"range of {len(a)} and {len(b)} epoch times: slowest/fastest (one seed)"
        return RunFigure(ratio, min(a) / max(b), max(a) / min(b), method)
    return RunFigure(ratio, None, None, "one epoch a side: no interval (one seed)")


def _train_images(data: object) -> str:
    """The training-image count of a finetune report's untyped data dict, '1,234'; '?' where
    it is missing or not numbers (a per-class list or one number)."""
    counts = data.get("counts") if isinstance(data, dict) else None
    train = counts.get("train") if isinstance(counts, dict) else None
    values = train if isinstance(train, list) else [train]
    if not values or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values
    ):
        return "?"
    return f"{int(sum(values)):,}"


def _training_row(backbone: str, group: _Group, reps: list[R.Report]) -> ClaimVerdict:
    runs: list[RunFigure] = []
    per: dict[str, float] = {}
    images: str = "?"
    batch = None
    for rep in reps:
        ft = rep.finetune
        assert ft is not None
        for seed in dict.fromkeys(r.seed for r in ft.runs):
            sides = {r.pipeline: r for r in ft.runs if r.backbone == backbone and r.seed == seed}
            up, dn = sides.get(R.UPSCALE), sides.get(R.DIRECT)
            if up is None or dn is None or dn.train_s_per_epoch <= 0:
                continue
            runs.append(_epoch_run(up, dn))
            if not per:
                per = {R.UPSCALE: up.train_s_per_epoch, R.DIRECT: dn.train_s_per_epoch}
                images = _train_images(ft.data)
                batch = rep.config.get("batch_size")
    if not runs:
        return _row(
            TRAINING_CLAIM, backbone, group, None, "needs both pipelines fine-tuned in one report"
        )
    device = reps[0].config.get("resolved_device")
    reason = (
        f"median training pass per epoch on {device}: upscale224 {per[R.UPSCALE]:.2f} s vs "
        f"direct48 {per[R.DIRECT]:.2f} s, {images} training images, batch {batch}; the "
        "range's low end, 5x, is what is tested"
    )
    return _row(TRAINING_CLAIM, backbone, group, pool(runs), reason)


def _accuracy_row(backbone: str, group: _Group, reps: list[R.Report]) -> ClaimVerdict:
    paired = [
        p
        for rep in reps
        if rep.finetune and rep.finetune.runs[0].backbone == backbone
        for p in rep.finetune.paired
    ]
    if not paired:
        return _row(
            ACCURACY_CLAIM,
            backbone,
            group,
            None,
            "needs both pipelines fine-tuned on the same test images (`emobench finetune` "
            "with both --pipeline)",
        )
    runs = [
        RunFigure(
            p.accuracy_diff_points,
            p.ci_low_points,
            p.ci_high_points,
            f"bootstrap of the paired test images ({p.images}, one seed)",
        )
        for p in paired
    ]
    reason = (
        f"direct48 - upscale224 test accuracy, points; maintained = at most "
        f"{ACCURACY_MARGIN_POINTS:g} point lost; {verdict_sentence(paired)}; artifacts "
        "themselves are not measured, only what they would cost"
    )
    return _row(ACCURACY_CLAIM, backbone, group, pool(runs, additive=True), reason)


# -- mobile friendly and production: an x86 proxy against budgets ------------------------------

PROXY = "x86 proxy, not a phone measurement"
LATENCY_KEY = "latency_b1_median_ms"
MB = 1e6  # budgets and figures in MB: 10^6 bytes
# The mobile budgets (`claims --mobile-budget KEY=VALUE` overrides each; the README's "Mobile
# budgets" gives the same sources):
# one frame of a 30 fps camera (1000 / 30 ms): a per-frame classifier keeps up with the preview
MOBILE_LATENCY_MS = 1000 / 30
# Google's Android (Go edition) app checklist (2018, for 512 MB-1 GB phones; quoted at
# https://stackoverflow.com/questions/49405960): install size <= 40 MB for the whole app, and
# RAM <= 50 MB PSS for a non-game app. Holding the model alone to a whole app's budget is our
# choice: a model over it cannot ship in such an app, one under it may still not
MOBILE_FILE_MB = 40.0
MOBILE_RSS_MB = 50.0
BUDGET_SOURCES = {
    "latency_ms": "one 30 fps frame",
    "file_mb": "Android Go app install size",
    "rss_mb": "Android Go app RAM",
}
MOBILE_COMMAND = (
    "`emobench compare --backbone {backbone} --runtime onnxruntime --quantize int8 "
    "--threads 1 --threads 2`"
)
_IN_BUDGET = {HOLDS: "within", FAILS: "over", INCONCLUSIVE: "unsettled"}


@dataclass(frozen=True)
class MobileBudgets:
    """What "mobile friendly" holds direct48's deployable file to, on one CPU thread (an x86
    proxy): batch-1 latency, the int8 file's size on disk, and the memory a fresh process
    adds to open the file and run it once."""

    latency_ms: float = MOBILE_LATENCY_MS
    file_mb: float = MOBILE_FILE_MB
    rss_mb: float = MOBILE_RSS_MB
    given: tuple[str, ...] = ()  # the keys set by --mobile-budget rather than the defaults

    def source(self, key: str) -> str:
        return "set by --mobile-budget" if key in self.given else BUDGET_SOURCES[key]


def mobile_budgets(values: Mapping[str, float] | None = None) -> MobileBudgets:
    """The defaults with `values` (latency_ms, file_mb, rss_mb) over them; UsageError for an
    unknown key or a budget that is not a positive finite number."""
    values = dict(values or {})
    for key, value in values.items():
        if key not in BUDGET_SOURCES:
            known = ", ".join(BUDGET_SOURCES)
            raise UsageError(f"--mobile-budget {key}: not a budget; one of {known}")
        if isinstance(value, bool) or not (isinstance(value, (int, float)) and value > 0):
            raise UsageError(f"--mobile-budget {key}={value}: needs a positive number")
        if not math.isfinite(value):
            raise UsageError(f"--mobile-budget {key}={value}: needs a finite number")
    return MobileBudgets(**{k: float(v) for k, v in values.items()}, given=tuple(values))


def parse_mobile_budgets(items: Iterable[str]) -> dict[str, float]:
    """`--mobile-budget KEY=VALUE` options as a mapping for evaluate_reports; UsageError for a
    malformed one, a key given twice, or a value mobile_budgets refuses."""
    out: dict[str, float] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--mobile-budget {item!r}: expected KEY=VALUE, e.g. latency_ms=33")
        if key in out:
            raise UsageError(f"--mobile-budget {key} given twice")
        try:
            out[key] = float(text)
        except ValueError:
            raise UsageError(f"--mobile-budget {item}: {text!r} is not a number") from None
    mobile_budgets(out)
    return out


@dataclass(frozen=True)
class _Part:
    """One budget's reading for both pipelines: each one's headroom (budget / measured) with
    its interval, what was measured in words, and why the part is not measured where not."""

    claim: Claim
    budget_text: str  # "<= 33.3 ms (one 30 fps frame)"
    ivs: dict[str, Interval | None]
    figures: dict[str, str]
    missing: str = ""  # set where direct48's figure is absent: why, and what would measure it

    def verdict(self, pipeline: str) -> str:
        iv = self.ivs.get(pipeline)
        if iv is None:
            return NOT_MEASURED
        return interval_verdict(iv.low, iv.high, 1.0)

    def met(self, pipeline: str) -> str:
        return _IN_BUDGET.get(self.verdict(pipeline), "not measured")


def _ort(rep: R.Report, backbone: str) -> list[R.PipelineResult]:
    return [r for r in rep.results if r.backbone == backbone and r.runtime == ORT_RUNTIME]


def _latency_variant(reps: list[R.Report], backbone: str) -> str | None:
    """The onnxruntime variant whose batch-1 latency stands for one phone core: a --threads 1
    variant (int8 before fp32), else one measured without a sweep by a run whose environment
    had one thread; None where the class has neither."""

    def one_thread(rep: R.Report, r: R.PipelineResult) -> bool:
        return r.threads == 1 or (r.threads is None and rep.environment.get("num_threads") == 1)

    held = [
        (r.threads != 1, r.quantize != "int8", r.variant)
        for rep in reps
        for r in _ort(rep, backbone)
        if r.pipeline == R.DIRECT and one_thread(rep, r)
    ]
    return min(held)[2] if held else None


def _int8_variant(reps: list[R.Report], backbone: str, latency: str | None) -> str | None:
    """The int8 variant whose file and fresh start are read: the latency's where it is int8,
    else a 1-thread one, else the first."""
    held = [r.variant for rep in reps for r in _ort(rep, backbone) if r.quantize == "int8"]
    if not held:
        return None
    if latency in held:
        return latency
    return next((v for v in held if v.endswith(" 1t")), held[0])


def _headroom(budget: float, value: float, low: float | None, high: float | None) -> RunFigure:
    """A measured cost as its headroom, budget / cost: the interval's ends swap."""
    h_low = budget / high if high else None
    h_high = budget / low if low else (math.inf if low == 0 else None)
    if h_low is None or h_high is None:
        h_low = h_high = None
    return RunFigure(budget / value, h_low, h_high, "")


def _latency_iv(
    reps: list[R.Report], backbone: str, pipeline: str, variant: str, budget_ms: float
) -> Interval | None:
    """The pooled headroom of one pipeline's batch-1 median latency in `variant` over the
    class's reports: one run's interval is its median's 95% order-statistic interval."""
    runs = []
    for rep in reps:
        r = rep.result(backbone, pipeline, variant)
        if r is None or r.latency is None or not r.latency.stats.median > 0:
            continue
        s = r.latency.stats
        fig = _headroom(budget_ms, s.median, s.median_ci_low, s.median_ci_high)
        if fig.low is None:
            method = f"{s.n} samples: too few for a 95% interval ({median_ci_min_n()} needed)"
        else:
            method = f"the median's 95% order-statistic interval, {s.n} samples (one run)"
        runs.append(dataclasses.replace(fig, method=method))
    return pool(runs)


def _ms_text(iv: Interval, budget_ms: float) -> str:
    point = f"{budget_ms / iv.point:.1f} ms"
    if iv.low is None or iv.high is None:
        return f"{point} [no interval]"
    return f"{point} [{budget_ms / iv.high:.1f}, {budget_ms / iv.low if iv.low else math.inf:.1f}]"


def _latency_part(
    reps: list[R.Report], backbone: str, device: str, variant: str | None, budgets: MobileBudgets
) -> _Part:
    budget = budgets.latency_ms
    text = f"<= {budget:.1f} ms ({budgets.source('latency_ms')})"
    claim = MOBILE_LATENCY_CLAIM
    if device.startswith("cuda"):
        why = (
            f"measured on {device} (the CUDA execution provider); one CPU thread is the phone "
            "proxy: rerun with --device cpu"
        )
        return _Part(claim, text, {}, {}, why)
    if variant is None:
        held = sorted({r.variant for rep in reps for r in _ort(rep, backbone)})
        why = (
            f"no 1-thread onnxruntime variant of direct48 (the reports hold "
            f"{', '.join(held)}): {MOBILE_COMMAND.format(backbone=backbone)} measures one"
        )
        return _Part(claim, text, {}, {}, why)
    ivs = {p: _latency_iv(reps, backbone, p, variant, budget) for p in (R.UPSCALE, R.DIRECT)}
    figures = {p: _ms_text(iv, budget) for p, iv in ivs.items() if iv is not None}
    missing = ""
    if ivs[R.DIRECT] is None:
        missing = f"no direct48 batch-1 latency in {variant}: {_error(reps, backbone, variant)}"
    return _Part(claim, text, ivs, figures, missing)


def _error(reps: list[R.Report], backbone: str, variant: str) -> str:
    for rep in reps:
        r = rep.result(backbone, R.DIRECT, variant)
        if r is not None and r.error:
            return r.error
    return "the run left it out or it failed (the report's notes say which)"


def _deployment(
    reps: list[R.Report], backbone: str, pipeline: str, variant: str
) -> list[Deployment]:
    out = []
    for rep in reps:
        r = rep.result(backbone, pipeline, variant)
        if r is not None and r.deployment is not None:
            out.append(r.deployment)
    return out


def _file_part(
    reps: list[R.Report], backbone: str, variant: str | None, budgets: MobileBudgets
) -> _Part:
    """The int8 file on disk (the .onnx and its external weights): the same wherever it is
    exported with the same versions, so one figure, no interval."""
    budget = budgets.file_mb
    text = f"<= {budget:g} MB ({budgets.source('file_mb')})"
    if variant is None:
        why = f"no int8 file: {MOBILE_COMMAND.format(backbone=backbone)} writes one"
        return _Part(MOBILE_FILE_CLAIM, text, {}, {}, why)
    ivs: dict[str, Interval | None] = {}
    figures = {}
    for p in (R.UPSCALE, R.DIRECT):
        held = [d.file_bytes for d in _deployment(reps, backbone, p, variant) if d.file_bytes > 0]
        if not held:
            ivs[p] = None
            continue
        h = budget * MB / held[0]
        ivs[p] = Interval(h, h, h, "exact: the file on disk", exact=True)
        figures[p] = f"{held[0] / MB:.1f} MB"
    missing = ""
    if ivs[R.DIRECT] is None:
        missing = f"no file size of direct48's {variant} file: {_error(reps, backbone, variant)}"
    return _Part(MOBILE_FILE_CLAIM, text, ivs, figures, missing)


def _rss_part(
    reps: list[R.Report], backbone: str, device: str, variant: str | None, budgets: MobileBudgets
) -> _Part:
    """What a fresh process adds to open the int8 file and run one batch-1 inference: its peak
    resident memory less what it held before the session (the Python interpreter, numpy and
    onnxruntime's library, none of which a phone app carries in that form). One start per
    report, no interval: of several, the largest."""
    budget = budgets.rss_mb
    text = f"<= {budget:g} MB ({budgets.source('rss_mb')})"
    claim = MOBILE_RSS_CLAIM
    if device.startswith("cuda"):
        why = f"the fresh process ran on {device} (a CUDA context in it): rerun with --device cpu"
        return _Part(claim, text, {}, {}, why)
    if variant is None:
        why = f"no int8 file to start: {MOBILE_COMMAND.format(backbone=backbone)} writes one"
        return _Part(claim, text, {}, {}, why)
    ivs: dict[str, Interval | None] = {}
    figures = {}
    notes = []
    for p in (R.UPSCALE, R.DIRECT):
        deployments = _deployment(reps, backbone, p, variant)
        starts = [d.fresh for d in deployments if d.fresh is not None]
        notes += [d.fresh_note for d in deployments if d.fresh is None and d.fresh_note]
        grown = [(f.peak_rss_bytes - f.base_rss_bytes, f) for f in starts]
        grown = [(g, f) for g, f in grown if g > 0]
        if not grown:
            ivs[p] = None
            continue
        growth, fresh = max(grown, key=lambda gf: gf[0])
        h = budget * MB / growth
        method = "one fresh start: no interval"
        if len(grown) > 1:
            method = f"the largest of {len(grown)} fresh starts: no interval"
        ivs[p] = Interval(h, h, h, method)
        figures[p] = (
            f"{growth / MB:.1f} MB (peak {fresh.peak_rss_bytes / MB:.1f} MB less "
            f"{fresh.base_rss_bytes / MB:.1f} MB before the session)"
        )
    missing = ""
    if ivs[R.DIRECT] is None:
        why = notes[0] if notes else "not recorded"
        missing = f"no fresh-process start of direct48's {variant} file: {why}"
    return _Part(claim, text, ivs, figures, missing)


def _part_row(part: _Part, backbone: str, group: _Group, variant: str | None) -> ClaimVerdict:
    iv = part.ivs.get(R.DIRECT)
    up = part.figures.get(R.UPSCALE)
    up_text = f"; upscale224 {up}: {part.met(R.UPSCALE)} budget" if up else ""
    what = {
        MOBILE_LATENCY_CLAIM.key: "batch-1 median latency on one thread",
        MOBILE_FILE_CLAIM.key: "int8 file on disk",
        MOBILE_RSS_CLAIM.key: "memory a fresh process adds to open its int8 file and run it once",
    }[part.claim.key]
    reason = (
        f"{PROXY}: direct48's {what} ({variant}): {part.figures.get(R.DIRECT, '')}, against "
        f"{part.budget_text}; measured: budget / figure, >= 1 within budget{up_text}"
    )
    missing = f"{PROXY}: {part.missing}; budget {part.budget_text}"
    row = _row(part.claim, backbone, group, iv, reason, missing)
    return dataclasses.replace(row, claimed_text=part.budget_text.split(" (")[0])


def _overall_row(parts: list[_Part], backbone: str, group: _Group) -> ClaimVerdict:
    """Mobile friendly as a whole: holds when every part holds; does not hold when one does
    not; otherwise not measured (a part is missing) or inconclusive."""
    verdicts = [p.verdict(R.DIRECT) for p in parts]
    order = (FAILS, NOT_MEASURED, INCONCLUSIVE, HOLDS)
    verdict = next(v for v in order if v in verdicts)
    names = {MOBILE_LATENCY_CLAIM.key: "latency", MOBILE_FILE_CLAIM.key: "file size"}
    each = "; ".join(
        f"{names.get(p.claim.key, 'memory')} {v}" for p, v in zip(parts, verdicts, strict=True)
    )
    reason = f"{PROXY}: direct48 against the three budgets: {each}"
    settle = "" if verdict in (HOLDS, FAILS) else "each part's row says what would settle it"
    row = _flat(MOBILE_CLAIM, verdict, reason, backbone)
    return dataclasses.replace(row, machine_class=group.id, settle=settle)


def _runtime_view(rep: R.Report, variant: str) -> R.Report:
    """One runtime variant of a report, with that variant's own runs' ratios."""
    return dataclasses.replace(rep.view(variant), run_ratios=variant_run_ratios(rep, variant))


def _production_row(
    parts: list[_Part], backbone: str, group: _Group, reps: list[R.Report], variant: str | None
) -> ClaimVerdict:
    """'use 48x48 for production': upscale224 / direct48 batch-1 latency under the deployment
    runtime on one thread (the paired interval where the run has one), with which pipeline
    meets which budget; a budget upscale224 meets and direct48 misses makes it not hold."""
    claim = PRODUCTION_CLAIM
    latency = parts[0]
    if variant is None or latency.missing:
        missing = f"{PROXY}: {latency.missing}"
        return _row(claim, backbone, group, None, missing, missing)
    views = [_runtime_view(r, variant) for r in reps if variant in r.variants]
    iv = pool(timing_runs(views, backbone, LATENCY_KEY))
    names = ("latency", "file size", "memory")
    met = "; ".join(
        f"{p}: " + ", ".join(f"{n} {part.met(p)}" for n, part in zip(names, parts, strict=True))
        for p in (R.DIRECT, R.UPSCALE)
    )
    sizes = []  # headroom ratios: direct48's / upscale224's = upscale224's figure / direct48's
    for text, part in zip(("file {}x smaller", "memory {}x less"), parts[1:], strict=True):
        up, dn = part.ivs.get(R.UPSCALE), part.ivs.get(R.DIRECT)
        if up is not None and dn is not None:
            sizes.append(text.format(f"{dn.point / up.point:.1f}"))
    reason = (
        f"{PROXY}: upscale224 / direct48 batch-1 latency in {variant} on one thread; budgets "
        f"met ({met})" + (f"; direct48's {', '.join(sizes)}" if sizes else "")
    )
    row = _row(claim, backbone, group, iv, reason)
    worse = [
        n
        for n, part in zip(names, parts, strict=True)
        if part.verdict(R.UPSCALE) == HOLDS and part.verdict(R.DIRECT) == FAILS
    ]
    if worse:
        why = f"; direct48 misses the {', '.join(worse)} budget upscale224 meets"
        row = dataclasses.replace(row, verdict=FAILS, reason=row.reason + why, settle="")
    return row


def _mobile_claims(
    backbone: str, groups: list[_Group], budgets: MobileBudgets
) -> list[ClaimVerdict]:
    """'mobile friendly' (as a whole and per budget) and 'use 48x48 for production', per class
    of reports that hold onnxruntime variants of the backbone; not measured, naming the
    command, where none does."""
    out: list[ClaimVerdict] = []
    for group in groups:
        reps = [r for r in group.of_kind(*TIMING_KINDS) if _ort(r, backbone)]
        if not reps:
            continue
        device = str(reps[0].environment.get("device", "?"))
        variant = _latency_variant(reps, backbone)
        int8 = _int8_variant(reps, backbone, variant)
        parts = [
            _latency_part(reps, backbone, device, variant, budgets),
            _file_part(reps, backbone, int8, budgets),
            _rss_part(reps, backbone, device, int8, budgets),
        ]
        out.append(_overall_row(parts, backbone, group))
        out.append(_part_row(parts[0], backbone, group, variant))
        out += [_part_row(p, backbone, group, int8) for p in parts[1:]]
        out.append(_production_row(parts, backbone, group, reps, variant))
    return out or _mobile_unmeasured(backbone, backbone)


def _mobile_unmeasured(backbone: str, row_backbone: str) -> list[ClaimVerdict]:
    """Both runtime claims not measured: what they need, and the command that measures it."""
    why = (
        f"{PROXY}: needs {backbone}'s deployable file in ONNX Runtime on one thread (int8 file "
        f"size, fresh-process memory): {MOBILE_COMMAND.format(backbone=backbone)} measures it"
    )
    return [
        _flat(MOBILE_CLAIM, NOT_MEASURED, why, row_backbone),
        _flat(PRODUCTION_CLAIM, NOT_MEASURED, why, row_backbone),
    ]


# -- real-time ready: LoadGen's server and single-stream runs ----------------------------------

_SERVER = "server"
_SINGLE = "single-stream"
MLPERF_STYLE = "MLPerf-style run"
POISSON_TEXT = (
    "max streams is read under LoadGen's Poisson arrivals, burstier than periodic cameras: "
    "a pessimistic estimate"
)
PERIODIC_SETTLE = "rerun with longer probes or judge on single-stream"
BOUNDED = "bounded probes, not MLPerf-compliant"


@dataclass(frozen=True)
class _StreamFigures:
    """One stream report's reading of one pipeline: server max streams (None: not measured,
    `why` says why), the server p99 it is read at, single-stream p90."""

    max_streams: int | None
    server_p99_ms: float | None
    single_p90_ms: float | None
    invalid: list[str]  # LoadGen's reasons where the pipeline serves no stream
    why: str = ""
    lower_bound: bool = False  # max streams is a lower bound (the search was cut or capped)
    evidence: str = ""  # the server run's verdict and what it rests on (see _evidence)
    single_frames: int | None = None  # the frames single-stream p90 rests on
    # single-stream p99 where one periodic camera is served (p99 + the batch window within
    # the deadline, mean within a frame): the case Poisson arrivals at 1 stream can miss
    periodic_p99_ms: float | None = None


def _evidence(run: LoadgenRun) -> str:
    """'VALID (60 frames; LoadGen: INVALID, early stopping: ...)': the run's verdict, the
    frames its percentile rests on, and LoadGen's own verdict with its early-stopping text."""
    frames = f"{run.queries:,} frame{'s' if run.queries != 1 else ''}"
    own = ""
    if run.loadgen_valid is not None:
        own = f"; LoadGen: {'VALID' if run.loadgen_valid else 'INVALID'}"
        if run.early_stopping:
            own += f", early stopping: {run.early_stopping}"
        elif run.early_stopping_met is not None:
            own += f", early stopping {'met' if run.early_stopping_met else 'not met'}"
    return f"{'VALID' if run.valid else 'INVALID'} ({frames}{own})"


def _stream_lower_bound(result: StreamResult, summary: StreamSummary, ceiling: object) -> bool:
    """A max streams the search did not settle: more than one stream unresolved, the
    --max-streams ceiling reached, or the search cut by --time-budget (the report's note)."""
    if not result.max_streams:
        return False
    if result.search_resolution is not None and result.search_resolution > 1:
        return True
    if isinstance(ceiling, int) and not isinstance(ceiling, bool) and result.max_streams >= ceiling:
        return True
    tag = f"{result.backbone}/{result.pipeline}: "
    return any(n.startswith(tag) and "cut by --time-budget" in n for n in summary.notes)


def _server_run(result: StreamResult) -> LoadgenRun | None:
    """The run at max streams (VALID); where none is valid, the run at the fewest streams."""
    if not result.runs:
        return None
    if result.max_streams:
        at = [r for r in result.runs if r.valid and r.streams == result.max_streams]
        if at:
            return at[-1]
    return min(result.runs, key=lambda r: r.streams if r.streams is not None else 2**63)


def _stream_figures(
    summary: StreamSummary, backbone: str, pipeline: str, ceiling: object = None
) -> _StreamFigures:
    server = summary.result(backbone, pipeline, _SERVER)
    single = summary.result(backbone, pipeline, _SINGLE)
    p90 = frames = periodic = None
    if single is not None and not single.error and single.runs:
        last = single.runs[-1]
        lat = last.latency_ms
        p90 = lat.p90 if lat is not None else None
        frames = last.queries if lat is not None else None
        if (
            lat is not None
            and lat.p99 + summary.batch_window_ms <= summary.deadline_ms
            and lat.mean < 1000 / summary.fps
        ):
            periodic = lat.p99
    if server is None:
        return _StreamFigures(None, None, p90, [], f"no server run of {pipeline}")
    if server.error:
        return _StreamFigures(
            None, None, p90, [], f"{pipeline}'s server run failed: {server.error}"
        )
    if server.max_streams is None:
        return _StreamFigures(None, None, p90, [], f"{pipeline}'s server search found no figure")
    run = _server_run(server)
    p99 = run.latency_ms.p99 if run is not None and run.latency_ms is not None else None
    invalid = list(run.invalid_reasons) if run is not None and server.max_streams == 0 else []
    return _StreamFigures(
        server.max_streams,
        p99,
        p90,
        invalid,
        lower_bound=_stream_lower_bound(server, summary, ceiling),
        evidence=_evidence(run) if run is not None else "",
        single_frames=frames,
        periodic_p99_ms=periodic,
    )


def _stream_setting(rep: R.Report) -> tuple[str, float, float, int]:
    """What a stream report's runs are held to: runtime, fps, deadline, faces per frame."""
    s = rep.stream
    assert s is not None
    runtime = str(s.results[0].runtime) if s.results else str(rep.config.get("runtime"))
    return (runtime, s.fps, s.deadline_ms, s.faces_per_frame)


def _setting_text(setting: tuple[str, float, float, int]) -> str:
    runtime, fps, deadline, faces = setting
    per = f", {faces} faces per frame" if faces != 1 else ""
    return f"{runtime}, {fps:g} fps, {deadline:.1f} ms deadline{per}"


def _ms_or(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.1f} ms"


def _streams_text(n: int, lower_bound: bool = False) -> str:
    return f"{'≥' if lower_bound else ''}{n:,} stream{'s' if n != 1 else ''}"


def _streams_ratio_text(dn: _StreamFigures, up: _StreamFigures) -> str:
    """'4.00x', '≥4.00x, indicative (a lower bound)' where direct48's max streams is one, or
    none and why (a pipeline that serves no stream, or upscale224's a lower bound)."""
    if up.max_streams is None:
        return "none (upscale224 not measured)"
    if not dn.max_streams or not up.max_streams:
        who = "direct48" if not dn.max_streams else "upscale224"
        return f"none ({who} serves no stream)"
    if up.lower_bound:
        return "none (upscale224's max streams is a lower bound: the ratio is not known)"
    ratio = f"{dn.max_streams / up.max_streams:.2f}x"
    return f"≥{ratio}, indicative (a lower bound)" if dn.lower_bound else ratio


def _periodic_only(d: _StreamFigures) -> bool:
    """direct48 serves no stream under Poisson arrivals, yet one periodic camera is served."""
    return d.max_streams == 0 and d.periodic_p99_ms is not None


def _realtime_claims(backbone: str, groups: list[_Group]) -> tuple[list[ClaimVerdict], list[str]]:
    """'real-time ready' per class of stream reports of the backbone (those of the class's
    first stream setting pooled as runs; others named in the notes); not measured, naming the
    command, where no class has one."""
    out: list[ClaimVerdict] = []
    notes: list[str] = []
    for group in groups:
        held = [
            (path, rep)
            for path, rep in group.reports
            if rep.kind == "stream"
            and rep.stream is not None
            and any(r.backbone == backbone for r in rep.stream.results)
        ]
        if not held:
            continue
        setting = _stream_setting(held[0][1])
        same = [rep for _, rep in held if _stream_setting(rep) == setting]
        for path, rep in held:
            if _stream_setting(rep) != setting:
                other = _setting_text(_stream_setting(rep))
                notes.append(
                    f"{path.name}: its 'real-time ready' reading ({other}) is left out beside "
                    f"{held[0][0].name} ({_setting_text(setting)}): one stream setting per "
                    "machine class; pass it alone to read it"
                )
        out.append(_realtime_row(backbone, group, same, setting))
    return (out or [_realtime_unmeasured(backbone, backbone)]), notes


def _realtime_unmeasured(backbone: str, row_backbone: str) -> ClaimVerdict:
    why = (
        f"no stream report of {backbone}: `emobench stream` measures it "
        f"({REALTIME_COMMAND.format(backbone=backbone)}): LoadGen's camera streams, p99 "
        "against the frame deadline, the most streams served"
    )
    return _flat(REALTIME_CLAIM, NOT_MEASURED, why, row_backbone)


def _realtime_row(
    backbone: str,
    group: _Group,
    reps: list[R.Report],
    setting: tuple[str, float, float, int],
) -> ClaimVerdict:
    """Holds when direct48 serves at least one stream in every run (server max streams >= 1),
    does not hold when it serves none in any, inconclusive when runs disagree or when it serves
    no stream under LoadGen's Poisson arrivals while single-stream shows one periodic camera
    served (Poisson arrivals are burstier than cameras: max streams is pessimistic)."""
    runtime, fps, deadline, _ = setting
    held = [(rep.stream, rep.config.get("max_streams")) for rep in reps if rep.stream is not None]
    summaries_ = [s for s, _ in held]
    dn = [_stream_figures(s, backbone, R.DIRECT, c) for s, c in held]
    up = [_stream_figures(s, backbone, R.UPSCALE, c) for s, c in held]
    usable_ = [(d, u) for d, u in zip(dn, up, strict=True) if d.max_streams is not None]
    claimed = f">= 1 stream at {fps:g} fps"
    if not usable_:
        why = (
            f"{dn[0].why} in the stream report ({_setting_text(setting)}): "
            f"{REALTIME_COMMAND.format(backbone=backbone)} measures it"
        )
        row = _flat(REALTIME_CLAIM, NOT_MEASURED, why, backbone)
        return dataclasses.replace(row, machine_class=group.id, claimed_text=claimed)
    counts = [d.max_streams or 0 for d, _ in usable_]
    periodic = [_periodic_only(d) for d, _ in usable_]
    if all(c >= 1 for c in counts):
        verdict = HOLDS
    elif all(c == 0 for c in counts) and not any(periodic):
        verdict = FAILS
    else:
        verdict = INCONCLUSIVE
    d, u = usable_[0]
    n = len(usable_)
    which = ""
    if n > 1:
        each = ", ".join(str(c) for c in counts)
        which = f" (the first of {n} runs; direct48's max streams in each: {each})"
    if (d.max_streams or 0) >= 1:
        dn_text = (
            f"direct48 serves {_streams_text(d.max_streams or 0, d.lower_bound)} at {fps:g} fps "
            f"with server p99 {_ms_or(d.server_p99_ms)} within the {deadline:.1f} ms deadline, "
            f"{d.evidence}"
        )
    else:
        invalid = f": {'; '.join(d.invalid)}" if d.invalid else ""
        dn_text = (
            f"direct48 serves no stream at {fps:g} fps: server p99 {_ms_or(d.server_p99_ms)} "
            f"at the fewest streams probed, against the {deadline:.1f} ms deadline, "
            f"{d.evidence}{invalid}"
        )
        if d.periodic_p99_ms is not None:
            dn_text += (
                f"; one periodic camera is served (single-stream p99 "
                f"{d.periodic_p99_ms:.1f} ms), Poisson arrivals at 1 stream are not: "
                f"{PERIODIC_SETTLE}"
            )
    if u.max_streams is None:
        up_text = f"upscale224: not measured ({u.why})"
    else:
        up_text = (
            f"upscale224 serves {_streams_text(u.max_streams, u.lower_bound)} (server p99 "
            f"{_ms_or(u.server_p99_ms)}, {u.evidence})"
        )

    def p90_text(f: _StreamFigures) -> str:
        frames = f" ({f.single_frames:,} frames)" if f.single_frames is not None else ""
        return _ms_or(f.single_p90_ms) + frames

    single = f"single-stream p90: direct48 {p90_text(d)}, upscale224 {p90_text(u)}"
    if d.single_p90_ms is None and u.single_p90_ms is None:
        single += " (add --scenario single-stream)"
    ratios = [  # a lower bound on either side is no figure to state
        dd.max_streams / uu.max_streams
        for dd, uu in usable_
        if dd.max_streams and uu.max_streams and not (dd.lower_bound or uu.lower_bound)
    ]
    ratio_text = f"max-streams ratio direct48 / upscale224: {_streams_ratio_text(d, u)}"
    mlperf = [bool(s.mlperf) for s in summaries_]
    if all(mlperf):
        mode = MLPERF_STYLE
    elif not any(mlperf):
        mode = BOUNDED
    else:
        mode = f"{sum(mlperf)} of {len(mlperf)} runs MLPerf-style, the others {BOUNDED}"
    first = summaries_[0]
    device = reps[0].config.get("resolved_device") or reps[0].environment.get("device")
    reason = (
        f"{dn_text}; {up_text}; {single}; {ratio_text}{which}; {POISSON_TEXT}; {runtime} on "
        f"{device}, LoadGen {first.loadgen_version}, {mode}"
    )
    point = statistics.median(ratios) if ratios else None
    method = ""
    if point is not None:
        method = (
            "one search per pipeline: its result, no sampling interval"
            if len(ratios) == 1
            else f"the median of {len(ratios)} searches' ratios (a search has no sampling interval)"
        )
    if verdict == INCONCLUSIVE and all(c == 0 for c in counts):
        settle = PERIODIC_SETTLE
    elif verdict == INCONCLUSIVE:
        settle = (
            "the runs disagree: more runs on an idle machine, or `--mlperf` for the rules' "
            "durations"
        )
    elif not any(mlperf):
        settle = f"{BOUNDED}: `--mlperf` runs each LoadGen test for the rules' minimums"
    else:
        settle = ""
    return ClaimVerdict(
        backbone,
        REALTIME_CLAIM.text,
        None,
        point,
        verdict,
        reason,
        low=point,
        high=point,
        threshold=None,
        machine_class=group.id,
        interval=method,
        settle=settle,
        unit=RATIO,
        claimed_text=claimed,
        key=REALTIME_CLAIM.key,
    )


# -- across classes ----------------------------------------------------------------------------


def summaries(verdicts: list[ClaimVerdict]) -> list[ClaimSummary]:
    """One line per backbone and claim: on how many machine classes it holds, and where not."""
    order: dict[tuple[str, str], list[ClaimVerdict]] = {}
    for v in verdicts:
        order.setdefault((v.backbone, v.claim), []).append(v)
    out = []
    for (backbone, claim), rows in order.items():
        classed = [v for v in rows if v.machine_class != NO_CLASS]
        if not classed:
            out.append(ClaimSummary(backbone, claim, rows[0].verdict))
            continue
        n = len(classed)
        held = sum(v.verdict == HOLDS for v in classed)
        parts = [f"holds on {held} of {n} machine class{'es' if n != 1 else ''}"]
        for verdict in (INCONCLUSIVE, FAILS, NOT_MEASURED):
            where = [v.machine_class for v in classed if v.verdict == verdict]
            if where:
                parts.append(f"{verdict} on {', '.join(where)}")
        batches = {v.batch for v in classed if v.batch is not None}
        if len(batches) > 1:
            at = ", ".join(f"batch {v.batch} on {v.machine_class}" for v in classed if v.batch)
            parts.append(f"read at {at}")
        out.append(ClaimSummary(backbone, claim, "; ".join(parts)))
    return out


def evaluate_training(finetune: R.Report) -> list[ClaimVerdict]:
    """The training-speed rows of one finetune report."""
    rows = evaluate_reports([(Path("finetune.json"), finetune)]).verdicts
    return [v for v in rows if v.key == TRAINING_CLAIM.key]
