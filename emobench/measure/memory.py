"""Peak memory of one call: the CUDA caching allocator's peaks, NVML, or the process's RSS."""

from __future__ import annotations

import ctypes
import dataclasses
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import psutil
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from emobench.measure import nvml as nvml_mod
from emobench.results.measurements import PeakMemory

CLEAR_REFS = Path("/proc/self/clear_refs")
PROC_STATUS = Path("/proc/self/status")
RSS_SAMPLE_INTERVAL_S = 0.001


def storage_key(t: torch.Tensor) -> int | None:
    """The identity of a tensor's memory: its storage's data pointer (views and in-place
    results share it); None for empty storages, which hold no memory."""
    storage = t.untyped_storage()
    return storage.data_ptr() if storage.nbytes() else None


def _aliases_an_input(func: Any) -> bool:
    """Whether the op's schema says its outputs alias an input (views, in-place, out=)."""
    schema = getattr(func, "_schema", None)
    returns = getattr(schema, "returns", None) or ()
    return any(getattr(r, "alias_info", None) is not None for r in returns)


class _LiveTensorBytes(TorchDispatchMode):
    """Tracks the bytes of tensor storages created inside the mode and still alive.

    Storages that existed before (weights, buffers, optimizer state, inputs: `existing`) and
    outputs that alias an op's input (views, in-place writes) allocate nothing.
    """

    def __init__(self, existing: Iterable[torch.Tensor] = ()) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._sizes: dict[int, int] = {}
        self._existing = {k for t in existing if (k := storage_key(t)) is not None}

    def _free(self, key: int) -> None:
        self.live -= self._sizes.pop(key, 0)

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if _aliases_an_input(func):
            return out
        inputs = {
            k
            for t in tree_flatten((args, kwargs))[0]
            if isinstance(t, torch.Tensor) and (k := storage_key(t)) is not None
        }
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor):
                continue
            key = storage_key(t)
            if key is None or key in inputs or key in self._existing or key in self._sizes:
                continue
            storage = t.untyped_storage()
            self._sizes[key] = storage.nbytes()
            self.live += self._sizes[key]
            self.peak = max(self.peak, self.live)
            weakref.finalize(storage, self._free, key)
        return out


def tensor_peak_bytes(fn: Callable[[], Any], existing: Iterable[torch.Tensor] = ()) -> int:
    """Peak bytes of tensors allocated while `fn` runs and alive at once (activations, outputs,
    gradients), not counting the storages of `existing` tensors (weights, optimizer state,
    inputs). Counted at the operator level, so it is the same on every device and excludes
    allocator caching and kernels' private workspaces.
    """
    with _LiveTensorBytes(existing) as tracker:
        result = fn()
    del result
    return tracker.peak


def _release_free_heap() -> None:
    """Hand glibc's free heap back to the OS, so a later peak shows up as RSS growth."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _read_hwm_bytes() -> int | None:
    try:
        for line in PROC_STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_hwm() -> bool:
    """Reset the kernel's peak-RSS counter (Linux >= 4.0); False where that is not allowed."""
    try:
        CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def cpu_peak_memory(fn: Callable[[], Any]) -> PeakMemory:
    """Peak RSS growth of this process while `fn` runs."""
    before, peak, method = process_peak_rss(fn)
    return PeakMemory(method, cpu_peak_rss_growth_bytes=max(0, peak - before))


def process_peak_rss(fn: Callable[[], Any]) -> tuple[int, int, str]:
    """(RSS before, peak RSS while `fn` ran, method), in bytes, for this whole process.

    Prefers the kernel's exact high-water mark (VmHWM after writing 5 to clear_refs); falls back
    to sampling psutil's RSS every millisecond, which can miss spikes shorter than that.
    """
    _release_free_heap()
    proc = psutil.Process()
    before = int(proc.memory_info().rss)
    if _reset_hwm():
        fn()
        hwm = _read_hwm_bytes()
        if hwm is not None:
            return before, max(hwm, before), "vmhwm"
    peak = before
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, int(proc.memory_info().rss))
            time.sleep(RSS_SAMPLE_INTERVAL_S)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        fn()
    finally:
        done.set()
        sampler.join()
    peak = max(peak, int(proc.memory_info().rss))
    return before, peak, "psutil_rss_sampling"


ALLOCATOR_BLOCK = 512  # the CUDA caching allocator rounds every block up to this many bytes


def resident_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes the allocator holds for these tensors' storages, each storage once (views and
    tied weights share one), rounded up to the allocator's block size."""
    sizes: dict[int, int] = {}
    for t in tensors:
        key = storage_key(t)
        if key is not None:
            sizes[key] = t.untyped_storage().nbytes()
    return sum(-(-n // ALLOCATOR_BLOCK) * ALLOCATOR_BLOCK for n in sizes.values())


def cuda_peak_memory(
    fn: Callable[[], Any], device: torch.device, existing: Iterable[torch.Tensor] = ()
) -> PeakMemory:
    """This call's own allocator peaks, as if its pipeline were alone on the device, and NVML's
    device-wide use while the result is alive.

    `reset_peak_memory_stats` resets the peaks to what is allocated now, which includes every
    model still resident (paired mode keeps the other pipeline's model on the device). So the
    peak counted is what the call added on top of everything allocated just before it, plus
    this pipeline's own resident tensors (`existing`: its weights, buffers, inputs, optimizer
    state): the other pipeline's model is not counted. Reserved likewise: the growth of the
    allocator's reserved memory during the call, plus the same own tensors."""
    existing = list(existing)
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    allocated_before = int(torch.cuda.memory_allocated(device))
    reserved_before = int(torch.cuda.memory_reserved(device))
    torch.cuda.reset_peak_memory_stats(device)
    result = fn()
    torch.cuda.synchronize(device)
    nvml_used = None
    nvml = nvml_mod.load_nvml()
    if nvml is not None:
        uuid = str(torch.cuda.get_device_properties(device).uuid)
        handle = nvml_mod.handle_for_uuid(nvml, uuid)
        nvml_used = nvml_mod.used_bytes(nvml, handle) if handle is not None else None
    del result
    own = resident_bytes(existing)
    added = max(0, int(torch.cuda.max_memory_allocated(device)) - allocated_before)
    added_reserved = max(0, int(torch.cuda.max_memory_reserved(device)) - reserved_before)
    return PeakMemory(
        "cuda_allocator",
        cuda_peak_allocated_bytes=added + own,
        cuda_peak_reserved_bytes=added_reserved + own,
        nvml_device_used_bytes=nvml_used,
        cuda_allocated_before_bytes=allocated_before,
        cuda_own_resident_bytes=own,
    )


def peak_memory(
    fn: Callable[[], Any],
    device: torch.device,
    existing: Iterable[torch.Tensor] = (),
    warm_calls: int = 0,
) -> PeakMemory:
    """Device-level peaks of one call, plus the device-independent live-tensor peak (without
    `existing` tensors), from the same single call (the tracker's bookkeeping is a few small
    dicts: not visible in the peaks).

    `warm_calls` untimed calls come first and the peaks are reset after them: a shape's first
    call allocates what later calls reuse (cuDNN autotuning workspaces under
    cudnn.benchmark, the allocator's first segments), which is not the steady-state peak.
    0 (the default) when the caller already warmed `fn` at this size, or wants the first
    call's peak."""
    for _ in range(warm_calls):
        fn()
    existing = list(existing)
    tracker = _LiveTensorBytes(existing)

    def tracked() -> Any:
        with tracker:
            return fn()

    measured = (
        cuda_peak_memory(tracked, device, existing)
        if device.type == "cuda"
        else cpu_peak_memory(tracked)
    )
    return dataclasses.replace(measured, tensor_peak_bytes=tracker.peak)
