"""The largest batch that fits: a pure search over a `try_batch(n) -> ProbeOutcome` callable,
out-of-memory classification, budget parsing and the CPU memory fit."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from emobench.errors import UsageError
from emobench.results.measurements import LinearFit, Probe, ProbeOutcome

OK = "ok"
OOM = "oom"
ERROR = "error"
OVER_BUDGET = "over_budget"

# (kind, message fragments): what each allocator or library says when memory runs out. cuDNN and
# the index-math checks disguise it: with no workspace left no engine can run, and a huge batch
# outgrows 32-bit indexing; all mean "this batch does not fit", never "the search failed".
OOM_KINDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("allocator", ("out of memory", "can't allocate memory")),
    ("cublas alloc", ("CUBLAS_STATUS_ALLOC_FAILED",)),
    ("cudnn workspace", ("CUDNN_STATUS_NOT_ENOUGH_WORKSPACE", "CUDNN_STATUS_ALLOC_FAILED")),
    ("32-bit index limit", ("canUse32BitIndexMath", "must fit into 32-bit index math")),
)

# Library failures that are memory running out only when an allocation failed just before them
# (cuDNN reports a failed workspace cudaMalloc as an internal error, cuBLAS a handle it could not
# allocate as "not initialized"); alone they are real errors: a broken install, a bad kernel.
AFTER_ALLOCATION_FAILURE: tuple[str, tuple[str, ...]] = (
    "library after allocation failure",
    (
        "CUDNN_STATUS_INTERNAL_ERROR",
        "CUBLAS_STATUS_NOT_INITIALIZED",
        # "no engine": out of workspace when an allocation failed first (torch's cuDNN code
        # catches the failed workspace allocation, which counts in num_ooms, before it says
        # this); alone, a convolution cuDNN cannot run at all: an error, not "max batch 0"
        "unable to find an engine to execute this computation",
        "CUDNN_STATUS_NOT_SUPPORTED",
        "CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR",
    ),
)

OOM_MESSAGES = tuple(m for _, messages in OOM_KINDS for m in messages)
BYTE_SUFFIXES = {
    "": 1,
    "B": 1,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
}


@dataclass(frozen=True)
class SearchResult:
    max_batch: int  # 0 when even batch 1 does not fit
    capped: bool  # the cap was reached: the real limit may be higher
    probes: list[Probe]
    error: str | None = None  # a non-memory failure that ended the search
    confirmed: bool | None = None  # the winning batch ran again and succeeded


def oom_kind(exc: BaseException, after_allocation_failure: bool = False) -> str | None:
    """Which kind of out-of-memory `exc` is (see OOM_KINDS), or None for any other failure.

    cuDNN's internal error and cuBLAS's "not initialized" (AFTER_ALLOCATION_FAILURE) count only
    when an allocation failed first: `after_allocation_failure` (the allocator counted a failure
    during the step) or an out-of-memory error in the exception's chain."""
    if type(exc).__name__ == "OutOfMemoryError":  # torch.cuda.OutOfMemoryError, torch's
        return "allocator"
    if isinstance(exc, MemoryError):
        return "allocator"
    if not isinstance(exc, RuntimeError):
        return None
    text = str(exc).lower()
    for kind, messages in OOM_KINDS:
        if any(m.lower() in text for m in messages):
            return kind
    kind, messages = AFTER_ALLOCATION_FAILURE
    if any(m.lower() in text for m in messages) and (
        after_allocation_failure or _chain_holds_an_oom(exc)
    ):
        return kind
    return None


def _chain_holds_an_oom(exc: BaseException) -> bool:
    """Whether an exception `exc` was raised from (or while handling) is an out-of-memory."""
    seen: set[int] = set()
    cause = exc.__cause__ or exc.__context__
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if oom_kind(cause) is not None:
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def is_oom(exc: BaseException, after_allocation_failure: bool = False) -> bool:
    """Out-of-memory errors (disguised ones included), told apart from every other failure."""
    return oom_kind(exc, after_allocation_failure) is not None


def search_max_batch(
    try_batch: Callable[[int], ProbeOutcome],
    max_batch: int,
    *,
    confirm: bool = True,
    clock: Callable[[], float] = time.perf_counter,
    on_probe: Callable[[Probe], None] | None = None,
    confirm_with: Callable[[int], ProbeOutcome] | None = None,
) -> SearchResult:
    """Grow the batch geometrically (1, 2, 4, ...), then bisect between the last success and the
    first failure. At most 2*log2(result) + 3 probes, the confirmation included.

    The winning batch is confirmed by `confirm_with` (CUDA: a fresh process under the same
    budget), or by `try_batch` again when it is None. A non-memory failure ends the search with
    `error` set, at batch 1 too: an error is never read as "nothing fits".
    """
    if max_batch < 1:
        raise UsageError(f"--max-batch must be >= 1, got {max_batch}")
    probes: list[Probe] = []

    def probe(n: int, run: Callable[[int], ProbeOutcome] = try_batch) -> ProbeOutcome:
        start = clock()
        out = run(n)
        p = Probe(n, out.outcome, out.peak_bytes, clock() - start, out.message, out.reserved_bytes)
        probes.append(p)
        if on_probe is not None:
            on_probe(p)
        return out

    good, bad = 0, None
    n = 1
    while True:
        out = probe(n)
        if out.outcome == ERROR:
            return SearchResult(good, False, probes, error=out.message)
        if out.outcome != OK:
            bad = n
            break
        good = n
        if n == max_batch:
            break
        n = min(n * 2, max_batch)
    while bad is not None and bad - good > 1:
        mid = (good + bad) // 2
        out = probe(mid)
        if out.outcome == ERROR:
            return SearchResult(good, False, probes, error=out.message)
        if out.outcome == OK:
            good = mid
        else:
            bad = mid
    confirmed = None
    if confirm and good > 0:
        out = probe(good, confirm_with or try_batch)
        if out.outcome == ERROR and confirm_with is not None:  # the confirmation itself broke
            return SearchResult(good, bad is None, probes, error=out.message)
        confirmed = out.outcome == OK
    return SearchResult(good, bad is None, probes, confirmed=confirmed)


def apply_margin(max_batch: int, margin: float) -> int:
    """The batch to use in practice: `margin` (a fraction) below the largest that fitted."""
    if not 0 <= margin < 1:
        raise UsageError(f"--margin must be in [0, 1), got {margin}")
    return max(0, math.floor(max_batch * (1 - margin))) if max_batch else 0


def parse_budget(text: str, total_bytes: int, what: str = "the device") -> int:
    """'8GiB', '512MiB', '2GB', '1073741824' or a fraction such as '0.5' of `total_bytes`."""
    raw = text.strip()
    match = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)", raw)
    if not match:
        raise UsageError(f"--budget {text!r}: expected a size like 8GiB or 512MiB, or a fraction")
    number, suffix = float(match.group(1)), match.group(2).upper()
    if not math.isfinite(number):  # hundreds of digits overflow to inf
        raise UsageError(f"--budget {text[:20]!r}...: not a finite size")
    if suffix not in BYTE_SUFFIXES:
        raise UsageError(f"--budget {text!r}: unknown unit {match.group(2)!r}; use MiB, GiB, ...")
    if not suffix and "." in match.group(1):
        if not 0 < number <= 1:
            raise UsageError(f"--budget {text!r}: a fraction must be in (0, 1]")
        return int(number * total_bytes)
    budget = int(number * BYTE_SUFFIXES[suffix])
    if budget <= 0:
        raise UsageError(f"--budget {text!r}: must be positive")
    if budget > total_bytes:
        raise UsageError(
            f"--budget {text!r} ({budget / 2**30:.2f} GiB) is larger than {what} "
            f"({total_bytes / 2**30:.2f} GiB)"
        )
    return budget


def bytes_per_extra_image(probes: list[Probe]) -> float | None:
    """Slope of peak memory against batch size over the successful probes."""
    points = sorted(
        {(p.batch_size, p.peak_bytes) for p in probes if p.outcome == OK and p.peak_bytes}
    )
    if len({b for b, _ in points}) < 2:
        return None
    return LinearFit.from_points([(b, int(m)) for b, m in points]).per_image_bytes


@dataclass(frozen=True)
class MemoryHooks:
    """How one device resets, reads and releases its memory around a probe.

    `sync` waits for the step's queued work (CUDA kernels run asynchronously: a step returns
    before they ran, and their errors surface at the next synchronisation); `allocation_failures`
    counts the allocator's failed allocations so far (CUDA: out-of-memory errors and cudaMalloc
    retries), so a library error that follows one is told apart from one that does not."""

    reset: Callable[[], None]
    peak_bytes: Callable[[], int | None]
    release: Callable[[], None]
    peak_reserved: Callable[[], int | None] = lambda: None
    sync: Callable[[], None] = lambda: None
    allocation_failures: Callable[[], int] = lambda: 0


def _failure_text(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".strip()


def guarded_try_batch(
    step: Callable[[int], object], hooks: MemoryHooks
) -> Callable[[int], ProbeOutcome]:
    """Wrap `step(n)` into a probe: OOM and other failures become outcomes, not exceptions.

    The device is synchronised inside the try, so a batch "fits" only once its kernels ran, and
    an asynchronous CUDA error is caught (and classified) with the step that caused it."""

    def try_batch(n: int) -> ProbeOutcome:
        try:
            hooks.reset()
            failures_before = hooks.allocation_failures()
        except Exception as exc:  # an earlier failure left the device unusable
            return ProbeOutcome(ERROR, None, f"before the step: {_failure_text(exc)}")
        failure: str | None = None
        oom = False
        try:
            step(n)
            hooks.sync()
        except Exception as exc:
            try:
                after_failed_allocation = hooks.allocation_failures() > failures_before
            except Exception:  # a broken context cannot say: the error stays an error
                after_failed_allocation = False
            kind = oom_kind(exc, after_failed_allocation)
            oom = kind is not None
            failure = _failure_text(exc)
            if kind is not None:
                failure = f"[{kind}] {failure}"
        # Released outside the except block: the traceback holds the failed step's tensors.
        # After a failed step the device may be unusable (a sticky CUDA error): the step's own
        # failure is the outcome, never one raised again by the clean-up.
        try:
            hooks.release()
            peak, reserved = hooks.peak_bytes(), hooks.peak_reserved()
        except Exception as exc:
            if failure is None:
                return ProbeOutcome(ERROR, None, f"after the step: {_failure_text(exc)}")
            peak = reserved = None
        if failure is None:
            return ProbeOutcome(OK, peak, reserved_bytes=reserved)
        return ProbeOutcome(OOM if oom else ERROR, peak, failure, reserved)

    return try_batch
