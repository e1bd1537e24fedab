"""What a fine-tune report holds: plain dataclasses (no torch), serialised inside a Report of
kind "finetune" with the same JSON conventions as every other report."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from emobench.results.measurements import PeakMemory

SIGNIFICANCE = 0.05


@dataclass(frozen=True)
class EpochMetrics:
    epoch: int  # 1-based
    train_loss: float | None  # mean over the epoch's batches; None when it was not finite
    val_accuracy: float
    val_macro_f1: float
    lr: float  # at the start of the epoch
    data_s: float  # waiting for the DataLoader: reading, 48x48 augmentation, collation
    preprocess_s: float  # to the device, upscaling (upscale224), normalisation
    step_s: float  # forward, loss, backward, optimizer update
    train_s: float  # the whole training pass (data + preprocess + step + bookkeeping)
    eval_s: float  # the validation pass
    images_per_s: float  # training images / train_s


@dataclass(frozen=True)
class TestScore:
    split: str  # which split scored it, e.g. "Usage=PrivateTest"
    checkpoint_epoch: int  # the best-validation epoch whose weights were scored
    images: int
    accuracy: float
    macro_f1: float
    precision: list[float]  # per class
    recall: list[float]
    confusion: list[list[int]]  # rows: true class, columns: predicted
    latency_b1_ms: float | None  # median batch-1 inference, preprocessing included
    predictions: list[int]


@dataclass(frozen=True)
class FinetuneRun:
    """One pipeline fine-tuned with one seed."""

    backbone: str
    pipeline: str
    seed: int
    input_size: int
    params_total: int
    params_trainable: int
    transfer: dict[str, Any]  # source, copied, derived, fresh (state-dict keys)
    epochs: list[EpochMetrics]
    best_epoch: int
    best_val_accuracy: float
    target_accuracy: float | None
    time_to_target_s: float | None  # training time until validation reached the target
    epoch_to_target: int | None
    train_peak: PeakMemory | None  # one training step at the training batch size
    test: TestScore
    checkpoint_best: str
    checkpoint_last: str
    resumed_from_epoch: int = 0  # epochs restored from a checkpoint (--resume)

    @property
    def train_s_per_epoch(self) -> float:
        return statistics.median(e.train_s for e in self.epochs)


@dataclass(frozen=True)
class PairedComparison:
    """direct48 against upscale224 on the same test images, for one seed."""

    seed: int
    images: int
    accuracy_diff_points: float  # direct48 - upscale224, percentage points
    ci_low_points: float  # bootstrap 95% interval of the difference
    ci_high_points: float
    only_upscale_right: int  # McNemar's discordant pairs
    only_direct_right: int
    mcnemar_p: float  # exact (binomial) two-sided

    @property
    def significant(self) -> bool:
        return self.mcnemar_p < SIGNIFICANCE


@dataclass(frozen=True)
class SeedSpread:
    pipeline: str
    seeds: int
    accuracy_mean: float
    accuracy_std: float  # sample standard deviation; 0 for one seed
    macro_f1_mean: float
    macro_f1_std: float
    train_s_per_epoch_mean: float


@dataclass(frozen=True)
class FinetuneSummary:
    data: dict[str, Any]  # path, format, class names, split method/seed/sources, counts
    test_labels: list[int]
    runs: list[FinetuneRun]
    paired: list[PairedComparison] = field(default_factory=list)
    spread: list[SeedSpread] = field(default_factory=list)

    def runs_for(self, pipeline: str) -> list[FinetuneRun]:
        return [r for r in self.runs if r.pipeline == pipeline]


def mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def spread_of(runs: list[FinetuneRun]) -> list[SeedSpread]:
    out = []
    for pipeline in dict.fromkeys(r.pipeline for r in runs):
        mine = [r for r in runs if r.pipeline == pipeline]
        acc = mean_std([r.test.accuracy for r in mine])
        f1 = mean_std([r.test.macro_f1 for r in mine])
        per_epoch = statistics.fmean(r.train_s_per_epoch for r in mine)
        out.append(SeedSpread(pipeline, len(mine), acc[0], acc[1], f1[0], f1[1], per_epoch))
    return out


def verdict_sentence(paired: list[PairedComparison]) -> str:
    """'direct48 is X points less/more accurate (95% CI ..., McNemar p=...)', or that the
    difference is not significant (at SIGNIFICANCE, in every seed, with one sign)."""
    if not paired:
        return "no paired comparison (one pipeline only)"
    diffs = [p.accuracy_diff_points for p in paired]
    mean, std = mean_std(diffs)
    signs = {p.accuracy_diff_points > 0 for p in paired}
    significant = all(p.significant for p in paired) and len(signs) == 1
    word = "more" if mean > 0 else "less"
    if len(paired) == 1:
        p = paired[0]
        detail = (
            f"95% CI {p.ci_low_points:+.1f} to {p.ci_high_points:+.1f}, McNemar p={p.mcnemar_p:.3g}"
        )
    else:
        ps = ", ".join(f"{p.mcnemar_p:.3g}" for p in paired)
        detail = f"±{std:.1f} over {len(paired)} seeds, McNemar p={ps}"
    if not significant:
        return (
            f"the difference is not significant: direct48 {mean:+.1f} points vs upscale224 "
            f"({detail})"
        )
    return f"direct48 is {abs(mean):.1f} points {word} accurate than upscale224 ({detail})"
