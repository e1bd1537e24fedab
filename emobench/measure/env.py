"""The environment fingerprint every report records."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
import torchvision

from emobench import __version__
from emobench.machine import class_id
from emobench.measure import nvml as nvml_mod

GIT_TIMEOUT_S = 2.0


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# Highest first: the instruction-set tier the CPU itself reports (not what torch dispatches to).
ISA_TIERS = (
    ("amx", ("amx_tile", "amx_bf16")),
    ("avx512-bf16", ("avx512_bf16",)),
    ("avx512", ("avx512f",)),
    ("avx2", ("avx2",)),
)


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


INT8_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")  # int8 dot-product instructions


def cpu_int8(flags: set[str]) -> list[str] | None:
    """The CPU's int8 dot-product instructions (VNNI, AMX): whether ONNX Runtime's int8 kernels
    can beat fp32 here depends on them. None where the flags are unknown."""
    if not flags:
        return None
    return [f for f in INT8_FLAGS if f in flags]


def cpu_isa(flags: set[str]) -> str | None:
    """The CPU's vector tier from its flags: amx, avx512-bf16, avx512, avx2, other; None unknown."""
    if not flags:
        return None
    for name, needed in ISA_TIERS:
        if all(f in flags for f in needed):
            return name
    return "other"


def cpu_capability() -> str:
    """The kernel tier torch dispatches to: AVX512, AVX2, DEFAULT (env ATEN_CPU_CAPABILITY)."""
    return str(torch.backends.cpu.get_cpu_capability())


def affinity_count() -> int | None:
    """Cores this process may run on (the container's share, not the host's)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count()


def git_commit() -> str | None:
    """The commit of the emobench source tree, when it is a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def gpu_fingerprint(device: torch.device) -> dict[str, Any]:
    """GPU name, memory and driver for a CUDA device; all None on CPU or without NVML."""
    info: dict[str, Any] = {
        "gpu_name": None,
        "gpu_memory_total_bytes": None,
        "driver": None,
        "gpu_uuid": None,
    }
    if device.type != "cuda":
        return info
    props = torch.cuda.get_device_properties(device)
    info["gpu_name"] = props.name
    info["gpu_memory_total_bytes"] = int(props.total_memory)
    info["gpu_uuid"] = str(props.uuid)
    nvml = nvml_mod.load_nvml()
    if nvml is not None:
        handle = nvml_mod.handle_for_uuid(nvml, info["gpu_uuid"])
        if handle is not None:
            found = nvml_mod.device_info(nvml, handle)
            info.update({k: v for k, v in found.items() if v is not None})
    return info


def fingerprint(device: torch.device) -> dict[str, Any]:
    cuda_ok = torch.cuda.is_available()
    cudnn = torch.backends.cudnn.version() if cuda_ok else None
    env = {
        "emobench": __version__,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity_count": affinity_count(),
        "cpu_isa": cpu_isa(cpu_flags()),
        "cpu_int8": cpu_int8(cpu_flags()),
        "cpu_capability": cpu_capability(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "cuda_runtime": torch.version.cuda,
        "cuda_available": cuda_ok,
        "cudnn": cudnn,
        "num_threads": torch.get_num_threads(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model(),
        **gpu_fingerprint(device),
    }
    env["machine_class"] = class_id(env)
    return env
