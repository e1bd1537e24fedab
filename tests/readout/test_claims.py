"""The write-up's claims checked against reports."""

from __future__ import annotations

import dataclasses

import pytest

from emobench.readout.claims import FAILS, HOLDS, NOT_MEASURED, evaluate
from tests.factories import make_report, maxbatch_report


def test_claims_verdicts() -> None:
    # direct48 20x faster at batch 1 (claimed 16x), params ratio 15.9x (claimed 29x)
    rep = make_report(up_latency=[200.0] * 5, dn_latency=[10.0] * 5)
    verdicts = {v.claim: v for v in evaluate(rep)}
    assert verdicts["16x faster inference"].verdict == HOLDS
    assert verdicts["16x faster inference"].measured == pytest.approx(20.0)
    params = verdicts["29x fewer parameters"]
    assert params.verdict == FAILS and "123.6M" in params.reason
    assert params.measured == pytest.approx(134_289_223 / 8_424_775)
    assert verdicts["22x less memory per image"].measured == pytest.approx(224**2 / 48**2)
    assert verdicts["22x less memory per image"].verdict == HOLDS
    batch = verdicts["22x larger batches"]
    assert batch.verdict == NOT_MEASURED and batch.measured is None
    assert "emobench maxbatch" in batch.reason


def test_claims_with_maxbatch_report() -> None:
    verdicts = {v.claim: v for v in evaluate(make_report(), [maxbatch_report(100, 1200)])}
    batch = verdicts["22x larger batches"]
    assert batch.verdict == FAILS and batch.measured == pytest.approx(12.0)
    assert "input size alone" in batch.reason
    holds = {v.claim: v for v in evaluate(make_report(), [maxbatch_report(100, 2500)])}
    assert holds["22x larger batches"].verdict == HOLDS


def test_claims_not_measured_when_absent() -> None:
    rep = make_report()
    stripped = dataclasses.replace(
        rep, results=[dataclasses.replace(r, preprocess=[], latency=None) for r in rep.results]
    )
    verdicts = {v.claim: v for v in evaluate(stripped)}
    assert verdicts["8.6x faster preprocessing"].verdict == NOT_MEASURED
    assert verdicts["16x faster inference"].verdict == NOT_MEASURED
