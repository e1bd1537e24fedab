"""NVML access through nvidia-ml-py's `pynvml`, imported only when present.

Every function returns None when NVML, its driver or the device cannot be reached: a
measurement we cannot take is absent, never 0.
"""

from __future__ import annotations

import importlib
import math
import os
import statistics
import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from emobench.results.measurements import MonitorResult


def load_nvml() -> ModuleType | None:
    """The initialised pynvml module, or None when the module or the driver is missing."""
    try:
        nvml = importlib.import_module("pynvml")
        nvml.nvmlInit()
    except Exception:  # ImportError, NVMLError_LibraryNotFound, NVMLError_DriverNotLoaded, ...
        return None
    return nvml


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def handle_for_uuid(nvml: ModuleType, uuid: str) -> Any | None:
    """The NVML handle of the GPU with this UUID.

    torch's device index and NVML's index disagree under CUDA_VISIBLE_DEVICES or a
    non-default CUDA_DEVICE_ORDER; the UUID names the same physical device in both.
    """
    key = uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}"
    try:
        return nvml.nvmlDeviceGetHandleByUUID(key)
    except Exception:
        return None


def device_info(nvml: ModuleType, handle: Any) -> dict[str, Any]:
    """Name, total memory and driver version of one GPU; fields NVML refuses are None."""
    info: dict[str, Any] = {"gpu_name": None, "gpu_memory_total_bytes": None, "driver": None}
    try:
        info["gpu_name"] = _text(nvml.nvmlDeviceGetName(handle))
    except Exception:
        pass
    try:
        info["gpu_memory_total_bytes"] = int(nvml.nvmlDeviceGetMemoryInfo(handle).total)
    except Exception:
        pass
    try:
        info["driver"] = _text(nvml.nvmlSystemGetDriverVersion())
    except Exception:
        pass
    return info


def used_bytes(nvml: ModuleType, handle: Any) -> int | None:
    """Device memory in use by every process on the GPU, as NVML reports it."""
    try:
        return int(nvml.nvmlDeviceGetMemoryInfo(handle).used)
    except Exception:
        return None


def process_used_bytes(nvml: ModuleType, handle: Any, pid: int) -> int | None:
    """GPU memory NVML attributes to process `pid` (None where the driver hides it)."""
    return process_memory(nvml, handle, pid)[0]


PID_MATCH = "pid"
ONLY_PROCESS = "only process on the device (PID namespaces differ)"


def process_memory(nvml: ModuleType, handle: Any, pid: int) -> tuple[int | None, str]:
    """(bytes NVML attributes to this process, how it was matched or why it is absent).

    In a container NVML lists host PIDs, so `pid` never matches: when the device then has
    exactly one compute process, it is this one.
    """
    try:
        procs = list(nvml.nvmlDeviceGetComputeRunningProcesses(handle))
    except Exception as exc:
        return None, f"NVML process list unavailable ({type(exc).__name__})"

    def used(proc: Any) -> int | None:
        value = getattr(proc, "usedGpuMemory", None)
        return int(value) if isinstance(value, int) else None

    for proc in procs:
        if getattr(proc, "pid", None) == pid:
            return used(proc), PID_MATCH
    if len(procs) == 1:
        return used(procs[0]), ONLY_PROCESS
    return None, (
        f"this process's PID is not among the {len(procs)} on the device "
        "(a container's PID namespace?) and it cannot be told apart"
    )


def energy_mj(nvml: ModuleType, handle: Any) -> int | None:
    """Total energy the GPU has used since the driver loaded, in millijoules (Volta and later)."""
    try:
        return int(nvml.nvmlDeviceGetTotalEnergyConsumption(handle))
    except Exception:
        return None


ENERGY_MIN_WINDOW_S = 2.0  # an energy pass runs at least this long, budget permitting
ENERGY_MAX_WINDOW_S = 5.0  # ... and on, while its counter has updated too few times, to this
ENERGY_MIN_UPDATES = 10  # fewer counter updates in the window: energy is absent, not guessed
ENERGY_SAMPLE_EVERY_S = 0.002  # the pass's own reads of the counter between calls, at most


class EnergyTrace:
    """Readings of NVML's energy counter (monotonic, in mJ) with the time of each.

    The counter does not tick continuously: it is refreshed every ~20-100 ms (about 100 ms on
    A100/H100), so the difference of two reads a few ms apart is 0 or one whole refresh.
    `updates` counts the distinct refreshes seen; the energy of a window is the counter's
    rate between the first and the last refresh seen (both at refresh instants, so neither end
    is cut mid-interval) times the window."""

    def __init__(self) -> None:
        self.points: list[tuple[float, int]] = []
        self._values: set[int] = set()
        self._lock = threading.Lock()

    def add(self, t: float, mj: int | None) -> None:
        """A reading `mj` (None: NVML refused it) taken at or before time `t`."""
        if mj is not None:
            with self._lock:
                self.points.append((t, mj))
                self._values.add(mj)

    def _first_seen(self) -> list[tuple[float, int]]:
        """(time first seen, value) of each distinct reading, in value order."""
        with self._lock:
            points = list(self.points)
        first: dict[int, float] = {}
        for t, mj in points:
            first[mj] = min(t, first.get(mj, t))
        return sorted(((t, mj) for mj, t in first.items()), key=lambda p: p[1])

    @property
    def updates(self) -> int:
        """Refreshes of the counter seen (distinct readings less the first)."""
        return max(0, len(self._values) - 1)

    def summary(self, window_s: float) -> tuple[float | None, int, float | None, str | None]:
        """(joules over `window_s` or None, updates seen, observed update interval in s, why
        the energy is absent)."""
        seen = self._first_seen()
        updates = max(0, len(seen) - 1)
        if not seen:
            return None, 0, None, "NVML's energy counter could not be read (pre-Volta GPU?)"
        changes = seen[1:]  # the first reading was taken at an arbitrary point of an interval
        interval = None
        if len(changes) >= 2:
            span = changes[-1][0] - changes[0][0]
            interval = span / (len(changes) - 1) if span > 0 else None
        if updates < ENERGY_MIN_UPDATES:
            every = f", about every {interval * 1000:.0f} ms" if interval else ""
            return (
                None,
                updates,
                interval,
                (
                    f"the {window_s:.2g} s window held {updates} updates of NVML's energy counter"
                    f"{every}; at least {ENERGY_MIN_UPDATES} are needed to read energy from it"
                ),
            )
        (t0, e0), (t1, e1) = changes[0], changes[-1]
        if t1 <= t0:
            return None, updates, interval, "NVML's energy counter readings carried no time span"
        watts = (e1 - e0) / 1000.0 / (t1 - t0)
        return watts * window_s, updates, interval, None


class GpuMonitor:
    """Context manager: samples NVML device and process memory and the energy counter every
    `interval_s` while open; the pass that runs inside it may read the energy counter between
    its calls too (`read_energy`). The window is from entering to leaving (the caller
    synchronises the device on both sides, so it covers the GPU work)."""

    def __init__(
        self,
        nvml: ModuleType,
        handle: Any,
        interval_s: float = 0.01,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._nvml = nvml
        self._handle = handle
        self._interval = interval_s
        self.clock = clock
        self._pid = os.getpid()
        self._device: list[int] = []
        self._process: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._match: str | None = None
        self._started = 0.0
        self._last_energy_read = -math.inf
        self.energy = EnergyTrace()
        self.result: MonitorResult | None = None

    def read_energy(self, min_gap_s: float = 0.0) -> None:
        """One reading of the energy counter, unless the last one was under `min_gap_s` ago."""
        now = self.clock()
        if now - self._last_energy_read < min_gap_s:
            return
        self._last_energy_read = now
        mj = energy_mj(self._nvml, self._handle)
        self.energy.add(self.clock(), mj)  # the time after the read: never before the value

    def _sample(self, energy: bool = True) -> None:
        dev = used_bytes(self._nvml, self._handle)
        if dev is not None:
            self._device.append(dev)
        proc, self._match = process_memory(self._nvml, self._handle, self._pid)
        if proc is not None:
            self._process.append(proc)
        if energy:
            mj = energy_mj(self._nvml, self._handle)
            self.energy.add(self.clock(), mj)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self._interval)

    def __enter__(self) -> GpuMonitor:
        self._started = self.clock()
        self.read_energy()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        window = self.clock() - self._started
        self.read_energy()
        self._stop.set()
        self._thread.join()
        self._sample(energy=False)  # memory: at least one sample; energy: the window is over
        energy, updates, interval, why = self.energy.summary(window)
        self.result = MonitorResult(
            samples=max(len(self._device), len(self._process)),
            interval_s=self._interval,
            device_used_peak_bytes=max(self._device) if self._device else None,
            device_used_mean_bytes=statistics.fmean(self._device) if self._device else None,
            process_used_peak_bytes=max(self._process) if self._process else None,
            process_used_mean_bytes=statistics.fmean(self._process) if self._process else None,
            energy_joules=energy,
            process_match=self._match,
            window_s=window,
            energy_updates=updates,
            energy_update_interval_s=interval,
            energy_note=why,
        )


def energy_pass(
    monitor: Any,
    fn: Callable[[], object],
    limit_s: float,
    sync: Callable[[], None],
    clock: Callable[[], float] = time.perf_counter,
    sync_every_s: float = 0.25,
) -> int:
    """Back-to-back calls of `fn` inside `monitor` (a GpuMonitor): at least
    ENERGY_MIN_WINDOW_S, then on while the energy counter has updated fewer than
    ENERGY_MIN_UPDATES times, up to ENERGY_MAX_WINDOW_S (not when it cannot be read at all:
    pre-Volta GPUs have none); never past `limit_s` (the share of
    --time-budget left to this pass), so a short budget gives a short window, whose energy is
    then absent with the reason. At least one call. The device is synchronised before the
    window opens and before it closes, and every `sync_every_s` in between, so the launch
    queue never runs far ahead of the clock. Returns the calls made."""
    limit = max(0.0, limit_s)
    sync()
    calls = 0
    with monitor:
        started = last_sync = clock()
        while True:
            fn()
            calls += 1
            monitor.read_energy(ENERGY_SAMPLE_EVERY_S)
            now = clock()
            if now - last_sync >= sync_every_s:
                sync()
                last_sync = now = clock()
            elapsed = now - started
            readable = bool(monitor.energy.points)  # no reading at all: no point going on
            enough = elapsed >= ENERGY_MIN_WINDOW_S and (
                monitor.energy.updates >= ENERGY_MIN_UPDATES
                or elapsed >= ENERGY_MAX_WINDOW_S
                or not readable
            )
            if enough or elapsed >= limit:
                break
        sync()
    return calls
