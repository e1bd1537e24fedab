"""Bad-input cases for finetune: options, data, checkpoints, resume (issue #26). Gathered by
tests/bad_inputs.py.

Every option check, --data's kind and contents, --out and the checkpoint folder are refused
before torch is imported; only a checkpoint's contents need torch to read."""

from __future__ import annotations

import os
from pathlib import Path

from tests.bad_input_base import Case, _c, png_header

FT = "finetune --data ft.csv"
# a run that would start at once (no pretrained weights to find): for the checkpoint cases
RUN = f"{FT} --backbone resnet18 --device cpu --no-pretrained"
NON_ASCII_DIGIT = "\u0663"  # ARABIC-INDIC DIGIT THREE: int() reads it as 3

CASES: tuple[Case, ...] = (
    # --nproc: a positive count that divides the global batch (refused before torch)
    _c(f"{FT} --nproc 0", "Invalid value for '--nproc'"),
    _c(f"{FT} --nproc -1", "Invalid value for '--nproc'"),
    _c(
        f"{FT} --nproc 3 --batch-size 64",
        "--batch-size: the global batch 64 does not divide across 3 processes; use a multiple of 3",
    ),
    # numbers: finite and in range, before the data is read
    _c(f"{FT} --lr 1e6", "--lr must be a finite number in (0, 10], got 1000000.0"),
    _c(f"{FT} --lr inf", "--lr must be a finite number in (0, 10], got inf"),
    _c(f"{FT} --lr nan", "--lr must be a finite number in (0, 10], got nan"),
    _c(f"{FT} --lr 0", "--lr must be a finite number in (0, 10], got 0.0"),
    _c(f"{FT} --weight-decay nan", "--weight-decay must be a finite number in [0, 10]"),
    _c(f"{FT} --weight-decay -1", "--weight-decay must be a finite number in [0, 10]"),
    _c(f"{FT} --label-smoothing nan", "--label-smoothing must be a finite number in [0, 1)"),
    _c(f"{FT} --seed -1", "--seed must be 0 to 4294967295"),
    _c(f"{FT} --seed 4294967296", "--seed must be 0 to 4294967295"),
    _c(f"{FT} --seed 99999999999999999999999", "--seed must be 0 to 4294967295"),
    _c(f"{FT} --seed 4294967295 --seeds 2", "runs seeds past 4294967295"),
    _c(f"{FT} --seeds 0", "--seeds must be 1 to 1,000"),
    _c(f"{FT} --epochs 0", "--epochs must be 1 to 100,000, got 0"),
    _c(f"{FT} --batch-size 0", "--batch-size must be 1 to 1,000,000, got 0"),
    _c(f"{FT} --batch-size 99999999999999999999", "--batch-size must be 1 to 1,000,000"),
    _c(f"{FT} --workers -1", "--workers must be 0 to 256, got -1"),
    _c(f"{FT} --target-acc nan", "--target-acc must be a finite number in (0, 1]"),
    _c(f"{FT} --val-fraction nan", "--val-fraction and --test-fraction must be finite"),
    _c(f"{FT} --test-fraction inf", "--val-fraction and --test-fraction must be finite"),
    # choices and the device
    _c(f"{FT} --precision fp8", "--precision fp8: choose fp32, fp16 or bf16"),
    _c(f"{FT} --device cpu --precision fp16", "fp16 needs a CUDA device"),
    _c(f"{FT} --device tpu", "unknown device 'tpu'"),
    _c(f"{FT} --optimizer rmsprop", "--optimizer rmsprop: choose sgd or adamw"),
    _c(f"{FT} --pipeline p224", "--pipeline p224: choose one of"),
    _c(f"{FT} --backbone alexnet", "unknown backbone 'alexnet'"),
    _c(f"{FT} --backbone nosuchmodule:build", "--backbone nosuchmodule:build: no module named"),
    # --data: special files wherever they sit, bounded reads, headers before decoding
    _c("finetune --data /dev/zero", "--data /dev/zero: is a character device"),
    _c("finetune --data fifo.csv", "--data fifo.csv: is a FIFO"),
    _c("finetune --data no/such.csv", "no such file or folder"),
    _c("finetune --data one.png", "is a single image"),
    _c("finetune --data ft-long.csv", "a line longer than"),
    _c("finetune --data ft-digit.csv", f"line 2 has emotion '{NON_ASCII_DIGIT}'"),
    _c("finetune --data ft-bomb-tree", "refused before decoding"),
    _c("finetune --data ft-fifo-tree", "x.png: is a FIFO"),
    _c("finetune --data ft-float-tree", "a floating-point grayscale image"),
    # outputs: never the input, never a file that is not a report without --force
    _c(f"{FT} --out ft.csv", "is one of this command's inputs"),
    _c(
        "finetune --data ft-bomb-tree --out ft-bomb-tree/a/big.png --force",
        "--out ft-bomb-tree/a/big.png: is one of this command's inputs",
    ),
    _c(f"{FT} --out notes.txt", "exists and is not an emobench report"),
    _c(f"{FT} --out folder", "--out folder: is a folder"),
    # the checkpoint folder
    _c(f"{FT} --checkpoint-dir ck-file", "--checkpoint-dir ck-file: is a regular file"),
    _c(f"{FT} --checkpoint-dir notes.txt/ck", "is not a folder"),
    _c(f"{FT} --resume --checkpoint-dir ck-empty", "no checkpoint to resume in ck-empty"),
    _c(f"{FT} --checkpoint-dir ck-held", "ck-held holds checkpoints of a run"),
    # a checkpoint's contents need torch to read
    _c(f"{RUN} --resume --checkpoint-dir ck-garbage", "not a readable checkpoint", True),
) + (
    # root writes anywhere: the read-only folder is only a refusal for anyone else
    (_c(f"{FT} --checkpoint-dir ck-readonly", "cannot write in ck-readonly"),)
    if os.geteuid() != 0
    else ()
)


def _fer_csv(path: Path) -> None:
    """28 synthetic images with a Usage column: every class in every split."""
    import numpy as np

    from emobench.data.labeled import synthetic_labeled, write_fer_csv

    images, labels = synthetic_labeled(28, seed=0)
    order = np.argsort(labels, kind="stable")
    usage = ["Training", "Training", "PublicTest", "PrivateTest"] * 7
    write_fer_csv(path, images[order], labels[order], usage)


def make_fixtures(folder: Path) -> None:
    """The files these cases name, under `folder` (the core fixtures are already there)."""
    import numpy as np
    from PIL import Image

    _fer_csv(folder / "ft.csv")
    pixels = " ".join(["0"] * 2304)
    (folder / "ft-digit.csv").write_text(
        f"emotion,pixels\n{NON_ASCII_DIGIT},{pixels}\n", encoding="utf-8"
    )
    (folder / "ft-long.csv").write_text("emotion,pixels\n0," + "1 " * 50_000 + "\n")
    for tree in ("ft-bomb-tree", "ft-fifo-tree", "ft-float-tree"):
        (folder / tree / "a").mkdir(parents=True)
    (folder / "ft-bomb-tree" / "a" / "big.png").write_bytes(png_header(20_000, 20_000))
    os.mkfifo(folder / "ft-fifo-tree" / "a" / "x.png")
    flat = np.zeros((48, 48), dtype=np.float32)
    Image.fromarray(flat, mode="F").save(folder / "ft-float-tree" / "a" / "f.tif")
    (folder / "ck-file").write_text("not a folder\n")
    (folder / "ck-empty").mkdir()
    (folder / "ck-held").mkdir()
    (folder / "ck-held" / "upscale224-seed0-state.pt").write_bytes(b"a checkpoint")
    (folder / "ck-garbage").mkdir()
    (folder / "ck-garbage" / "upscale224-seed0-state.pt").write_bytes(b"PK\x03\x04 truncated")
    (folder / "ck-readonly").mkdir()
    (folder / "ck-readonly").chmod(0o555)
