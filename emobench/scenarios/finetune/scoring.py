"""Scoring a fine-tuned pipeline: predictions, accuracy and macro-F1 on a split, batch-1 latency,
and the paired comparison of the two pipelines on the same images."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from emobench.data.labeled import Split
from emobench.names import DIRECT, UPSCALE
from emobench.results.finetune import EpochMetrics, FinetuneRun, PairedComparison, TestScore
from emobench.runtimes.torch import Pipeline
from emobench.stats.classification import (
    confusion_matrix,
    macro_f1,
    mcnemar_exact,
    mean_interval,
    per_class,
)

PREDICT_BATCH = 256
LATENCY_SAMPLES = 20
LATENCY_WARMUP = 3


def sync(device: torch.device) -> None:
    """Wait for the device's queued work, so a wall-clock reading covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def predict(
    pipeline: Pipeline,
    forward: Callable[[Tensor], Tensor],
    images: np.ndarray,
    batch_size: int = PREDICT_BATCH,
    on_batch: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Predicted classes for uint8 images, in eval mode, `batch_size` at a time;
    `on_batch(images done, images)` after each batch."""
    pipeline.model.eval()
    out = []
    with torch.inference_mode(), pipeline.autocast():
        for start in range(0, len(images), batch_size):
            batch = torch.from_numpy(images[start : start + batch_size])
            out.append(forward(pipeline.preprocess_batched(batch)).argmax(1).cpu())
            if on_batch is not None:
                on_batch(min(start + batch_size, len(images)), len(images))
    return torch.cat(out).numpy()


def score(
    labels: np.ndarray, pred: np.ndarray, num_classes: int
) -> tuple[float, float, np.ndarray]:
    """Accuracy, macro-F1 and the confusion matrix of predictions against labels."""
    cm = confusion_matrix(labels, pred, num_classes)
    return float((pred == labels).mean()), macro_f1(cm), cm


def latency_b1_ms(
    pipeline: Pipeline, forward: Callable[[Tensor], Tensor], image: np.ndarray
) -> float:
    """Median batch-1 inference with preprocessing, from the host uint8 image to the logits."""
    batch = torch.from_numpy(image[None])
    samples = []
    pipeline.model.eval()
    with torch.inference_mode(), pipeline.autocast():
        for i in range(LATENCY_WARMUP + LATENCY_SAMPLES):
            sync(pipeline.device)
            start = time.perf_counter()
            forward(pipeline.preprocess_batched(batch))
            sync(pipeline.device)
            if i >= LATENCY_WARMUP:
                samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def score_split(
    pipeline: Pipeline,
    forward: Callable[[Tensor], Tensor],
    split: Split,
    num_classes: int,
    checkpoint_epoch: int,
) -> TestScore:
    """The loaded weights on one split: every prediction, the scores, batch-1 latency."""
    pred = predict(pipeline, forward, split.images)
    acc, f1, cm = score(split.labels, pred, num_classes)
    precision, recall, _ = per_class(cm)
    return TestScore(
        split=split.source,
        checkpoint_epoch=checkpoint_epoch,
        images=len(split.labels),
        accuracy=acc,
        macro_f1=f1,
        precision=precision.tolist(),
        recall=recall.tolist(),
        confusion=cm.tolist(),
        latency_b1_ms=latency_b1_ms(pipeline, forward, split.images[0]),
        predictions=pred.tolist(),
    )


def time_to_target(
    history: Sequence[EpochMetrics], target: float | None
) -> tuple[int, float] | None:
    """The first epoch whose val accuracy reaches target, and the training seconds up to it."""
    elapsed, to_target = 0.0, None
    for e in history:
        elapsed += e.train_s
        if target is not None and to_target is None and e.val_accuracy >= target:
            to_target = (e.epoch, elapsed)
    return to_target


def paired_comparison(
    labels: np.ndarray, upscale_pred: np.ndarray, direct_pred: np.ndarray, seed: int
) -> PairedComparison:
    """direct48 - upscale224 on the same images: McNemar and a percentile bootstrap interval."""
    up_right = upscale_pred == labels
    dn_right = direct_pred == labels
    diff = dn_right.astype(np.float64) - up_right.astype(np.float64)
    point = float(diff.mean()) * 100
    low, high = (v * 100 for v in mean_interval(diff, seed))
    only_up = int(np.sum(up_right & ~dn_right))
    only_dn = int(np.sum(dn_right & ~up_right))
    return PairedComparison(
        seed=seed,
        images=len(labels),
        accuracy_diff_points=point,
        ci_low_points=low,
        ci_high_points=high,
        only_upscale_right=only_up,
        only_direct_right=only_dn,
        mcnemar_p=mcnemar_exact(only_up, only_dn),
    )


def paired_by_seed(
    runs: Sequence[FinetuneRun], seeds: Sequence[int], labels: np.ndarray
) -> list[PairedComparison]:
    """One paired comparison per seed that trained both pipelines."""
    paired = []
    for seed in seeds:
        by = {r.pipeline: r for r in runs if r.seed == seed}
        if UPSCALE in by and DIRECT in by:
            paired.append(
                paired_comparison(
                    labels,
                    np.asarray(by[UPSCALE].test.predictions),
                    np.asarray(by[DIRECT].test.predictions),
                    seed,
                )
            )
    return paired
