"""Bad-input cases for runtime variants: --runtime, --quantize, a --threads sweep (issue 23).
Gathered by tests/bad_inputs.py.

ONNX Runtime runs the exported fp32 file (and its int8 file): it cannot honour torch.compile,
training, autocast precisions or channels-last, and maxbatch measures it on the CPU only. Each
is one error line and exit 2 from the torch-free option checks, before anything is exported.
A CUDA device without the CUDA execution provider, or onnxruntime not installed, is refused in
the runner's preflight: tests/scenarios/test_compare_runtimes.py.
"""

from __future__ import annotations

from pathlib import Path

from tests.bad_input_base import Case, _c

SURFACE = "runtimes"


def _r(command: str, message: str) -> Case:
    return _c(command, message, surface=SURFACE)


CASES: tuple[Case, ...] = (
    # what ONNX Runtime cannot honour
    _r(
        "compare --runtime onnxruntime --compile default",
        "--runtime onnxruntime runs the exported file, not torch.compile: drop --compile default",
    ),
    _r(
        "compare --runtime onnxruntime --mode train",
        "--runtime onnxruntime measures inference only (an ONNX file does not train)",
    ),
    _r("compare --runtime torch --runtime onnxruntime --mode both", "use --mode infer"),
    _r(
        "compare --runtime onnxruntime --precision bf16",
        "not --precision bf16: use --precision fp32",
    ),
    _r(
        "compare --runtime onnxruntime --precision fp16",
        "not --precision fp16: use --precision fp32",
    ),
    _r(
        "compare --runtime onnxruntime --channels-last",
        "--channels-last applies to --runtime torch only",
    ),
    # the runtimes, the quantization, the thread sweep
    _r("compare --runtime tflite", "unknown runtime 'tflite'; choose one of: torch, onnxruntime"),
    _r("compare --runtime torch --runtime torch", "--runtime given twice: torch, torch"),
    _r("compare --quantize int8", "--quantize int8 needs --runtime onnxruntime"),
    _r(
        "compare --runtime onnxruntime --quantize int4",
        "unknown quantize 'int4'; choose one of: int8",
    ),
    _r("compare --threads 1 --threads 0", "--threads must be >= 1, got 0"),
    _r("compare --threads 2 --threads 2", "--threads given the same count twice: 2, 2"),
    # maxbatch: inference, on the CPU
    _r(
        "maxbatch --runtime onnxruntime --mode train",
        "--runtime onnxruntime measures inference only",
    ),
    _r(
        "maxbatch --runtime onnxruntime --device cuda",
        "maxbatch --runtime onnxruntime measures the CPU",
    ),
    _r("maxbatch --runtime onnxruntime --runtime onnxruntime", "--runtime given twice"),
    # a suite file
    _r(
        "run runtime-compile-suite.toml",
        "runtime-compile-suite.toml: --runtime onnxruntime runs the exported file, not "
        "torch.compile",
    ),
    _r("run runtime-types-suite.toml", "key 'thread_counts' must be a list of integers"),
)


def make_fixtures(folder: Path) -> None:
    """The suite files these cases name, under `folder` (the working folder they run in)."""
    suite = '[suite]\nbackbones = ["vgg16"]\ndevice = "cpu"\nbatch_sizes = [2]\n'
    (folder / "runtime-compile-suite.toml").write_text(
        suite + 'runtimes = ["onnxruntime"]\ncompile = "default"\n'
    )
    (folder / "runtime-types-suite.toml").write_text(
        suite + 'runtimes = ["onnxruntime"]\nthread_counts = [1, "2"]\n'
    )
