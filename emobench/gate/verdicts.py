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

Baselines live one file per machine class: results/baselines/NAME/<class id>.json.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from dataclasses import dataclass

from emobench import results as R
from emobench.errors import UsageError
from emobench.gate.store import same_class, suite
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
# Settings that change speed, and which metrics each one affects (see _affected).
MODEL_SETTINGS = ("precision", "compile", "channels_last", "data", "mode")
IN_FORCE_SETTINGS = ("num_threads", "cudnn_benchmark", "tf32_matmul", "tf32_cudnn")
STOPPING_SETTINGS = ("warmup_iters", "min_iters", "min_time_s", "max_time_s", "target_ci")
PREPROCESS_SETTINGS = ("preprocess_images",)
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

    @property
    def failed(self) -> bool:
        return self.verdict == FAIL


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


def check(
    current: R.Report,
    baseline: R.Report,
    rules: dict[str, float] | None = None,
) -> list[Verdict]:
    """Every check of `current` against `baseline`; raises UsageError when the suites differ.

    Across machine classes only exact metrics gate, ratios are shown as `different machine
    class`, machine-bound figures are skipped and the invariants of `current` are added.
    """
    rules = rules or {}
    if suite(current) != suite(baseline):
        missing = sorted(suite(baseline) - suite(current))
        extra = sorted(suite(current) - suite(baseline))
        raise UsageError(
            "report and baseline cover different suites "
            f"(missing from report: {missing or 'none'}; not in baseline: {extra or 'none'})"
        )
    machine_ok = same_class(current, baseline)
    cur_rows = {(r.backbone, r.key): r for r in R.metric_rows(current)}
    base_rows = {(r.backbone, r.key): r for r in R.metric_rows(baseline)}
    verdicts: list[Verdict] = []
    for (backbone, key), base in base_rows.items():
        cur = cur_rows.get((backbone, key))
        if cur is None:
            continue
        if base.kind == R.EXACT:
            verdicts += _exact(backbone, base, cur)
            continue
        if base.kind == R.PORTABLE and base.ratio is not None and cur.ratio is not None:
            if machine_ok:
                verdicts.append(_portable(current, baseline, backbone, base, cur, rules))
            else:
                verdicts.append(_other_class_ratio(backbone, base, cur))
        verdicts += _machine(current, baseline, backbone, base, cur, rules, machine_ok)
    verdicts += _copied_layers(current, baseline)
    if not machine_ok:
        verdicts += invariants(current)
    verdicts = _mark_incomparable(verdicts, current, baseline)
    return _mark_contended(verdicts, current, baseline)


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
    diffs = setting_differences(current, baseline)
    if not diffs:
        return verdicts
    units = {row.key: row.unit for report in (current, baseline) for row in R.metric_rows(report)}
    out = []
    for v in verdicts:
        why = [
            f"{k} {d}"
            for k, d in diffs.items()
            if v.kind != R.EXACT and _affected(v.metric, units.get(v.metric, ""), k)
        ]
        out.append(dataclasses.replace(v, verdict=INCOMPARABLE, note="; ".join(why)) if why else v)
    measured = [v for v in out if v.kind != R.EXACT]
    if measured and all(v.verdict == INCOMPARABLE for v in measured):
        listed = ", ".join(f"{k} {d}" for k, d in diffs.items())
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
        for row in R.metric_rows(report)
        if row.unit in TIMING_UNITS
    }
    return [
        dataclasses.replace(v, verdict=UNRELIABLE, note="; ".join(notes))
        if v.metric in timing_keys and v.verdict != SKIPPED
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
    for row in R.metric_rows(report):
        if not _invariant_key(row.backbone, row.key):
            continue
        holds = row.ratio is not None and row.ratio > 1
        note = ""
        if row.ratio is None:
            note = "not measured for both pipelines"
        elif not holds:
            note = "direct48 no longer beats upscale224"
        out.append(
            Verdict(
                row.backbone,
                "ratio",
                row.key,
                INVARIANT,
                "> 1",
                row.ratio,
                None,
                None,
                PASS if holds else FAIL,
                note,
                unit="x",
            )
        )
    return out


def _threshold(rules: dict[str, float], key: str, kind: str, default: float) -> float:
    return rules.get(key, rules.get(kind, default))


def _exact(backbone: str, base: R.MetricRow, cur: R.MetricRow) -> list[Verdict]:
    out = []
    for pipeline in (R.UPSCALE, R.DIRECT):
        b, c = getattr(base, pipeline), getattr(cur, pipeline)
        if b is None and c is None:
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
        if b is None or c is None:
            continue
        if base.key == "cold_start_ms":
            continue  # a single sample: shown in reports, too noisy to gate on
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
        if worse:
            cur_s = _samples(current.result(backbone, pipeline), base.key)
            base_s = _samples(baseline.result(backbone, pipeline), base.key)
            if cur_s is not None and base_s is not None:
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
