"""Torch-free names every layer shares: the two pipelines, their input sizes, modes, precisions
and where results go. Defined once here so no module copies them to avoid importing torch."""

from __future__ import annotations

from pathlib import Path

UPSCALE = "upscale224"
DIRECT = "direct48"
PIPELINE_NAMES = (UPSCALE, DIRECT)
INPUT_SIZES = {UPSCALE: 224, DIRECT: 48}  # the side of the square input each pipeline's model takes
SOURCE_SIZE = 48  # FER2013-style source images are 48x48 grayscale
DEFAULT_NUM_CLASSES = 7

MODES = ("infer", "train")
RUN_MODES = (*MODES, "both")
PRECISIONS = ("fp32", "fp16", "bf16")
COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune")

RESULTS_DIR = Path("results")
BASELINE_DIR = RESULTS_DIR / "baselines"
FINETUNE_DIR = RESULTS_DIR / "finetune"

PLUGIN_GROUP = "emobench.backbones"  # the entry-point group of plugin backbones
TIMING_KINDS = ("compare", "run")  # the report kinds that hold timings: compared, checked, merged
