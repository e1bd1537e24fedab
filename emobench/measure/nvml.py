"""NVML access through nvidia-ml-py's `pynvml`, imported only when present.

Every function returns None when NVML, its driver or the device cannot be reached: a
measurement we cannot take is absent, never 0.
"""

from __future__ import annotations

import importlib
import os
import statistics
import threading
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


class GpuMonitor:
    """Context manager: samples NVML device and process memory every `interval_s` while open."""

    def __init__(self, nvml: ModuleType, handle: Any, interval_s: float = 0.01) -> None:
        self._nvml = nvml
        self._handle = handle
        self._interval = interval_s
        self._pid = os.getpid()
        self._device: list[int] = []
        self._process: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._energy_start: int | None = None
        self._match: str | None = None
        self.result: MonitorResult | None = None

    def _sample(self) -> None:
        dev = used_bytes(self._nvml, self._handle)
        if dev is not None:
            self._device.append(dev)
        proc, self._match = process_memory(self._nvml, self._handle, self._pid)
        if proc is not None:
            self._process.append(proc)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self._interval)

    def __enter__(self) -> GpuMonitor:
        self._energy_start = energy_mj(self._nvml, self._handle)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()  # at least one sample, even for a very short loop
        end = energy_mj(self._nvml, self._handle)
        energy = (
            (end - self._energy_start) / 1000.0
            if end is not None and self._energy_start is not None
            else None
        )
        self.result = MonitorResult(
            samples=max(len(self._device), len(self._process)),
            interval_s=self._interval,
            device_used_peak_bytes=max(self._device) if self._device else None,
            device_used_mean_bytes=statistics.fmean(self._device) if self._device else None,
            process_used_peak_bytes=max(self._process) if self._process else None,
            process_used_mean_bytes=statistics.fmean(self._process) if self._process else None,
            energy_joules=energy,
            process_match=self._match,
        )
