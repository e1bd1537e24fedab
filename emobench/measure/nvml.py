"""NVML access through nvidia-ml-py's `pynvml`, imported only when present.

Every function returns None when NVML, its driver or the device cannot be reached: a
measurement we cannot take is absent, never 0.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


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
