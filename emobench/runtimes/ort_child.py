"""A fresh process's start of an exported file: session creation, the first batch-1 inference
and the process's peak resident memory (run through launchers.child by the scenarios).

Imports onnxruntime and numpy only, never torch: a deployment that ships the file does not
carry torch, and torch's ~800 MB would swamp the figure (`torch_imported` in the output says
it stayed out). Prints one JSON line.

The peak is the process's own high-water mark (Linux: `VmHWM` in /proc/self/status), not
`getrusage`'s `ru_maxrss`: Linux carries that across `exec` from the process that forked the
child, so a child of a 2 GB benchmark would report at least 2 GB whatever it used.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from typing import Any

ENTRY = "emobench.runtimes.ort_child:main"
GRAPH_LEVELS = {  # the names OrtSettings.graph_optimization uses -> ORT's enum member
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}
EXECUTION_MODES = {"sequential": "ORT_SEQUENTIAL", "parallel": "ORT_PARALLEL"}


PROC_STATUS = "/proc/self/status"


def _status_kib(field: str) -> int | None:
    """A `kB` field of /proc/self/status (Linux), in KiB; None where there is none."""
    try:
        with open(PROC_STATUS) as f:
            for line in f:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def status_bytes(field: str) -> int | None:
    """A `kB` field of /proc/self/status in bytes; None where there is none."""
    kib = _status_kib(field)
    return None if kib is None else kib * 1024


def reset_peak() -> None:
    """Reset the kernel's peak-RSS counter (Linux >= 4.0), where that is allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _rss_bytes() -> int:
    """This process's resident memory now (Linux /proc; else the high-water mark)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return _peak_bytes()


def _peak_bytes() -> int:
    """This process's peak resident memory: its own VmHWM on Linux; elsewhere ru_maxrss
    (bytes on macOS, KiB on Linux)."""
    hwm = _status_kib("VmHWM")
    if hwm is not None:
        return hwm * 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) * (1 if sys.platform == "darwin" else 1024)


SPIN_STOP_KEY = "session.force_spinning_stop"


def session_options(ort: Any, settings: dict[str, Any]) -> Any:
    """ONNX Runtime's SessionOptions from emobench's settings (runtimes.onnx.OrtSettings's
    fields): the one place every session emobench opens (the run's, a fresh process's,
    maxbatch's) gets its options, so all of them run alike. Torch-free. The intra-op pool
    spins while a run lasts and stops when it returns: idle spinning would take cores from
    torch's preprocessing, from the other pipeline's session in the paired loops and from a
    fresh process timing its cold start. `cpu_arena` False: the CPU memory arena off
    (maxbatch's in-process fit, so each probe's memory is freed after it)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(settings["intra_op_threads"])
    opts.inter_op_num_threads = int(settings.get("inter_op_threads", 1))
    level = GRAPH_LEVELS[settings.get("graph_optimization", "all")]
    opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    mode = EXECUTION_MODES[settings.get("execution_mode", "sequential")]
    opts.execution_mode = getattr(ort.ExecutionMode, mode)
    opts.log_severity_level = 3  # errors only: its warnings are not ours to print
    opts.add_session_config_entry(SPIN_STOP_KEY, "1")
    if not settings.get("cpu_arena", True):
        opts.enable_cpu_mem_arena = False
    return opts


def measure(argument: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    import onnxruntime as ort

    base = _rss_bytes()
    opts = session_options(ort, argument)
    device = str(argument["device"])
    providers: list[Any] = ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        index = device.partition(":")[2] or "0"
        cuda: dict[str, str] = {"device_id": index}
        if argument.get("use_tf32") is not None:
            cuda["use_tf32"] = "1" if argument["use_tf32"] else "0"
        providers = [("CUDAExecutionProvider", cuda), "CPUExecutionProvider"]
    size = int(argument["input_size"])
    x = np.full((1, 3, size, size), 0.5, dtype=np.float32)  # written pages, as a real input
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
        "torch_imported": "torch" in sys.modules,
    }


def main(argument: str) -> None:
    print(json.dumps(measure(json.loads(argument))), flush=True)
