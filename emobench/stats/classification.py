"""Classification scores (confusion matrix, per-class precision/recall/F1, macro-F1) and the
paired tests that compare two classifiers on the same images (McNemar's exact test, a
percentile-bootstrap interval of the accuracy difference)."""

from __future__ import annotations

import numpy as np

BOOTSTRAP_RESAMPLES = 2000


CONFIDENCE = 0.95


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    out = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(out, (labels, predictions), 1)
    return out


def per_class(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """precision, recall and F1 per class (0 where undefined)."""
    tp = np.diag(confusion).astype(np.float64)
    predicted = confusion.sum(axis=0)
    actual = confusion.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return precision, recall, f1


def macro_f1(confusion: np.ndarray) -> float:
    """Mean F1 over the classes present in the labels."""
    _, _, f1 = per_class(confusion)
    present = confusion.sum(axis=1) > 0
    return float(f1[present].mean()) if present.any() else 0.0


def mcnemar_exact(only_a_right: int, only_b_right: int) -> float:
    """Two-sided exact McNemar p-value: a binomial test of the discordant pairs at 1/2."""
    from scipy.stats import binomtest

    n = only_a_right + only_b_right
    if n == 0:
        return 1.0
    return float(binomtest(min(only_a_right, only_b_right), n, 0.5).pvalue)


def mean_interval(values: np.ndarray, seed: int) -> tuple[float, float]:
    """CONFIDENCE percentile-bootstrap interval (scipy.stats.bootstrap) of the mean of `values`;
    the mean itself at both ends when every value is equal (every resample is identical)."""
    from scipy.stats import bootstrap

    if np.all(values == values[0]):
        point = float(values.mean())
        return point, point
    ci = bootstrap(
        (values,),
        np.mean,
        n_resamples=BOOTSTRAP_RESAMPLES,
        confidence_level=CONFIDENCE,
        method="percentile",
        random_state=np.random.default_rng(seed),
    ).confidence_interval
    return float(ci.low), float(ci.high)
