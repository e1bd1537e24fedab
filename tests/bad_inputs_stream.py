"""Bad-input cases for `stream` (issue 24). Gathered by tests/bad_inputs.py.

Each is one error line and exit 2 from the torch-free checks (StreamConfig.validate, the
device's spelling, LoadGen's presence, the output paths), before torch is imported or any
model is built. LoadGen missing from the install is simulated in a fresh interpreter:
tests/cli/test_stream.py.
"""

from __future__ import annotations

from pathlib import Path

from tests.bad_input_base import Case, _c

SURFACE = "stream"


def _s(command: str, message: str) -> Case:
    return _c(command, message, surface=SURFACE)


CASES: tuple[Case, ...] = (
    # the camera's rate and the deadline
    _s("stream --fps 0", "--fps must be a finite number > 0, got 0.0"),
    _s("stream --fps -1", "--fps must be a finite number > 0, got -1.0"),
    _s("stream --fps nan", "--fps must be a finite number > 0, got nan"),
    _s("stream --fps inf", "--fps must be a finite number > 0, got inf"),
    _s("stream --deadline-ms 0", "--deadline-ms must be a finite number > 0, got 0.0"),
    _s("stream --deadline-ms nan", "--deadline-ms must be a finite number > 0, got nan"),
    _s("stream --batch-window-ms 40", "--batch-window-ms 40 is not shorter than the deadline"),
    _s(
        "stream --fps 100 --batch-window-ms 10",
        "--batch-window-ms 10 is not shorter than the deadline (10 ms)",
    ),
    _s("stream --batch-window-ms nan", "--batch-window-ms must be a finite number >= 0"),
    _s("stream --faces-per-frame 0", "--faces-per-frame must be >= 1, got 0"),
    # scenarios, runtime, batching, budget
    _s(
        "stream --scenario batch",
        "unknown scenario 'batch'; choose one of: single-stream, multi-stream, server, offline",
    ),
    _s("stream --scenario server --scenario server", "--scenario given twice: server, server"),
    _s("stream --runtime tflite", "unknown runtime 'tflite'; choose one of: torch, onnxruntime"),
    _s("stream --max-batch 0", "--max-batch must be >= 1, got 0"),
    _s("stream --time-budget 0", "--time-budget must be a finite number > 0, got 0.0"),
    _s("stream --probe-s inf", "--probe-s must be a finite number > 0, got inf"),
    _s("stream --probe-s nan", "--probe-s must be a finite number > 0, got nan"),
    _s("stream --probe-s 0", "--probe-s must be a finite number > 0, got 0.0"),
    _s("stream --max-streams -1", "--max-streams must be >= 1, got -1"),
    _s("stream --threads -1", "--threads must be >= 1, got -1"),
    _s("stream --max-streams 0", "--max-streams must be >= 1, got 0"),
    _s("stream --mlperf", "--mlperf runs each LoadGen test for at least 600 s"),
    _s("stream --mlperf --time-budget 300", "--time-budget 300 s cannot hold one"),
    _s("stream --threads 0", "--threads must be >= 1, got 0"),
    _s("stream --seed -1", "--seed must be >= 0, got -1"),
    # the model and the device
    _s("stream --backbone alexnet", "unknown backbone 'alexnet'"),
    _s("stream --device tpu", "unknown device 'tpu'"),
    # outputs: the report and LoadGen's log folder beside it
    _s("stream --out stream-notes.txt", "exists and is not an emobench report"),
    _s("stream --out stream-folder", "--out stream-folder: is a folder"),
    _s("stream --out stream-logs.json", "stream-logs.loadgen (beside --out): it holds files"),
    _s("stream --out stream-file-logs.json", "it exists and is not a folder"),
)


def make_fixtures(folder: Path) -> None:
    """The files these cases name, under `folder` (the working folder they run in)."""
    (folder / "stream-notes.txt").write_text("my notes, not a report\n")
    (folder / "stream-folder").mkdir()
    (folder / "stream-logs.loadgen").mkdir()
    (folder / "stream-logs.loadgen" / "mine.txt").write_text("not LoadGen's\n")
    (folder / "stream-file-logs.loadgen").write_text("a file where the logs would go\n")
