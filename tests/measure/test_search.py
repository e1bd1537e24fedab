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


@pytest.mark.parametrize(
    "message",
    [
        "GET was unable to find an engine to execute this computation",
        "FIND was unable to find an engine to execute this computation",
        "cuDNN error: CUDNN_STATUS_NOT_SUPPORTED. This error may appear if ...",
    ],
)
def test_cudnn_no_engine_is_oom_only_after_a_failed_allocation(message: str) -> None:
    """Review of #21: 'no engine' always counted as out of memory, so a convolution cuDNN cannot
    run at all read as "max batch 0" / "out of GPU memory". torch's cuDNN code catches a failed
    workspace allocation (counted in num_ooms) before it says this: memory only after one."""
    assert mb.oom_kind(RuntimeError(message)) is None
    assert mb.oom_kind(RuntimeError(message), after_allocation_failure=True) is not None


class AsyncDevice:
    """A device whose work runs later: a step queues an error, the next sync raises it."""

    def __init__(self) -> None:
        self.pending: Exception | None = None
        self.failures = 0  # the allocator's failed allocations
        self.events: list[str] = []

    def sync(self) -> None:
        self.events.append("sync")
        if self.pending is not None:
            error, self.pending = self.pending, None
            raise error

    def hooks(self) -> mb.MemoryHooks:
        return mb.MemoryHooks(
            reset=lambda: self.events.append("reset"),
            peak_bytes=lambda: 1,
            release=self.sync,  # as on CUDA: release synchronises too
            sync=self.sync,
            allocation_failures=lambda: self.failures,
        )


def test_fits_is_decided_after_the_kernels_ran() -> None:
    """The step returned before its kernels failed: the probe said "ok" and the error escaped
    from release(), outside the try."""
    device = AsyncDevice()

    def step(n: int) -> None:
        device.events.append(f"step {n}")
        if n >= 8:
            device.pending = RuntimeError("CUDA error: an illegal memory access was encountered")

    try_batch = mb.guarded_try_batch(step, device.hooks())
    assert try_batch(4).outcome == mb.OK
    out = try_batch(8)
    assert out.outcome == mb.ERROR and "illegal memory access" in (out.message or "")
    assert device.events[-4:] == ["reset", "step 8", "sync", "sync"]  # synced inside the try
    result = mb.search_max_batch(try_batch, 1024)
    assert result.max_batch == 4 and result.error is not None and result.confirmed is None


@pytest.mark.parametrize(
    "message", ["cuDNN error: CUDNN_STATUS_INTERNAL_ERROR", "CUBLAS_STATUS_NOT_INITIALIZED"]
)
@pytest.mark.parametrize("after_failed_allocation", [True, False])
def test_library_errors_are_oom_only_after_a_failed_allocation(
    message: str, after_failed_allocation: bool
) -> None:
    device = AsyncDevice()

    def step(n: int) -> None:
        if n > 40:
            if after_failed_allocation:
                device.failures += 1
            device.pending = RuntimeError(message)

    result = mb.search_max_batch(mb.guarded_try_batch(step, device.hooks()), 4096)
    failed = result.probes[6]
    assert failed.batch_size == 64
    if after_failed_allocation:
        assert failed.outcome == mb.OOM
        assert failed.message and failed.message.startswith("[library after allocation failure]")
        assert result.error is None and result.max_batch == 40 and result.confirmed
    else:  # alone, it is a real error: the search stops
        assert failed.outcome == mb.ERROR and result.max_batch == 32
        assert result.error is not None and message in result.error


def test_library_error_raised_from_an_oom_is_oom() -> None:
    error = RuntimeError("cuDNN error: CUDNN_STATUS_INTERNAL_ERROR")
    assert mb.oom_kind(error) is None
    try:
        try:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1 GiB")
        except torch.OutOfMemoryError:
            raise error from None
    except RuntimeError:
        pass
    assert error.__context__ is not None
    assert mb.oom_kind(error) == "library after allocation failure"
    assert mb.oom_kind(RuntimeError("CUBLAS_STATUS_NOT_INITIALIZED"), True) is not None
    assert not mb.is_oom(RuntimeError("CUDA error: an illegal memory access"), True)


def test_a_broken_device_never_turns_an_error_into_an_exception() -> None:
    """After a sticky error every CUDA call fails: release and the next reset included."""
    broken = {"on": False}

    def fail_if_broken() -> None:
        if broken["on"]:
            raise RuntimeError("CUDA error: unspecified launch failure")

    def step(n: int) -> None:
        if n == 2:
            broken["on"] = True
            raise RuntimeError("CUDA error: unspecified launch failure")

    hooks = mb.MemoryHooks(fail_if_broken, lambda: 1, fail_if_broken)
    try_batch = mb.guarded_try_batch(step, hooks)
    out = try_batch(2)
    assert out.outcome == mb.ERROR and out.message == (
        "RuntimeError: CUDA error: unspecified launch failure"
    )
    out = try_batch(1)
    assert out.outcome == mb.ERROR and (out.message or "").startswith("before the step: ")


def test_the_confirmation_can_run_elsewhere() -> None:
    try_batch, calls = fits_below(100)
    confirmed_at: list[int] = []

    def fresh(n: int) -> mb.ProbeOutcome:
        confirmed_at.append(n)
        return mb.ProbeOutcome(mb.OK, 7, "fresh process")

    result = mb.search_max_batch(try_batch, 4096, confirm_with=fresh)
    assert confirmed_at == [100] and 100 not in calls[calls.index(100) + 1 :]
    assert result.confirmed and result.probes[-1].message == "fresh process"
    broken = mb.search_max_batch(
        try_batch, 4096, confirm_with=lambda n: mb.ProbeOutcome(mb.ERROR, message="no child")
    )
    assert broken.max_batch == 100 and broken.confirmed is None and broken.error == "no child"
