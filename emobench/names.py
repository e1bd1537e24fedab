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

# deployment runtimes: how a built pipeline's model is called (emobench.runtimes)
TORCH_RUNTIME = "torch"
ORT_RUNTIME = "onnxruntime"
RUNTIMES = (TORCH_RUNTIME, ORT_RUNTIME)
QUANTIZE_MODES = ("int8",)  # --quantize: ONNX Runtime static quantization (QDQ, per channel)


def variant_label(runtime: str, quantize: str | None = None, threads: int | None = None) -> str:
    """How a report names one runtime variant: "torch", "onnxruntime int8", "torch 1t"
    (a --threads sweep's count; without a sweep the run's threads are in the environment)."""
    label = runtime if quantize is None else f"{runtime} {quantize}"
    return label if threads is None else f"{label} {threads}t"
