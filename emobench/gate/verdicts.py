"""Compare a report with a stored baseline -> one verdict per check; store and find baselines.

Three kinds of metric, each on its own terms:
* exact (parameter counts, FLOPs, bytes per input image, weights, copied layers): any change fails,
  whatever machine measured either report;
* portable (direct48-vs-upscale224 ratios of latency, throughput, preprocessing, live-tensor
  memory): compared with a relative tolerance when both reports are of one machine class; across
  classes shown beside each other, never gated (the ratio itself moves with the CPU's ISA);
* machine (absolute timings and memory): compared only within one machine class; a timing
  regresses only when it is worse than the threshold AND a one-sided Mann-Whitney U test on the
  raw samples says the slowdown is real.
Against a baseline of another class a fourth kind, invariant, checks directions that hold on
any machine (direct48 needs fewer FLOPs and input bytes; on VGG it is also faster).

A metric the check cannot compare (a value missing on one side, not a finite number, a ratio
that is not positive, a baseline of 0 that the report exceeds) is never a pass: its row is
`not comparable` and counts as a failure of its kind, so it gates wherever that kind is in
--fail-on (all kinds by default). The exceptions are shown, never gated: tail percentiles that
one report has too few samples for (`not estimated`), figures of another machine class, and
figures measured under different settings (`incomparable`).

A report may hold several runtime variants side by side (torch, onnxruntime, its int8 file, a
--threads sweep); each variant the baseline holds is checked against the same variant of the
report (Report.view), its rows labelled with the variant. A variant the baseline holds and the
report lacks is `not comparable` (it fails, as a missing metric does); one only the report holds
is shown as not checked.

Baselines live one file per machine class: results/baselines/NAME/<class id>.json.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from dataclasses import dataclass
from typing import Any

from emobench import results as R
from emobench.errors import UsageError
from emobench.gate.store import same_class
from emobench.names import TORCH_RUNTIME
from emobench.stats.gate import mann_whitney_p_greater, ratio_interval

DEFAULT_PORTABLE_TOLERANCE = 0.25
DEFAULT_MACHINE_TOLERANCE = 0.10
MAX_RULE_THRESHOLD = 10.0  # 1000%: a --rule above it could never fail
SIGNIFICANCE = 0.01  # p-value below which a slowdown counts as real

INVARIANT = "invariant"  # a direction that holds on any machine, checked across classes
# direct48 must win these on every backbone, and on VGG backbones also the timings below
INVARIANT_KEYS = ("flops_per_image", "input_bytes_per_image")
VGG_INVARIANT_KEYS = ("latency_b1_median_ms",)
VGG_PREFIX = "vgg"

PASS = "pass"
FAIL = "fail"
NOISY = "pass (noisy)"  # worse than the threshold, but the samples do not show it is real
SKIPPED = "skipped (different machine class)"
OTHER_CLASS = "different machine class"  # a ratio shown beside another class's; never gates
UNRELIABLE = "unreliable (machine busy)"  # a timing from a contended run; never gates
INCOMPARABLE = "incomparable"  # measured under different settings; never gates
NOT_COMPARABLE = "not comparable"  # a value missing or not a number: fails, never passes
NOT_ESTIMATED = "not estimated (too few samples)"  # a tail percentile one report lacks; shown
NOT_CHECKED = "not checked (not in the baseline)"  # a runtime variant only the report holds
VARIANT_KIND = "variant"  # the kind of a NOT_CHECKED row: a whole variant, no metric
# A tail percentile exists only from 64 (p90) or 662 (p99) samples, a count the stopping rule
# decides: one report having it and the other not is no defect.
SAMPLE_DEPENDENT_KEYS = ("latency_b1_p90_ms", "latency_b1_p99_ms")
UNGATED_KEYS = ("cold_start_ms",)  # a single sample: shown in reports, too noisy to gate on
# Settings that change speed, and which metrics each one affects (see _affected).
MODEL_SETTINGS = ("precision", "compile", "channels_last", "data", "mode")
IN_FORCE_SETTINGS = ("num_threads", "cudnn_benchmark", "tf32_matmul", "tf32_cudnn")
STOPPING_SETTINGS = ("warmup_iters", "min_iters", "min_time_s", "max_time_s", "target_ci")
PREPROCESS_SETTINGS = ("preprocess_images",)
# A runtime's session settings (Deployment.settings), compared within one variant.
DEPLOYMENT_SETTINGS = (
    "onnxruntime",
    "intra_op_threads",
    "inter_op_threads",
    "graph_optimization",
    "execution_mode",
    "providers",
)
TIMING_UNITS = ("ms", "s", "images/s", "us/image")
KINDS = (R.EXACT, R.PORTABLE, R.MACHINE, INVARIANT)


@dataclass(frozen=True)
class Verdict:
    backbone: str
    pipeline: str  # "upscale224", "direct48" or "ratio"
    metric: str
    kind: str
    baseline: float | str | None
    current: float | str | None
    delta: float | None  # relative change, (current - baseline) / baseline
    threshold: float | None
    verdict: str
    note: str = ""
    unit: str = ""  # of baseline and current
    # the runtime variant the row checks; None when both reports hold plain torch only
    variant: str | None = None

    @property
    def failed(self) -> bool:
        """A regression, or a metric that could not be compared: both gate."""
        return self.verdict in (FAIL, NOT_COMPARABLE)


def parse_rules(rules: list[str], known: set[str] | None) -> dict[str, float]:
    """'METRIC:THRESHOLD' -> {metric: fraction}; METRIC may be a key or a kind.

    THRESHOLD is a percentage (30%) or a fraction (0.3), from 0 to MAX_RULE_THRESHOLD (1000%).
    A bare number above 1 is refused with a hint: `portable:30` would otherwise mean 3000%.
    With `known` None only the form is checked (the metric names need the baseline).
    """
    parsed: dict[str, float] = {}
    top = f"{MAX_RULE_THRESHOLD:.0%}"
    for rule in rules:
        metric, sep, raw = rule.partition(":")
        metric, raw = metric.strip(), raw.strip()
        if not sep or not metric or not raw:
            raise UsageError(
                f"--rule {rule!r}: expected METRIC:THRESHOLD, e.g. latency_b1_median_ms:10%"
            )
        if known is not None and metric not in known and metric not in KINDS:
            raise UsageError(f"--rule {rule!r}: unknown metric {metric!r}")
        percent = raw.endswith("%")
        try:
            value = float(raw[:-1] if percent else raw)
        except ValueError:
            raise UsageError(
                f"--rule {rule!r}: threshold {raw!r} is not a number or percentage"
            ) from None
        if not math.isfinite(value):
            raise UsageError(f"--rule {rule!r}: threshold must be a finite number")
        if percent:
            value /= 100
        elif value > 1:
            raise UsageError(
                f"--rule {rule!r}: a bare threshold is a fraction (0.3 = 30%), so {raw} would "
                f"mean {value:.0%}; write {raw}% (or {value / 100:g})"
            )
        if not 0 <= value <= MAX_RULE_THRESHOLD:
            raise UsageError(f"--rule {rule!r}: threshold must be from 0% to {top}")
        parsed[metric] = value
    return parsed


def _samples(result: R.PipelineResult | None, key: str) -> list[float] | None:
    stats = R.stats_for(result, key)
    return stats.samples if stats else None


def _delta(base: float, cur: float) -> float | None:
    return None if base == 0 else (cur - base) / base


def _number(value: Any) -> bool:
    """A value the check can compute with: a finite int or float (not a bool, str or None)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _why_not(base: Any, cur: Any) -> str | None:
    """Why a baseline/report pair of values cannot be compared; None when it can."""
    for side, value in (("baseline", base), ("report", cur)):
        if value is None:
            return f"the {side} has no value"
        if not _number(value):
            return f"the {side}'s value {value!r} is not a finite number"
    return None


def _absent(row: R.MetricRow) -> R.MetricRow:
    """The row of a metric the report does not have at all: every value None."""
    return dataclasses.replace(row, upscale224=None, direct48=None, ratio=None, noisy=False)


def _device_type(report: R.Report) -> str:
    return str(report.environment.get("device") or "cpu").split(":")[0]


def _pairs(report: R.Report) -> set[tuple[str, str]]:
    """The backbones x pipelines a report measured, over all its variants."""
    return {(r.backbone, r.pipeline) for r in report.results}


def check(
    current: R.Report,
    baseline: R.Report,
    rules: dict[str, float] | None = None,
) -> list[Verdict]:
    """Every check of `current` against `baseline`; raises UsageError when the suites differ.

    Across machine classes only exact metrics gate, ratios are shown as `different machine
    class`, machine-bound figures are skipped and the invariants of `current` are added.
    Each runtime variant of the baseline is checked against the same variant of `current`.
    """
    rules = rules or {}
    if _pairs(current) != _pairs(baseline):
        missing = sorted(_pairs(baseline) - _pairs(current))
        extra = sorted(_pairs(current) - _pairs(baseline))
        raise UsageError(
            "report and baseline cover different suites "
            f"(missing from report: {missing or 'none'}; not in baseline: {extra or 'none'})"
        )
    label = _labelled(current, baseline)
    verdicts: list[Verdict] = []
    for variant in baseline.variants:
        cur, base = _view(current, variant), _view(baseline, variant)
        found = _check_variant(cur, base, rules)
        if variant not in current.variants:
            found = _variant_missing(found, variant)
        verdicts += [dataclasses.replace(v, variant=variant) if label else v for v in found]
    for variant in current.variants:
        if variant not in baseline.variants:
            verdicts += _not_checked(current, variant)
    verdicts = _mark_incomparable(verdicts, current, baseline)
    return _mark_contended(verdicts, current, baseline)


def _labelled(current: R.Report, baseline: R.Report) -> bool:
    """Rows name their variant unless both reports hold plain torch only."""
    return set(current.variants) | set(baseline.variants) != {TORCH_RUNTIME}


def _view(report: R.Report, variant: str) -> R.Report:
    """One variant of the report, with that variant's runs' ratios (`run_ratios`, from
    calibrate and --repeat) under "backbone/metric", where the checks read them; the other
    variants' stay under their own names, counted only in the gate's family
    (calibrate.gate_run_ratios)."""
    from emobench.gate.calibrate import gate_run_ratios

    return dataclasses.replace(report.view(variant), run_ratios=gate_run_ratios(report, variant))


def _check_variant(current: R.Report, baseline: R.Report, rules: dict[str, float]) -> list[Verdict]:
    """The checks of one variant: `current` and `baseline` each hold that variant only."""
    machine_ok = same_class(current, baseline)
    same_device = _device_type(current) == _device_type(baseline)
    cur_rows = {(r.backbone, r.key): r for r in R.metric_rows(current)}
    base_rows = {(r.backbone, r.key): r for r in R.metric_rows(baseline)}
    verdicts: list[Verdict] = []
    for (backbone, key), base in base_rows.items():
        # a metric the report lacks is compared as all-None: not comparable where it gates
        cur = cur_rows.get((backbone, key)) or _absent(base)
        if base.kind == R.EXACT:
            verdicts += _exact(backbone, base, cur, same_device)
            continue
        if base.kind == R.PORTABLE and machine_ok:
            if base.ratio is not None or cur.ratio is not None:
                verdicts.append(_portable(current, baseline, backbone, base, cur, rules))
        elif base.kind == R.PORTABLE and base.ratio is not None and cur.ratio is not None:
            verdicts.append(_other_class_ratio(backbone, base, cur))
        verdicts += _machine(current, baseline, backbone, base, cur, rules, machine_ok)
    verdicts += _copied_layers(current, baseline)
    if not machine_ok:
        verdicts += invariants(current)
    return verdicts


def _variant_missing(verdicts: list[Verdict], variant: str) -> list[Verdict]:
    """The baseline's rows of a variant the report does not hold: not comparable, every one
    (a tail percentile too: the whole variant is missing, not a few samples)."""
    note = f"variant {variant} is not in the report"
    return [
        dataclasses.replace(v, verdict=NOT_COMPARABLE, note=note)
        if v.verdict in (NOT_COMPARABLE, NOT_ESTIMATED)
        else v
        for v in verdicts
    ]


def _not_checked(current: R.Report, variant: str) -> list[Verdict]:
    """A variant only the report holds: one row per backbone, shown, never a failure."""
    note = f"record a baseline holding {variant} to check it"
    out = []
    for backbone in current.view(variant).backbones:
        out.append(
            Verdict(
                backbone, "both", VARIANT_KIND, VARIANT_KIND, None, variant, None, None,
                NOT_CHECKED, note, variant=variant,
            )
        )  # fmt: skip
    return out


def setting_differences(current: R.Report, baseline: R.Report) -> dict[str, str]:
    """Speed-relevant settings that differ: {setting: 'current vs baseline'}. A setting one of
    the two reports does not record is not compared."""
    out = {}
    for key in MODEL_SETTINGS + STOPPING_SETTINGS + PREPROCESS_SETTINGS:
        if key in current.config and key in baseline.config:
            a, b = current.config[key], baseline.config[key]
            if a != b:
                out[key] = f"{a} vs {b}"
    cur_force = current.config.get("in_force") or {}
    base_force = baseline.config.get("in_force") or {}
    for key in IN_FORCE_SETTINGS:
        if key in cur_force and key in base_force and cur_force[key] != base_force[key]:
            out[key] = f"{cur_force[key]} vs {base_force[key]}"
    return out


def deployment_differences(current: R.Report, baseline: R.Report) -> dict[str, dict[str, str]]:
    """Per variant held by both: the runtime session settings that differ (threads, graph
    optimisation, providers, the runtime's version), {variant: {setting: 'current vs
    baseline'}}. A variant without a deployment (torch) has none."""
    out: dict[str, dict[str, str]] = {}
    for variant in current.variants:
        if variant not in baseline.variants:
            continue
        a, b = (_settings(report, variant) for report in (current, baseline))
        diffs = {
            k: f"{a[k]} vs {b[k]}"
            for k in DEPLOYMENT_SETTINGS
            if k in a and k in b and a[k] != b[k]
        }
        if diffs:
            out[variant] = diffs
    return out


def _settings(report: R.Report, variant: str) -> dict[str, Any]:
    for r in report.view(variant).results:
        if r.deployment is not None:
            return r.deployment.settings
    return {}


def _affected(key: str, unit: str, setting: str) -> bool:
    """Whether a metric measured under a different `setting` cannot be compared."""
    if setting in PREPROCESS_SETTINGS:
        return key.startswith("preprocess")
    if setting in STOPPING_SETTINGS:
        return unit in TIMING_UNITS
    return True  # precision, compile, threads, ...: every timing and memory figure


def _mark_incomparable(
    verdicts: list[Verdict], current: R.Report, baseline: R.Report
) -> list[Verdict]:
    """Figures measured under different speed settings are 'incomparable: precision bf16 vs
    fp32', never gated; exact metrics still are. Nothing comparable left: UsageError (exit 2)."""
    shared = setting_differences(current, baseline)
    per_variant = deployment_differences(current, baseline)
    if not shared and not per_variant:
        return verdicts
    units = {
        row.key: row.unit
        for report in (current, baseline)
        for variant in report.variants
        for row in R.metric_rows(report.view(variant))
    }
    out = []
    for v in verdicts:
        diffs = shared | per_variant.get(v.variant or "", {})
        why = [
            f"{k} {d}"
            for k, d in diffs.items()
            if v.kind != R.EXACT
            and v.verdict != NOT_CHECKED
            # a stopping rule changes how many samples a figure has, not what it estimates:
            # ratios and directions stay comparable (and gate); absolute timings do not
            and not (k in STOPPING_SETTINGS and v.kind != R.MACHINE)
            and _affected(v.metric, units.get(v.metric, ""), k)
        ]
        out.append(dataclasses.replace(v, verdict=INCOMPARABLE, note="; ".join(why)) if why else v)
    measured = [v for v in out if v.kind not in (R.EXACT, VARIANT_KIND)]
    if measured and all(v.verdict == INCOMPARABLE for v in measured):
        every = shared | {k: d for diffs in per_variant.values() for k, d in diffs.items()}
        listed = ", ".join(f"{k} {d}" for k, d in every.items())
        raise UsageError(
            f"nothing comparable: the report and the baseline were measured with different "
            f"settings ({listed}, report vs baseline); record a baseline with these settings"
        )
    return out


def _busy_note(report: R.Report, which: str) -> str | None:
    c = report.contention
    if c is None or not c.busy:
        return None
    return f"{which} ran on a busy machine (others used {c.other_cpu_fraction:.0%} of the cores)"


def _mark_contended(
    verdicts: list[Verdict], current: R.Report, baseline: R.Report
) -> list[Verdict]:
    """Timings of a run that shared its machine are distorted (not just noisy): shown, never
    gated. Exact metrics are unaffected."""
    notes = [n for n in (_busy_note(current, "report"), _busy_note(baseline, "baseline")) if n]
    if not notes:
        return verdicts
    timing_keys = {
        row.key
        for report in (current, baseline)
        for variant in report.variants
        for row in R.metric_rows(report.view(variant))
        if row.unit in TIMING_UNITS
    }
    return [
        dataclasses.replace(v, verdict=UNRELIABLE, note="; ".join(notes))
        if v.metric in timing_keys and v.verdict not in (SKIPPED, NOT_COMPARABLE)
        else v
        for v in verdicts
    ]


def _other_class_ratio(backbone: str, base: R.MetricRow, cur: R.MetricRow) -> Verdict:
    assert base.ratio is not None and cur.ratio is not None
    return Verdict(
        backbone,
        "ratio",
        base.key,
        R.PORTABLE,
        base.ratio,
        cur.ratio,
        _delta(base.ratio, cur.ratio),
        None,
        OTHER_CLASS,
        unit="x",
    )


def _invariant_key(backbone: str, key: str) -> bool:
    if key in INVARIANT_KEYS:
        return True
    if not backbone.startswith(VGG_PREFIX):
        return False
    throughput = key.startswith("throughput_b") and key.endswith("_images_per_s")
    return key in VGG_INVARIANT_KEYS or throughput


def invariants(report: R.Report) -> list[Verdict]:
    """Directions that hold on any machine: direct48 beats upscale224 (ratio > 1).

    Every backbone on FLOPs and input bytes per image; VGG backbones also on batch-1 latency
    and model-only throughput, which drop conv block 5 and the 4096-wide classifier. ResNet18's
    timing advantage is small enough to flip on some CPUs, so it is not an invariant.
    """
    out = []
    rows = R.metric_rows(report)
    for row in rows:
        if not _invariant_key(row.backbone, row.key):
            continue
        outcome, note = PASS, ""
        if row.ratio is None:
            outcome, note = NOT_COMPARABLE, "not measured for both pipelines"
        elif not _number(row.ratio):
            outcome, note = NOT_COMPARABLE, f"the ratio {row.ratio!r} is not a finite number"
        elif row.ratio <= 1:
            outcome, note = FAIL, "direct48 no longer beats upscale224"
        out.append(
            Verdict(
                row.backbone, "ratio", row.key, INVARIANT, "> 1", row.ratio, None, None,
                outcome, note, unit="x",
            )
        )  # fmt: skip
    present = {(row.backbone, row.key) for row in rows}
    for backbone in report.backbones:  # an invariant the report has no row for cannot hold
        required = INVARIANT_KEYS + (VGG_INVARIANT_KEYS if backbone.startswith(VGG_PREFIX) else ())
        for key in required:
            if (backbone, key) not in present:
                out.append(
                    Verdict(
                        backbone, "ratio", key, INVARIANT, "> 1", None, None, None,
                        NOT_COMPARABLE, "not in the report", unit="x",
                    )
                )  # fmt: skip
    return out


def _threshold(rules: dict[str, float], key: str, kind: str, default: float) -> float:
    return rules.get(key, rules.get(kind, default))


def _exact(
    backbone: str, base: R.MetricRow, cur: R.MetricRow, same_device: bool = True
) -> list[Verdict]:
    """Any change fails; a value one side lacks (or that is no number) is not comparable,
    except a figure only one device type measures (host->device bytes: CUDA only)."""
    out = []
    for pipeline in (R.UPSCALE, R.DIRECT):
        b, c = getattr(base, pipeline), getattr(cur, pipeline)
        if b is None and c is None:
            continue
        why = _why_not(b, c)
        if why is not None:
            one_sided = b is None or c is None
            out.append(
                Verdict(
                    backbone, pipeline, base.key, R.EXACT, b, c, None, 0.0,
                    SKIPPED if one_sided and not same_device else NOT_COMPARABLE,
                    why if same_device or not one_sided else "measured on one device type only",
                    unit=base.unit,
                )
            )  # fmt: skip
            continue
        ok = b == c
        out.append(
            Verdict(
                backbone,
                pipeline,
                base.key,
                R.EXACT,
                b,
                c,
                _delta(b, c) if b is not None and c is not None else None,
                0.0,
                PASS if ok else FAIL,
                "" if ok else "changed: a deliberate change needs a new baseline",
                unit=base.unit,
            )
        )
    return out


def _ratio_ci(report: R.Report, backbone: str, key: str) -> tuple[float, float] | None:
    """The 95% interval of a timing ratio: from the per-round ratios when it was measured in
    interleaved rounds, else a bootstrap over the two pipelines' samples."""
    paired = report.paired_ratio(backbone, key)
    if paired is not None:
        if paired.ci_low is None or paired.ci_high is None:
            return None
        return paired.ci_low, paired.ci_high
    up = _samples(report.result(backbone, R.UPSCALE), key)
    dn = _samples(report.result(backbone, R.DIRECT), key)
    if not up or not dn or len(up) < 2 or len(dn) < 2:
        return None
    return ratio_interval(up, dn)


def _portable(
    current: R.Report,
    baseline: R.Report,
    backbone: str,
    base: R.MetricRow,
    cur: R.MetricRow,
    rules: dict[str, float],
) -> Verdict:
    """A ratio moved beyond the tolerance fails.

    Against a baseline of at least 3 runs (calibrate, `baseline save a b c`): the geometric mean
    of the report's runs (one, or several with `--repeat`) against the baseline runs', at the
    threshold their run-to-run spread gives (calibrate.gate_threshold; a `portable` kind rule is
    a floor under it, a rule for the key replaces it). Otherwise a comparison with the median
    at the rule's tolerance, where overlapping within-run 95% intervals make a move "noisy"."""
    from emobench.gate import calibrate as C

    why = _why_not(base.ratio, cur.ratio)
    if why is None and (base.ratio <= 0 or cur.ratio <= 0):  # type: ignore[operator]
        why = "a ratio that is not positive"
    if why is not None:
        return Verdict(
            backbone, "ratio", base.key, R.PORTABLE, base.ratio, cur.ratio, None, None,
            NOT_COMPARABLE, why, unit="x",
        )  # fmt: skip
    assert base.ratio is not None and cur.ratio is not None
    name = f"{backbone}/{base.key}"
    runs = C.usable(baseline.run_ratios.get(name) or [])
    cur_runs = C.usable(current.run_ratios.get(name) or [cur.ratio])
    run_level = len(runs) >= C.MIN_RUNS and bool(cur_runs) and base.key not in rules
    if run_level:
        alpha = baseline.gate_alpha
        if alpha is None or not 0 < alpha < 1:  # older or hand-edited baselines
            alpha = C.DEFAULT_ALPHA
        threshold, _ = C.gate_threshold(runs, C.family_size(baseline.run_ratios), alpha)
        tol = max(threshold, rules.get(R.PORTABLE, 0.0))
        base_ratio, cur_ratio = C.geometric_mean(runs), C.geometric_mean(cur_runs)
    else:
        tol = _threshold(rules, base.key, R.PORTABLE, DEFAULT_PORTABLE_TOLERANCE)
        base_ratio = statistics.median(runs) if runs else base.ratio
        cur_ratio = statistics.median(cur_runs) if cur_runs else cur.ratio
    delta = _delta(base_ratio, cur_ratio)

    def verdict(outcome: str, note: str = "") -> Verdict:
        return Verdict(
            backbone,
            "ratio",
            base.key,
            R.PORTABLE,
            base_ratio,
            cur_ratio,
            delta,
            tol,
            outcome,
            note,
            unit="x",
        )

    if delta is None or abs(delta) <= tol:
        return verdict(PASS)
    direction = "advantage shrank" if cur_ratio < base_ratio else "advantage grew"
    if run_level:
        # the threshold already is the run-to-run noise: within-run intervals would be too narrow
        of = f"{len(cur_runs)} run{'s' if len(cur_runs) > 1 else ''}"
        return verdict(
            FAIL, f"direct48's {direction}; {of} beyond the spread of {len(runs)} baseline runs"
        )
    base_ci = _ratio_ci(baseline, backbone, base.key)
    cur_ci = _ratio_ci(current, backbone, base.key)
    if base_ci is None or cur_ci is None:
        return verdict(FAIL, f"direct48's {direction}")
    overlap = base_ci[0] <= cur_ci[1] and cur_ci[0] <= base_ci[1]
    note = (
        f"direct48's {direction}; 95% intervals {base_ci[0]:.3g}-{base_ci[1]:.3g} "
        f"vs {cur_ci[0]:.3g}-{cur_ci[1]:.3g}"
    )
    return verdict(NOISY if overlap else FAIL, note)


def _machine(
    current: R.Report,
    baseline: R.Report,
    backbone: str,
    base: R.MetricRow,
    cur: R.MetricRow,
    rules: dict[str, float],
    machine_ok: bool,
) -> list[Verdict]:
    out = []
    tol = _threshold(rules, base.key, R.MACHINE, DEFAULT_MACHINE_TOLERANCE)
    for pipeline in (R.UPSCALE, R.DIRECT):
        b, c = getattr(base, pipeline), getattr(cur, pipeline)
        if (b is None and c is None) or base.key in UNGATED_KEYS:
            continue
        if not machine_ok and (b is None or c is None):
            continue  # another class: nothing here gates, nothing to show beside
        why = _why_not(b, c) if machine_ok else None
        if why is not None:
            one_sided = b is None or c is None
            tail = one_sided and base.key in SAMPLE_DEPENDENT_KEYS
            out.append(
                Verdict(
                    backbone, pipeline, base.key, R.MACHINE, b, c, None, tol,
                    NOT_ESTIMATED if tail else NOT_COMPARABLE, why, unit=base.unit,
                )
            )  # fmt: skip
            continue
        if not machine_ok:
            out.append(
                Verdict(
                    backbone,
                    pipeline,
                    base.key,
                    R.MACHINE,
                    b,
                    c,
                    _delta(b, c),
                    tol,
                    SKIPPED,
                    unit=base.unit,
                )
            )
            continue
        delta = _delta(b, c)
        worse = delta is not None and (-delta if base.higher_is_better else delta) > tol
        verdict, note = PASS, ""
        if delta is None and (c < b if base.higher_is_better else c > b):
            verdict, note = NOT_COMPARABLE, "the baseline is 0: no relative change to test"
        elif worse:
            cur_s = _samples(current.result(backbone, pipeline), base.key)
            base_s = _samples(baseline.result(backbone, pipeline), base.key)
            if (
                cur_s is not None
                and base_s is not None
                and not all(map(_number, [*cur_s, *base_s]))
            ):
                verdict, note = NOT_COMPARABLE, "a timing sample is not a finite number"
            elif cur_s is not None and base_s is not None:
                p = mann_whitney_p_greater(cur_s, base_s)
                verdict = FAIL if p < SIGNIFICANCE else NOISY
                note = f"Mann-Whitney p={p:.3g} (n={len(cur_s)} vs {len(base_s)})"
            else:
                verdict = FAIL
        out.append(
            Verdict(
                backbone,
                pipeline,
                base.key,
                R.MACHINE,
                b,
                c,
                delta,
                tol,
                verdict,
                note,
                unit=base.unit,
            )
        )
    return out


def _copied_layers(current: R.Report, baseline: R.Report) -> list[Verdict]:
    out = []
    for base in baseline.results:
        cur = current.result(base.backbone, base.pipeline)
        if cur is None:
            continue
        b, c = set(base.transfer.copied), set(cur.transfer.copied)
        note = "" if b == c else f"{len(c - b)} added, {len(b - c)} removed"
        out.append(
            Verdict(
                base.backbone,
                base.pipeline,
                "copied_layers",
                R.EXACT,
                len(b),
                len(c),
                None,
                0.0,
                PASS if b == c else FAIL,
                note,
                unit="tensors",
            )
        )
    return out
