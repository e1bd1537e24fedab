"""maxbatch's probe of an exported file in a fresh process: open it, run one batch, and report
the process's peak resident memory (torch-free, as a deployment that ships the file is).

Batch 0 opens the session only and reports the process's resident memory then: the fixed cost
(interpreter, runtime, weights) that the in-process fit cannot see. ONNX Runtime's CPU arena is
on, as a deployment runs it. Prints one JSON line in the shape maxbatch's torch child prints.
"""

from __future__ import annotations

import json
from typing import Any

from emobench.measure.search import ERROR, OK, OOM
from emobench.runtimes.ort_child import reset_peak, session_options, status_bytes

ENTRY = "emobench.runtimes.ort_batch:main"
ALLOCATION_FAILURES = ("failed to allocate memory", "bad_alloc", "std::bad_alloc")


def probe(args: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    import onnxruntime as ort

    opts = session_options(ort, args)
    session = ort.InferenceSession(
        args["path"], sess_options=opts, providers=["CPUExecutionProvider"]
    )
    batch = int(args["batch"])
    if batch == 0:
        rss = status_bytes("VmRSS")
        if rss is None:
            return {"outcome": ERROR, "message": "no /proc/self/status: RSS not readable here"}
        return {"outcome": OK, "peak_bytes": rss, "method": "VmRSS after the session"}
    size = int(args["input_size"])
    reset_peak()  # the run's peak, not the session creation's
    try:
        # written pages (np.zeros maps untouched pages to the shared zero page, outside RSS)
        x = np.full((batch, 3, size, size), 0.5, dtype=np.float32)
        session.run(None, {session.get_inputs()[0].name: x})
    except Exception as exc:  # the runtime's own allocation failure is "out of memory"
        text = f"{type(exc).__name__}: {str(exc).strip()[:200]}"
        failed = isinstance(exc, MemoryError) or any(
            m in str(exc).lower() for m in ALLOCATION_FAILURES
        )
        kind = OOM if failed else ERROR
        return {"outcome": kind, "message": text}
    peak = status_bytes("VmHWM")
    if peak is None:
        return {"outcome": ERROR, "message": "no /proc/self/status: peak RSS not readable here"}
    return {"outcome": OK, "peak_bytes": peak, "method": "VmHWM"}


def main(raw: str) -> None:
    print(json.dumps(probe(json.loads(raw))), flush=True)
