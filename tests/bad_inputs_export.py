"""Bad-input cases for `export` (issue 23). Gathered by tests/bad_inputs.py.

Every option, the checkpoint's kind (a FIFO, a device, a folder, an empty or text file), --data's
kind and both outputs are refused by the torch-free checks (scenarios/export.check_inputs),
before onnx, onnxruntime or torch is imported. A checkpoint whose bytes look like a torch.save
zip but are not one needs torch to read; it is refused inside the progress display, so its
stderr is two lines and it is not a case here (tests/cli/test_export.py).
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.bad_input_base import Case, _c

SURFACE = "export"
# a checkpoint that passes the torch-free checks (zip magic, regular, non-empty): the case
# stops at the option or path it names, and a missed check still fails on its contents
EX = "export ex-ck.pt --data ft.csv"


def _e(command: str, message: str) -> Case:
    return _c(command, message, surface=SURFACE)


CASES: tuple[Case, ...] = (
    # the checkpoint's kind, before torch reads it
    _e(
        "export ex-fifo.pt --data ft.csv --out ex.onnx",
        "checkpoint ex-fifo.pt: is a FIFO (named pipe), expected a regular file",
    ),
    _e(
        "export /dev/zero --data ft.csv --out ex.onnx",
        "checkpoint /dev/zero: is a character device, expected a regular file",
    ),
    _e(
        "export ex-folder.pt --data ft.csv --out ex.onnx",
        "checkpoint ex-folder.pt: is a folder, expected a regular file",
    ),
    _e(
        "export ex-empty.pt --data ft.csv --out ex.onnx",
        "checkpoint ex-empty.pt: is empty, not an emobench checkpoint",
    ),
    _e(
        "export ex-text.pt --data ft.csv --out ex.onnx",
        "checkpoint ex-text.pt: not an emobench checkpoint (not a torch.save file)",
    ),
    _e(
        "export ex-none.pt --data ft.csv --out ex.onnx", "checkpoint ex-none.pt: no such checkpoint"
    ),
    # --out: a regular file that is neither an input nor someone else's file
    _e(f"{EX} --out ex-fifo.onnx", "--out ex-fifo.onnx: is a FIFO (named pipe)"),
    _e(f"{EX} --out /dev/null", "--out /dev/null: is a character device"),
    _e(f"{EX} --out ex-out-folder", "--out ex-out-folder: is a folder, expected a file path"),
    # zip bytes that are no torch checkpoint: refused before any progress line (needs torch)
    _c(
        "export ex-ck.pt --data ft.csv --out ex-new.onnx",
        "checkpoint ex-ck.pt: not an emobench checkpoint",
        True,
        surface=SURFACE,
    ),
    _e(f"{EX} --out ex-ck.pt", "--out ex-ck.pt: is one of this command's inputs"),
    _e(f"{EX} --out ex-ck.pt --force", "--out ex-ck.pt: is one of this command's inputs"),
    _e(f"{EX} --out ft.csv --force", "--out ft.csv: is one of this command's inputs"),
    _e(
        f"{EX} --out ex-notes.onnx",
        "--out ex-notes.onnx: exists; pass --force to replace it (only an ONNX file emobench "
        "export wrote is replaced)",
    ),
    _e(f"{EX} --out notes.txt/ex.onnx", "--out notes.txt/ex.onnx: notes.txt is not a folder"),
    # --data's kind
    _e("export ex-ck.pt --data no/such.csv --out ex.onnx", "--data no/such.csv: no such file"),
    _e("export ex-ck.pt --data ex-fifo.csv --out ex.onnx", "--data ex-fifo.csv: is a FIFO"),
    _e("export ex-ck.pt --data /dev/zero --out ex.onnx", "--data /dev/zero: is a character device"),
    # the options
    _e(f"{EX} --out ex.onnx --quantize int4", "--quantize int4: choose int8"),
    _e(
        f"{EX} --out ex.onnx --runtime torch",
        "--runtime torch: torch makes no deployable file; export writes an ONNX file for "
        "--runtime onnxruntime",
    ),
    _e(f"{EX} --out ex.onnx --seed -1", "--seed must be 0 to 4294967295 (2**32 - 1), got -1"),
    _e(
        f"{EX} --out ex.onnx --val-fraction nan",
        "--val-fraction and --test-fraction must be finite numbers > 0",
    ),
)


def make_fixtures(folder: Path) -> None:
    """The files these cases name, under `folder` (the core and finetune fixtures, ft.csv and
    notes.txt among them, are already there)."""
    os.mkfifo(folder / "ex-fifo.pt")
    (folder / "ex-folder.pt").mkdir()
    (folder / "ex-empty.pt").write_bytes(b"")
    (folder / "ex-text.pt").write_text("not a checkpoint\n")
    (folder / "ex-ck.pt").write_bytes(b"PK\x03\x04 truncated")
    os.mkfifo(folder / "ex-fifo.onnx")
    (folder / "ex-out-folder").mkdir()
    (folder / "ex-notes.onnx").write_text("my notes, not an ONNX file\n")
    os.mkfifo(folder / "ex-fifo.csv")
