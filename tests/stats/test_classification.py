"""Classification statistics: McNemar's exact test and macro-F1 against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from emobench.scenarios.finetune import (
    confusion_matrix,
    macro_f1,
    mcnemar_exact,
)


def test_mcnemar_matches_a_hand_computed_case() -> None:
    # 2 vs 8 discordant pairs: p = 2 * P(X <= 2 | n=10, 1/2) = 2 * (1 + 10 + 45) / 1024
    assert mcnemar_exact(2, 8) == pytest.approx(112 / 1024)
    assert mcnemar_exact(8, 2) == pytest.approx(112 / 1024)
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(0, 6) == pytest.approx(2 / 64)


def test_macro_f1_by_hand() -> None:
    labels = np.array([0, 0, 1, 1])
    pred = np.array([0, 1, 1, 1])
    cm = confusion_matrix(labels, pred, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [0, 0, 0]]
    # class 0: P=1, R=.5, F1=2/3; class 1: P=2/3, R=1, F1=.8; class 2 absent
    assert macro_f1(cm) == pytest.approx((2 / 3 + 0.8) / 2)
