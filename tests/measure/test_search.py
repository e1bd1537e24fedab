"""The pure max-batch search over a try_batch callable, OOM classification, budgets, fits."""

from __future__ import annotations

import math

import pytest
import torch

from emobench.errors import UsageError
from emobench.measure import search as mb


def fits_below(limit: int):
    calls: list[int] = []

    def try_batch(n: int) -> mb.ProbeOutcome:
        calls.append(n)
        return mb.ProbeOutcome(mb.OK if n <= limit else mb.OOM, peak_bytes=1000 + 10 * n)

    return try_batch, calls


@pytest.mark.parametrize("limit", [1, 2, 3, 7, 100, 1000, 12345])
def test_search_finds_the_exact_limit_within_probe_bound(limit: int) -> None:
    try_batch, calls = fits_below(limit)
    result = mb.search_max_batch(try_batch, max_batch=65536)
    assert result.max_batch == limit
    assert not result.capped and result.error is None and result.confirmed
    assert len(result.probes) <= 2 * math.log2(limit) + 3
    assert calls[-1] == limit  # the winner ran once more to confirm
    assert [p.batch_size for p in result.probes] == calls  # every probe is in the trace


def test_search_caps_and_says_so() -> None:
    try_batch, _ = fits_below(10**9)
    result = mb.search_max_batch(try_batch, max_batch=300)
    assert result.max_batch == 300 and result.capped
    assert [p.batch_size for p in result.probes][:-1] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]


def test_search_when_nothing_fits() -> None:
    try_batch, _ = fits_below(0)
    result = mb.search_max_batch(try_batch, max_batch=64)
    assert result.max_batch == 0 and not result.capped and result.confirmed is None
    assert len(result.probes) == 1


def test_non_memory_failure_stops_the_search() -> None:
    def try_batch(n: int) -> mb.ProbeOutcome:
        if n >= 8:
            return mb.ProbeOutcome(mb.ERROR, message="RuntimeError: cuDNN error: bad param")
        return mb.ProbeOutcome(mb.OK)

    result = mb.search_max_batch(try_batch, max_batch=1024)
    assert result.error == "RuntimeError: cuDNN error: bad param"
    assert result.max_batch == 4
    assert [p.outcome for p in result.probes] == ["ok", "ok", "ok", "error"]


def test_margin() -> None:
    assert mb.apply_margin(100, 0.05) == 95
    assert mb.apply_margin(7, 0.0) == 7
    assert mb.apply_margin(0, 0.5) == 0
    with pytest.raises(UsageError):
        mb.apply_margin(10, 1.0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("8GiB", 8 * 2**30), ("512MiB", 512 * 2**20), ("2GB", 2 * 10**9), ("0.5", 8 * 2**30)],
)
def test_parse_budget(text: str, expected: int) -> None:
    assert mb.parse_budget(text, 16 * 2**30) == expected


@pytest.mark.parametrize("text", ["0", "-1GiB", "abc", "1.5", "32GiB", "3 parsecs", ""])
def test_parse_budget_rejects(text: str) -> None:
    with pytest.raises(UsageError, match="--budget"):
        mb.parse_budget(text, 16 * 2**30)


def test_is_oom_classification() -> None:
    assert mb.is_oom(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert mb.is_oom(RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling ..."))
    assert mb.is_oom(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried ..."))
    assert not mb.is_oom(RuntimeError("CUDA error: an illegal memory access was encountered"))
    assert not mb.is_oom(ValueError("out of memory"))  # not an allocator error type


def test_guarded_try_batch_with_injected_oom() -> None:
    """The CUDA probe path on CPU: an injected OOM is an outcome, memory is released after."""
    events: list[str] = []
    peaks = iter([111, 222, 333])

    def step(n: int) -> None:
        events.append(f"step {n}")
        if n > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1 GiB")
        if n == 2:
            raise RuntimeError("CUDA error: device-side assert triggered\nmore detail")

    hooks = mb.MemoryHooks(
        reset=lambda: events.append("reset"),
        peak_bytes=lambda: next(peaks),
        release=lambda: events.append("release"),
    )
    try_batch = mb.guarded_try_batch(step, hooks)
    assert try_batch(1) == mb.ProbeOutcome(mb.OK, 111)
    assert try_batch(4).outcome == mb.OOM
    err = try_batch(2)
    assert err.outcome == mb.ERROR
    assert err.message == "RuntimeError: CUDA error: device-side assert triggered"
    assert events[:3] == ["reset", "step 1", "release"]


def test_bytes_per_extra_image_is_the_slope() -> None:
    probes = [mb.Probe(n, mb.OK, 500 + 40 * n, 0.0) for n in (1, 2, 4, 8)]
    probes.append(mb.Probe(16, mb.OOM, None, 0.0))
    assert mb.bytes_per_extra_image(probes) == pytest.approx(40.0)


def test_linear_fit_prediction() -> None:
    fit = mb.LinearFit.from_points([(1, 110), (2, 120), (4, 140)])
    assert fit.fixed_bytes == pytest.approx(100) and fit.per_image_bytes == pytest.approx(10)
    assert fit.largest_batch_under(1000, cap=10_000) == 90
    assert fit.largest_batch_under(1000, cap=50) == 50


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("GET was unable to find an engine to execute this computation", "cudnn no engine"),
        ("FIND was unable to find an engine to execute this computation", "cudnn no engine"),
        (
            "cuDNN error: CUDNN_STATUS_NOT_SUPPORTED. This error may appear if ...",
            "cudnn no engine",
        ),
        (
            "Expected canUse32BitIndexMath(input) && canUse32BitIndexMath(output)",
            "32-bit index limit",
        ),
        ("upsample: input tensor must fit into 32-bit index math", "32-bit index limit"),
        ("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate", "cublas alloc"),
        ("cuDNN error: CUDNN_STATUS_ALLOC_FAILED", "cudnn workspace"),
    ],
)
def test_disguised_ooms_are_does_not_fit(message: str, kind: str) -> None:
    assert mb.oom_kind(RuntimeError(message)) == kind

    def step(n: int) -> None:
        if n > 40:
            raise RuntimeError(message)

    hooks = mb.MemoryHooks(lambda: None, lambda: None, lambda: None)
    result = mb.search_max_batch(mb.guarded_try_batch(step, hooks), 4096)
    # the search bisects below the failure instead of stopping with an error
    assert result.error is None and result.max_batch == 40 and result.confirmed
    failed = [p for p in result.probes if p.outcome == mb.OOM]
    assert failed and all(p.message and p.message.startswith(f"[{kind}] ") for p in failed)
