"""Devices: parse and resolve `--device`, the capability checks a run needs before any model is
built, and the backend settings (threads, cudnn.benchmark, TF32) applied and recorded.

torch is imported inside the functions: a bad `--device` is answered without importing it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from emobench.errors import DeviceUnavailable, UsageError

if TYPE_CHECKING:
    import torch

    from emobench.config import RunConfig


def check_device_options(config: RunConfig, device: torch.device) -> None:
    """Option combinations this device cannot run: UsageError before any model is built."""
    check_cuda_only_options(config, device.type)
    why = emulated_precision(config.precision, device)
    if why and not config.allow_emulated:
        raise UsageError(
            f"--precision {config.precision}: {why}, so it would be emulated (often 10-1000x "
            "slower than fp32, and not what this hardware would run in production). Use "
            "--precision fp32, or pass --allow-emulated to measure it anyway"
        )
    if config.compile != "none":
        reason = compile_unavailable(device)
        if reason:
            raise UsageError(f"--compile {config.compile}: {reason}")


def check_cuda_only_options(config: RunConfig, device_type: str) -> None:
    if device_type == "cuda":
        return
    if config.precision == "fp16":
        raise UsageError("--precision fp16 needs a CUDA device; on CPU use bf16 or fp32")
    if config.cudnn_benchmark or config.tf32:
        raise UsageError("--cudnn-benchmark and --tf32 apply to CUDA devices only")


CUDA_NATIVE = {"bf16": (8, 0), "fp16": (5, 3)}  # compute capability with native arithmetic


def _cpu_bf16_native() -> bool:
    """oneDNN's own check: bf16 kernels for this CPU (AVX-512 core / AVX512_BF16 / AMX)."""
    import torch

    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def emulated_precision(precision: str, device: torch.device) -> str | None:
    """Why `device` would only emulate `precision`, or None when it runs it natively."""
    if precision == "fp32":
        return None
    import torch

    if device.type == "cuda":
        needed = CUDA_NATIVE[precision]
        have = torch.cuda.get_device_capability(device)
        if tuple(have) < needed:
            name = torch.cuda.get_device_name(device)
            return (
                f"{name} is sm_{have[0]}{have[1]}; native {precision} needs "
                f"sm_{needed[0]}{needed[1]} or newer"
            )
        return None
    if precision == "bf16" and not _cpu_bf16_native():
        capability = torch.backends.cpu.get_cpu_capability()
        return f"this CPU has no native bf16 (torch dispatches {capability}; oneDNN: no bf16)"
    return None


def compile_unavailable(device: torch.device) -> str | None:
    """Why torch.compile cannot run here, or None when it can."""
    import importlib.util
    import shutil

    try:
        import torch
        import torch._dynamo

        if not torch._dynamo.is_dynamo_supported():
            return "torch.compile is not supported on this Python/platform"
    except Exception as exc:  # pragma: no cover - broken torch install
        return f"torch.compile is unavailable ({exc})"
    if device.type == "cuda" and importlib.util.find_spec("triton") is None:
        return "torch.compile on CUDA needs triton, which is not installed"
    if device.type == "cpu" and not (
        shutil.which("c++") or shutil.which("g++") or shutil.which("cc")
    ):
        return "torch.compile on CPU needs a C++ compiler (g++), none found on PATH"
    return None


def parse_device_spec(spec: str) -> tuple[str, int | None]:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' -> (kind, index); UsageError for anything else."""
    if spec in ("auto", "cpu", "cuda"):
        return spec, None
    kind, _, index = spec.partition(":")
    if kind == "cuda" and index.isdigit():
        return "cuda", int(index)
    raise UsageError(f"unknown device {spec!r}; use auto, cpu, cuda or cuda:N")


def resolve_device(spec: str) -> torch.device:
    """The torch device for a spec; DeviceUnavailable when CUDA or that GPU is missing."""
    kind, index = parse_device_spec(spec)
    import torch

    if kind == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if kind == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DeviceUnavailable(
            f"--device {spec}: CUDA is not available here "
            f"(torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}); "
            "use --device cpu or auto"
        )
    count = torch.cuda.device_count()
    index = index or 0
    if index >= count:
        raise DeviceUnavailable(f"--device {spec}: only {count} CUDA device(s) are visible")
    return torch.device("cuda", index)


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def cap_threads_to_usable_cores() -> None:
    """Cap torch's threads at the cores this process may use (a container or `taskset` share),
    so its OpenMP threads do not fight each other for fewer cores."""
    import torch

    cores = usable_cores()
    if torch.get_num_threads() > cores:
        torch.set_num_threads(cores)


def apply_backend_settings(config: RunConfig) -> dict[str, Any]:
    """Apply --threads, --cudnn-benchmark, --tf32; return the settings in force afterwards.

    Without --threads, torch's default is capped at the cores this process may use (a container
    or `taskset` share), so its OpenMP threads do not fight each other for fewer cores.
    """
    import torch

    if config.threads is not None:
        torch.set_num_threads(config.threads)
    elif torch.get_num_threads() > usable_cores():
        torch.set_num_threads(usable_cores())
    if config.cudnn_benchmark is not None:
        torch.backends.cudnn.benchmark = config.cudnn_benchmark
    if config.tf32 is not None:
        torch.backends.cuda.matmul.allow_tf32 = config.tf32
        torch.backends.cudnn.allow_tf32 = config.tf32
    return {
        "num_threads": torch.get_num_threads(),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
        "tf32_cudnn": bool(torch.backends.cudnn.allow_tf32),
        "omp_num_threads_env": os.environ.get("OMP_NUM_THREADS"),
        "usable_cores": usable_cores(),
    }


def cuda_total_bytes(device: torch.device) -> int:
    """The total memory of a CUDA device, in bytes."""
    import torch

    return int(torch.cuda.get_device_properties(device).total_memory)
