"""A fresh process's start of an exported file: session creation, the first batch-1 inference
and the process's peak resident memory (run through launchers.child by the scenarios).

Imports onnxruntime and numpy only, never torch: a deployment that ships the file does not
carry torch, and torch's ~800 MB would swamp the figure. Prints one JSON line.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from typing import Any

ENTRY = "emobench.runtimes.ort_child:main"


def _rss_bytes() -> int:
    """This process's resident memory now (Linux /proc; else the high-water mark)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        import os

        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return _peak_bytes()


def _peak_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) * (1 if sys.platform == "darwin" else 1024)  # bytes on macOS, KiB on Linux


def measure(argument: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    import onnxruntime as ort

    base = _rss_bytes()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(argument["intra_op_threads"])
    opts.inter_op_num_threads = int(argument["inter_op_threads"])
    levels = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    opts.graph_optimization_level = levels[argument["graph_optimization"]]
    opts.log_severity_level = 3
    device = str(argument["device"])
    providers: list[Any] = ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        index = device.partition(":")[2] or "0"
        providers = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
    size = int(argument["input_size"])
    x = np.zeros((1, 3, size, size), dtype=np.float32)
    started = time.perf_counter()
    session = ort.InferenceSession(argument["path"], sess_options=opts, providers=providers)
    created = time.perf_counter()
    session.run(None, {session.get_inputs()[0].name: x})
    done = time.perf_counter()
    return {
        "session_create_ms": (created - started) * 1e3,
        "first_infer_ms": (done - created) * 1e3,
        "peak_rss_bytes": _peak_bytes(),
        "base_rss_bytes": base,
        "providers": session.get_providers(),
    }


def main(argument: str) -> None:
    print(json.dumps(measure(json.loads(argument))), flush=True)
