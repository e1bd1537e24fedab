"""Reading results: many reports merged into one table, the upscale224/direct48 ratios of
several machine classes side by side, flat CSV rows, and the model catalogue.

A report may hold several runtime variants (Report.variants); every row carries its variant,
and the tables and CSV name it only when some row's variant is not plain torch."""

from __future__ import annotations

import csv
import io
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emobench import machine
from emobench import results as R
from emobench.errors import ReportError
from emobench.names import TIMING_KINDS, TORCH_RUNTIME

ENV_COLUMNS = (
    "device",
    "device_name",
    "gpu_name",
    "cpu_model",
    "num_threads",
    "torch",
    "torchvision",
    "cuda_runtime",
    "cudnn",
    "driver",
    "python",
    "emobench",
    "git_commit",
)


def check_reports(paths: list[Path]) -> str:
    """Check every report's header (cheap: nothing rebuilt, no torch) and that all are timing
    reports (compare/run) or all maxbatch; return that family."""
    if not paths:
        raise ReportError("no report files given")
    kinds = [R.load_header(p)[0] for p in paths]
    first_family = _family(kinds[0])
    for path, kind in zip(paths[1:], kinds[1:], strict=True):
        if _family(kind) != first_family:
            raise ReportError(
                f"{path}: a {kind} report cannot share a table with {first_family} reports "
                f"({paths[0]}); pass them separately"
            )
    return first_family


def load_reports(paths: list[Path]) -> list[tuple[Path, R.Report]]:
    """Load every report; all must be timing reports (compare/run) or all maxbatch."""
    check_reports(paths)
    return [(p, R.load(p)) for p in paths]


def _family(kind: str) -> str:
    return "timing" if kind in TIMING_KINDS else kind


def machine_name(rep: R.Report) -> str:
    env = rep.environment
    name = env.get("gpu_name") or env.get("device_name") or env.get("cpu_model") or "?"
    return f"{name} ({env.get('device')}, {env.get('num_threads')} threads)"


def settings_name(rep: R.Report) -> str:
    """The speed options that tell two reports of one machine apart."""
    c = rep.config
    if rep.kind == "maxbatch":
        return f"{c.get('mode')} mode"
    parts = [str(c.get("precision", "fp32"))]
    if c.get("channels_last"):
        parts.append("channels-last")
    if c.get("compile", "none") != "none":
        parts.append(f"compile {c['compile']}")
    return ", ".join(parts)


@dataclass(frozen=True)
class MergedRow:
    source: str
    created_utc: str
    machine: str
    backbone: str
    pipeline: str
    values: dict[str, float | None]
    variant: str = TORCH_RUNTIME  # the runtime variant's label (see PipelineResult.variant)


def shows_variants(rows: list[Any]) -> bool:
    """Whether a table of these rows (anything with a `variant`) needs a variant column: some
    row's variant is not plain torch."""
    return any(r.variant != TORCH_RUNTIME for r in rows)


TIMING_COLUMNS: tuple[tuple[str, str], ...] = (
    ("latency_b1_median_ms", "ms"),
    ("best_throughput_images_per_s", "images/s"),
    ("preprocess_per_image_pil_us", "us/image"),
    ("params_total", "count"),
    ("flops_per_image", "FLOP"),
    ("tensor_peak_bytes", "bytes"),
)
MAXBATCH_COLUMNS: tuple[tuple[str, str], ...] = (
    ("max_batch", "count"),
    ("safe_batch", "count"),
    ("budget_bytes", "bytes"),
    ("peak_bytes_at_max", "bytes"),
    ("bytes_per_extra_image", "bytes"),
)


def merged_rows(loaded: list[tuple[Path, R.Report]]) -> list[MergedRow]:
    rows: list[MergedRow] = []
    for path, rep in loaded:
        if rep.kind == "maxbatch":
            for m in rep.maxbatch:
                rows.append(
                    MergedRow(
                        path.name,
                        rep.created_utc,
                        f"{machine_name(rep)}; {settings_name(rep)}",
                        m.backbone,
                        f"{m.pipeline} ({m.mode})",
                        {k: getattr(m, k) for k, _ in MAXBATCH_COLUMNS},
                    )
                )
            continue
        defs = {d.key: d for d in R.metric_defs(R.batch_sizes_of(rep))}
        for r in rep.results:
            values: dict[str, float | None] = {}
            for key, _unit in TIMING_COLUMNS:
                if key == "best_throughput_images_per_s":
                    values[key] = max((b.images_per_s for b in r.throughput), default=None)
                else:
                    values[key] = defs[key].get(r)
            rows.append(
                MergedRow(
                    path.name,
                    rep.created_utc,
                    f"{machine_name(rep)}; {settings_name(rep)}",
                    r.backbone,
                    r.pipeline,
                    values,
                    r.variant,
                )
            )
    return rows


# the ratios that move between machine classes: timings and memory (exact ones never do)
CLASS_RATIO_UNITS = ("us/image", "ms", "s", "images/s", "bytes")


@dataclass(frozen=True)
class MachineClass:
    id: str
    description: str
    sources: list[str]  # report file names of this class


@dataclass(frozen=True)
class ClassRatioRow:
    backbone: str
    key: str
    label: str
    ratios: dict[str, float | None]  # class id -> upscale224/direct48 (> 1: direct48 wins)
    variant: str = TORCH_RUNTIME  # the runtime variant both pipelines ran in

    @property
    def spread(self) -> float | None:
        """Largest over smallest ratio across classes: how far 'portable' really travels."""
        found = [r for r in self.ratios.values() if r is not None and r > 0]
        return max(found) / min(found) if len(found) > 1 else None


@dataclass(frozen=True)
class ClassRatios:
    classes: list[MachineClass]
    rows: list[ClassRatioRow]


def class_ratios(loaded: list[tuple[Path, R.Report]]) -> ClassRatios | None:
    """The timing and memory ratios per machine class, side by side; None under two classes.

    Several reports of one class give the median of their ratios.
    """
    by_class: dict[str, list[tuple[Path, R.Report]]] = {}
    for path, rep in loaded:
        if rep.kind in TIMING_KINDS:
            by_class.setdefault(machine.class_id(rep.environment), []).append((path, rep))
    if len(by_class) < 2:
        return None
    classes = [
        MachineClass(cid, machine.describe(reps[0][1].environment), [p.name for p, _ in reps])
        for cid, reps in by_class.items()
    ]
    found: dict[tuple[str, str, str], dict[str, list[float]]] = {}
    labels: dict[tuple[str, str, str], str] = {}
    for cid, reps in by_class.items():
        for _, rep in reps:
            for row, variant in _variant_rows(rep):
                if row.kind == R.EXACT or row.unit not in CLASS_RATIO_UNITS or row.ratio is None:
                    continue
                where = (row.backbone, row.key, variant)
                labels[where] = row.label
                found.setdefault(where, {}).setdefault(cid, []).append(row.ratio)
    rows = [
        ClassRatioRow(
            backbone,
            key,
            labels[(backbone, key, variant)],
            {c.id: statistics.median(per[c.id]) if c.id in per else None for c in classes},
            variant,
        )
        for (backbone, key, variant), per in found.items()
    ]
    return ClassRatios(classes, rows)


def _variant_rows(rep: R.Report) -> list[tuple[R.MetricRow, str]]:
    """The report's metric rows, each variant's (Report.view) with its label."""
    return [(row, v) for v in rep.variants for row in R.metric_rows(rep.view(v))]


def flat_rows(loaded: list[tuple[Path, R.Report]]) -> list[dict[str, Any]]:
    """One row per measurement, with the environment as columns: ready for pandas. A
    `variant` column after `pipeline` where some report holds a variant other than torch."""
    named = any(rep.variants != [TORCH_RUNTIME] for _, rep in loaded if rep.kind != "maxbatch")
    out: list[dict[str, Any]] = []
    for path, rep in loaded:
        env = {f"env_{k}": rep.environment.get(k) for k in ENV_COLUMNS}
        common = {"file": path.name, "kind": rep.kind, "created_utc": rep.created_utc}
        if rep.kind == "maxbatch":
            for m in rep.maxbatch:
                for key, unit in MAXBATCH_COLUMNS:
                    out.append(
                        common
                        | {
                            "backbone": m.backbone,
                            "pipeline": m.pipeline,
                            **({"variant": TORCH_RUNTIME} if named else {}),
                            "mode": m.mode,
                            "metric": key,
                            "unit": unit,
                            "value": getattr(m, key),
                        }
                        | env
                    )
            continue
        for row, variant in _variant_rows(rep):
            for pipeline in (R.UPSCALE, R.DIRECT, "ratio"):
                value = row.ratio if pipeline == "ratio" else getattr(row, pipeline)
                if value is None:
                    continue
                out.append(
                    common
                    | {
                        "backbone": row.backbone,
                        "pipeline": pipeline,
                        **({"variant": variant} if named else {}),
                        "mode": "infer",
                        "metric": row.key,
                        "unit": "x" if pipeline == "ratio" else row.unit,
                        "value": value,
                    }
                    | env
                )
    return out


def to_csv(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


# -- the speed/accuracy trade-off (finetune reports next to compare/run/maxbatch ones) ---------


def has_finetune(paths: list[Path]) -> bool:
    """Whether any of these reports is a finetune report (then `report` shows the trade-off)."""
    return any(R.load_header(p)[0] == "finetune" for p in paths)


def load_any_reports(paths: list[Path]) -> list[tuple[Path, R.Report]]:
    """Load reports of every kind, for the trade-off table."""
    if not paths:
        raise ReportError("no report files given")
    return [(p, R.load(p)) for p in paths]


def tradeoff_csv_rows(tradeoff: Any) -> list[dict[str, Any]]:
    """One row per backbone and pipeline; a column per trade-off value and its source."""
    from emobench.readout.tradeoff import TRADEOFF_COLUMNS

    out = []
    named = shows_variants(tradeoff.rows)
    for row in tradeoff.rows:
        flat: dict[str, Any] = {"backbone": row.backbone, "pipeline": row.pipeline}
        if named:
            flat["variant"] = row.variant
        for key, _, _ in TRADEOFF_COLUMNS:
            flat[key] = row.values.get(key)
            flat[f"{key}_source"] = row.sources.get(key)
        flat["accuracy_std"] = row.accuracy_std
        flat["seeds"] = row.seeds
        out.append(flat)
    return out
