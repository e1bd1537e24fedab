"""Machine classes: which reports' timings can be compared with each other.

A class is the part of the environment fingerprint that changes how fast (and how differently
fast) the two pipelines run: the device, the instruction set the CPU really has and the one torch
dispatches to, the threads, the torch build; for CUDA the GPU, its memory and the driver/CUDA/cuDNN
stack. Two reports of one class may be compared figure by figure; across classes only exact
metrics hold. Pure functions over the fingerprint dict: no torch here.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

CPU_CLASS_KEYS = (
    "machine",
    "cpu_model",
    "cpu_isa",
    "cpu_capability",
    "cpu_affinity_count",
    "num_threads",
    "torch",
)
CUDA_CLASS_KEYS = (
    "machine",
    "gpu_name",
    "gpu_memory_total_bytes",
    "driver",
    "cuda_runtime",
    "cudnn",
    "torch",
)
ID_HASH_CHARS = 8


def class_fields(env: dict[str, Any]) -> dict[str, Any]:
    """The fingerprint fields that define the machine class of a report's environment."""
    cuda = str(env.get("device") or "cpu").startswith("cuda")
    keys = CUDA_CLASS_KEYS if cuda else CPU_CLASS_KEYS
    return {"device_type": "cuda" if cuda else "cpu"} | {k: env.get(k) for k in keys}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:24].strip("-") or "unknown"


def class_id(env: dict[str, Any]) -> str:
    """A short stable id: readable prefix plus a hash of every class field.

    e.g. ``cpu-amd-epyc-avx512-bf16-2t-1a2b3c4d``; the hash changes when any class field does.
    """
    fields = class_fields(env)
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()
    if fields["device_type"] == "cuda":
        readable = f"cuda-{_slug(str(fields.get('gpu_name') or 'gpu'))}"
    else:
        isa = _slug(str(fields.get("cpu_isa") or "isa"))
        model = _slug(str(fields.get("cpu_model") or "cpu"))
        readable = f"cpu-{model}-{isa}-{fields.get('num_threads')}t"
    return f"{readable}-{digest[:ID_HASH_CHARS]}"


def describe(env: dict[str, Any]) -> str:
    """One line naming the class for people: what differs between two classes is visible."""
    fields = class_fields(env)
    if fields["device_type"] == "cuda":
        mem = fields.get("gpu_memory_total_bytes")
        mem_text = f"{mem / 2**30:.0f} GiB" if isinstance(mem, int | float) else "? GiB"
        return (
            f"{fields.get('gpu_name')} ({mem_text}), driver {fields.get('driver')}, "
            f"CUDA {fields.get('cuda_runtime')}, cuDNN {fields.get('cudnn')}, "
            f"torch {fields.get('torch')}"
        )
    return (
        f"{fields.get('cpu_model')}, ISA {fields.get('cpu_isa')} (torch dispatches "
        f"{fields.get('cpu_capability')}), {fields.get('cpu_affinity_count')} usable cores, "
        f"{fields.get('num_threads')} threads, torch {fields.get('torch')}"
    )


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """'key: a vs b' for every class field that differs between two environments."""
    fa, fb = class_fields(a), class_fields(b)
    keys = sorted(fa.keys() | fb.keys())
    return [f"{k}: {fa.get(k)} vs {fb.get(k)}" for k in keys if fa.get(k) != fb.get(k)]
