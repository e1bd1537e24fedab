"""Devices: parse and resolve `--device`, the capability checks a run needs before any model is
built, and the backend settings (threads, cudnn.benchmark, TF32) applied and recorded.

torch is imported inside the functions: a bad `--device` is answered without importing it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
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
        set_tf32(config.tf32)
    tf32 = tf32_state()
    return {
        "num_threads": torch.get_num_threads(),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "tf32_matmul": tf32["matmul"],  # cuBLAS matmuls (nn.Linear) may run TF32
        "tf32_cudnn": tf32["conv"],  # cuDNN convolutions may run TF32
        "tf32_api": tf32_api(),
        "omp_num_threads_env": os.environ.get("OMP_NUM_THREADS"),
        "usable_cores": usable_cores(),
    }


# TF32 on CUDA: matmuls (cuBLAS) and convolutions (cuDNN) are separate switches. torch 2.9 and
# later set them through `fp32_precision` ("tf32", "ieee", or "none": inherit the parent's);
# the older `allow_tf32` flags are deprecated there, and once the new API has set a switch,
# reading the old flag of that switch raises. Everything here goes through the new API where
# torch has it, through `allow_tf32` where it does not.
FP32_PRECISION = "fp32_precision"
ALLOW_TF32 = "allow_tf32"


def tf32_api() -> str:
    """Which API sets TF32 in this torch: FP32_PRECISION (torch >= 2.9) or ALLOW_TF32."""
    import torch

    conv = getattr(torch.backends.cudnn, "conv", None)
    new = hasattr(torch.backends.cuda.matmul, FP32_PRECISION) and hasattr(conv, FP32_PRECISION)
    return FP32_PRECISION if new else ALLOW_TF32


def _resolved(*chain: str) -> bool:
    """The first setting of `chain` (the op's own, then its parents') that is not "none"."""
    return next((p for p in chain if p != "none"), "ieee") == "tf32"


def tf32_state() -> dict[str, bool]:
    """Whether CUDA fp32 matmuls and convolutions may run TF32 now: {"matmul", "conv"}. What
    runs TF32 needs an sm_80 or newer GPU besides (`tf32_note`)."""
    import torch

    b = torch.backends
    if tf32_api() == ALLOW_TF32:
        return {"matmul": bool(b.cuda.matmul.allow_tf32), "conv": bool(b.cudnn.allow_tf32)}
    parents = (b.cudnn.fp32_precision, getattr(b, FP32_PRECISION, "none"))
    return {
        "matmul": _resolved(b.cuda.matmul.fp32_precision, *parents),
        "conv": _resolved(getattr(b.cudnn, "conv").fp32_precision, *parents),  # noqa: B009
    }


def set_tf32(allowed: bool, matmul: bool = True, conv: bool = True) -> None:
    """Allow (or forbid) TF32 for CUDA fp32 matmuls and/or convolutions."""
    import torch

    b = torch.backends
    if tf32_api() == ALLOW_TF32:
        if matmul:
            b.cuda.matmul.allow_tf32 = allowed
        if conv:
            b.cudnn.allow_tf32 = allowed
        return
    mode = "tf32" if allowed else "ieee"
    if matmul:
        b.cuda.matmul.fp32_precision = mode
    if conv:
        getattr(b.cudnn, "conv").fp32_precision = mode  # noqa: B009 (untyped in torch's stubs)
        # cuDNN's RNN flag follows, so the two cuDNN switches never disagree (torch's legacy
        # cudnn.allow_tf32 getter refuses a mix; on torch 2.14 it also refuses "ieee" for both)
        rnn = getattr(b.cudnn, "rnn", None)
        if rnn is not None:
            rnn.fp32_precision = mode


@contextmanager
def matmul_tf32(allowed: bool | None) -> Iterator[None]:
    """CUDA fp32 matmuls in TF32 (True) or IEEE fp32 (False) inside the block, through the API
    this torch wants; the setting before is restored. None: leave it alone."""
    if allowed is None:
        yield
        return
    import torch

    b = torch.backends
    new = tf32_api() == FP32_PRECISION
    before = b.cuda.matmul.fp32_precision if new else b.cuda.matmul.allow_tf32
    set_tf32(allowed, conv=False)
    try:
        yield
    finally:
        if new:
            b.cuda.matmul.fp32_precision = before
        else:
            b.cuda.matmul.allow_tf32 = before


def tf32_note(in_force: dict[str, Any], precision: str, device: torch.device) -> str | None:
    """Which ops ran TF32, for a CUDA run's notes; None off CUDA."""
    if device.type != "cuda":
        return None
    import torch

    api = in_force.get("tf32_api", ALLOW_TF32)
    names = (
        ("cudnn.conv.fp32_precision", "cuda.matmul.fp32_precision")
        if api == FP32_PRECISION
        else ("cudnn.allow_tf32", "cuda.matmul.allow_tf32")
    )
    parts = []
    for label, key, name in (
        ("convolutions", "tf32_cudnn", names[0]),
        ("matmuls", "tf32_matmul", names[1]),
    ):
        on = bool(in_force.get(key))
        parts.append(f"{label} {'TF32' if on else 'IEEE fp32'} ({name}: {on})")
    major, minor = torch.cuda.get_device_capability(device)
    if (major, minor) < (8, 0):
        return (
            f"TF32: none: this GPU is sm_{major}{minor} and TF32 needs sm_80; every fp32 op ran "
            f"in IEEE fp32 (switches: {', '.join(parts)})"
        )
    where = (
        "fp32 ops"
        if precision == "fp32"
        else f"the ops autocast leaves in fp32 (the rest run in {precision})"
    )
    return f"TF32 on {where}: {'; '.join(parts)}"


def device_scope(device: torch.device) -> AbstractContextManager[Any]:
    """Make `device` current while the block runs (CUDA): streams, events, allocations, a
    DataLoader's pin-memory thread (it pins for the device current when its iterator is made)
    and library handles default to the current device, so on cuda:1 nothing touches cuda:0."""
    if device.type == "cuda":
        import torch

        return torch.cuda.device(device)
    return nullcontext()


def cuda_total_bytes(device: torch.device) -> int:
    """The total memory of a CUDA device, in bytes."""
    import torch

    return int(torch.cuda.get_device_properties(device).total_memory)
