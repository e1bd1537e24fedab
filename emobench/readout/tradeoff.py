"""Speed against accuracy: finetune reports joined with compare/run and maxbatch reports into one
row per backbone, pipeline and runtime variant, and the Pareto front of accuracy against a cost.

Accuracy, training time and the max batch were measured in torch: they fill the torch rows. A
runtime variant's row (onnxruntime, its int8 file) holds what its compare report measured."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from emobench import results as R
from emobench.names import TORCH_RUNTIME
from emobench.results.finetune import mean_std, verdict_sentence

TRADEOFF_COLUMNS: tuple[tuple[str, str, str], ...] = (
    # key, header, unit (render.fmt_value units)
    ("accuracy", "test accuracy", "fraction"),
    ("macro_f1", "macro-F1", "fraction"),
    ("latency_b1_ms", "latency b1", "ms"),
    ("throughput_images_per_s", "throughput", "images/s"),
    ("peak_bytes", "peak memory", "bytes"),
    ("max_batch", "max batch", "count"),
    ("params", "parameters", "count"),
    ("train_s_per_epoch", "time/epoch", "s"),
)


@dataclass
class TradeoffRow:
    backbone: str
    pipeline: str
    values: dict[str, float | None] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # value key -> report file and how
    accuracy_std: float | None = None
    seeds: int = 0
    variant: str = TORCH_RUNTIME  # the runtime variant's label (see PipelineResult.variant)


@dataclass(frozen=True)
class Tradeoff:
    rows: list[TradeoffRow]
    verdicts: dict[str, str]  # backbone -> "direct48 is X points less accurate (...)"
    notes: list[str]


Rows = dict[tuple[str, str, str], TradeoffRow]
# below the table when a runtime variant is among the rows
VARIANT_NOTE = (
    "{variants}: what their compare reports measured; accuracy, time per epoch and max batch "
    "were measured in torch and fill the torch rows only"
)


def _row(rows: Rows, backbone: str, pipeline: str, variant: str = TORCH_RUNTIME) -> TradeoffRow:
    return rows.setdefault(
        (backbone, pipeline, variant), TradeoffRow(backbone, pipeline, variant=variant)
    )


def _set(row: TradeoffRow, key: str, value: float | None, source: str) -> None:
    if value is not None and row.values.get(key) is None:
        row.values[key] = value
        row.sources[key] = source


def build_tradeoff(loaded: list[tuple[Path, R.Report]]) -> Tradeoff:
    """Accuracy from finetune reports; latency, throughput, memory and parameters from compare/run
    reports when given (else the fine-tune's own measurements); max batch from maxbatch reports."""
    rows: Rows = {}
    verdicts: dict[str, str] = {}
    notes: list[str] = []
    # timing reports first, so their measurements win over a fine-tune's own
    order = sorted(
        loaded, key=lambda pr: {"compare": 0, "run": 0, "maxbatch": 1}.get(pr[1].kind, 2)
    )
    for path, rep in order:
        name = path.name
        if rep.kind in ("compare", "run"):
            metric = {
                (v, m.backbone, m.key): m for v in rep.variants for m in R.metric_rows(rep.view(v))
            }
            for res in rep.results:
                row = _row(rows, res.backbone, res.pipeline, res.variant)

                def get(
                    key: str,
                    res: R.PipelineResult = res,
                    metric: dict[tuple[str, str, str], R.MetricRow] = metric,
                ) -> float | None:
                    m = metric.get((res.variant, res.backbone, key))
                    return None if m is None else getattr(m, res.pipeline)

                _set(row, "latency_b1_ms", get("latency_b1_median_ms"), f"{name} (compare, b1)")
                best = max(res.throughput, key=lambda b: b.images_per_s, default=None)
                if best is not None:
                    _set(
                        row,
                        "throughput_images_per_s",
                        best.images_per_s,
                        f"{name} (compare, b{best.batch_size})",
                    )
                _set(row, "peak_bytes", get("tensor_peak_bytes"), f"{name} (inference peak)")
                _set(row, "params", get("params_total"), name)
        elif rep.kind == "maxbatch":
            for mb in rep.maxbatch:
                if mb.mode == "infer" and not mb.error:
                    row = _row(rows, mb.backbone, mb.pipeline)
                    _set(row, "max_batch", float(mb.max_batch), f"{name} (infer)")
        elif rep.kind == "finetune" and rep.finetune is not None:
            ft = rep.finetune
            for pipeline in dict.fromkeys(r.pipeline for r in ft.runs):
                runs = ft.runs_for(pipeline)
                row = _row(rows, runs[0].backbone, pipeline)
                acc, acc_std = mean_std([r.test.accuracy for r in runs])
                f1, _ = mean_std([r.test.macro_f1 for r in runs])
                _set(row, "accuracy", acc, f"{name} ({runs[0].test.split})")
                _set(row, "macro_f1", f1, name)
                row.accuracy_std, row.seeds = acc_std, len(runs)
                per_epoch, _ = mean_std([r.train_s_per_epoch for r in runs])
                _set(row, "train_s_per_epoch", per_epoch, name)
                lat = [r.test.latency_b1_ms for r in runs if r.test.latency_b1_ms is not None]
                _set(row, "latency_b1_ms", mean_std(lat)[0] if lat else None, f"{name} (fine-tune)")
                peaks = [r.train_peak.tensor_peak_bytes for r in runs if r.train_peak]
                peak = next((p for p in peaks if p is not None), None)
                _set(row, "peak_bytes", float(peak) if peak else None, f"{name} (train step)")
                _set(row, "params", float(runs[0].params_total), name)
            if ft.paired:
                verdicts[ft.runs[0].backbone] = verdict_sentence(ft.paired)
            devices = rep.config.get("resolved_device")
            notes.append(f"{name}: fine-tuned on {devices}, data {ft.data.get('path')}")
    # stable: a backbone's variants stay in the order their reports measured them
    ordered = sorted(rows.values(), key=lambda r: (r.backbone, r.pipeline))
    others = list(dict.fromkeys(r.variant for r in ordered if r.variant != TORCH_RUNTIME))
    if others:
        notes.append(VARIANT_NOTE.format(variants=", ".join(others)))
    return Tradeoff(ordered, verdicts, notes)


def pareto_front(points: list[tuple[float, float]]) -> list[bool]:
    """For (cost, accuracy) points: True where no other point is at most as costly and at least
    as accurate, and strictly better in one of the two."""
    out = []
    for i, (cost, acc) in enumerate(points):
        dominated = any(
            c <= cost and a >= acc and (c < cost or a > acc)
            for j, (c, a) in enumerate(points)
            if j != i
        )
        out.append(not dominated)
    return out


def training_speedup(rep: R.Report) -> dict[str, float]:
    """backbone -> upscale224 / direct48 median training seconds per epoch (mean over seeds)."""
    out: dict[str, float] = {}
    if rep.finetune is None:
        return out
    for backbone in dict.fromkeys(r.backbone for r in rep.finetune.runs):
        times = {}
        for pipeline in (R.UPSCALE, R.DIRECT):
            runs = [r for r in rep.finetune.runs_for(pipeline) if r.backbone == backbone]
            if runs:
                times[pipeline] = mean_std([r.train_s_per_epoch for r in runs])[0]
        if len(times) == 2 and times[R.DIRECT] > 0:
            out[backbone] = times[R.UPSCALE] / times[R.DIRECT]
    return out
