"""ONNX Runtime: a built pipeline's model exported to ONNX, checked against torch eager, made
int8 on request, and called through an `onnxruntime.InferenceSession`.

What is inside the file: the model only, from the float (N, 3, S, S) input the pipelines'
preprocessing produces to the (N, classes) logits. Preprocessing (PIL per image, or the batched
tensor path) runs in torch exactly as in the torch pipelines, so preprocessing and end-to-end
figures stay comparable between runtimes; only the model call differs. The batch axis is
dynamic: one file serves every batch size.

Export: `torch.onnx.export(dynamo=True)` (torch.export-based) first, and the TorchScript
exporter when that fails; the report records which one and the opset. The dynamo exporter keeps
the weights in `<file>.data` beside the file; under 1.9 GiB (every registered backbone) they
are folded back into one self-contained file. The file size counts whatever is on disk.

`OrtPipeline` is a `runtimes.torch.Pipeline` whose forward is the session: the measuring code
calls it as it calls the torch pipeline (same loops, pairing, stopping rule), and the torch
model the file came from stays for parameter and FLOP counts. On CUDA the inputs and outputs
stay on the device through I/O binding, and the CUDA execution provider runs on torch's current
stream, so CUDA-event timers bracket its kernels as they bracket torch's.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from emobench.errors import MeasurementError, ModelError, UsageError
from emobench.names import ORT_RUNTIME
from emobench.results.measurements import Deployment, Parity
from emobench.runtimes.torch import Pipeline

if TYPE_CHECKING:
    import onnxruntime

PARITY_TOLERANCE = 1e-4  # fp32: max |logit difference| <= 1e-4 x the largest |logit| (>= 1)
PARITY_BATCH = 8  # probe images (the run's own preprocessed inputs)
EXPORT_BATCH = 2  # the example batch of the export: not 1, which torch.export would specialise
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
INSIDE_GRAPH = (
    "the model only: float (N, 3, S, S) normalised input to (N, classes) logits; "
    "preprocessing runs in torch as in the torch pipelines"
)
SINGLE_FILE_BYTES = 1900 * 2**20  # protobuf's 2 GiB limit, less a margin: larger stays split
CALIBRATION_IMAGES = 64  # the most images static quantization calibrates on
GRAPH_LEVELS = ("disable", "basic", "extended", "all")
CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"
MISSING = (
    f"--runtime {ORT_RUNTIME} needs the onnxruntime package (and onnx, onnxscript to export): "
    "pip install onnxruntime onnx onnxscript (on a CUDA device: onnxruntime-gpu)"
)


class ExportError(ModelError):
    """The exporter (or the parity check after it) failed for one pipeline: that pipeline's
    error in the report, the other pipeline still measured."""


def import_ort() -> Any:
    """The onnxruntime module, or one UsageError line naming what to install."""
    try:
        import onnxruntime
    except ImportError:
        raise UsageError(MISSING) from None
    return onnxruntime


def check_available(device: torch.device) -> None:
    """What --runtime onnxruntime needs on `device`: the packages, and on CUDA the CUDA
    execution provider (the CPU-only wheel lacks it). A UsageError before anything is exported."""
    ort = import_ort()
    for module in ("onnx", "onnxscript"):
        try:
            __import__(module)
        except ImportError:
            raise UsageError(MISSING) from None
    if device.type == "cuda" and CUDA_PROVIDER not in ort.get_available_providers():
        raise UsageError(
            f"--runtime {ORT_RUNTIME} on {device}: this onnxruntime ({ort.__version__}) has no "
            f"{CUDA_PROVIDER} (available: {', '.join(ort.get_available_providers())}); "
            "install onnxruntime-gpu in place of onnxruntime, or use --device cpu"
        )


@dataclass(frozen=True)
class OrtSettings:
    """The session settings in force, recorded in the report (`Deployment.settings`)."""

    intra_op_threads: int
    inter_op_threads: int = 1
    graph_optimization: str = "all"  # ORT_ENABLE_ALL
    execution_mode: str = "sequential"
    device: str = "cpu"  # "cpu" or "cuda:N"

    def session_options(self, ort: Any) -> Any:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.intra_op_threads
        opts.inter_op_num_threads = self.inter_op_threads
        opts.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[self.graph_optimization]
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3  # errors only: its warnings are not ours to print
        return opts

    def providers(self) -> list[Any]:
        if not self.device.startswith("cuda"):
            return [CPU_PROVIDER]
        index = int(self.device.partition(":")[2] or 0)
        options = {"device_id": str(index)}
        if torch.cuda.is_available():
            # ORT's kernels on torch's current stream: CUDA events recorded on it bracket them
            options["user_compute_stream"] = str(torch.cuda.current_stream(index).cuda_stream)
        return [(CUDA_PROVIDER, options), CPU_PROVIDER]

    def record(self, ort: Any, session: Any | None = None) -> dict[str, Any]:
        """The settings as the report keeps them (the providers the session really uses)."""
        used = list(session.get_providers()) if session is not None else None
        return {
            "onnxruntime": ort.__version__,
            "providers": used,
            "intra_op_threads": self.intra_op_threads,
            "inter_op_threads": self.inter_op_threads,
            "graph_optimization": self.graph_optimization,
            "execution_mode": self.execution_mode,
        }

    def as_child(self) -> dict[str, Any]:
        """What a fresh process needs to open the file the same way (runtimes.ort_child)."""
        return {
            "intra_op_threads": self.intra_op_threads,
            "inter_op_threads": self.inter_op_threads,
            "graph_optimization": self.graph_optimization,
            "device": self.device,
        }


def open_session(path: Path, settings: OrtSettings) -> Any:
    """An InferenceSession on `path`; on CUDA, refused when ORT fell back to the CPU (it does
    so silently when the CUDA libraries it needs are missing)."""
    ort = import_ort()
    session = ort.InferenceSession(
        str(path), sess_options=settings.session_options(ort), providers=settings.providers()
    )
    if settings.device.startswith("cuda") and session.get_providers()[0] != CUDA_PROVIDER:
        raise MeasurementError(
            f"onnxruntime opened {path.name} on {', '.join(session.get_providers())}, not "
            f"{CUDA_PROVIDER}: its CUDA libraries (cuDNN, cuBLAS) did not load"
        )
    return session


def file_bytes(path: Path) -> int:
    """The file and its external data (`<name>.data` and any other file the exporter wrote
    beside it with its name as prefix), in bytes."""
    return sum(p.stat().st_size for p in path.parent.glob(f"{path.name}*") if p.is_file())


def _quiet() -> contextlib.ExitStack:
    """Silence the exporters' progress lines and warnings (they print to stdout)."""
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    names = ("", "torch.onnx", "torch.export", "onnxscript", "torch._dynamo", "torch.fx")
    for name in names:  # "": the root logger, where the quantizer writes its advice
        logger = logging.getLogger(name)
        level = logger.level
        logger.setLevel(logging.ERROR)
        stack.callback(logger.setLevel, level)
    return stack


def _first_line(exc: BaseException) -> str:
    for line in str(exc).splitlines():
        if line.strip() and not line.strip().startswith(("[", "#")):
            return f"{type(exc).__name__}: {line.strip()[:240]}"
    return type(exc).__name__


def export_model(model: torch.nn.Module, example: Tensor, path: Path) -> tuple[str, int]:
    """Write `model` to `path` as ONNX with a dynamic batch axis: (exporter, opset). The dynamo
    exporter first; the TorchScript exporter when it fails; ExportError (the first exporter's
    first message) when both do."""
    import onnx

    model.eval()
    errors = []
    with _quiet(), torch.no_grad():
        try:
            batch = torch.export.Dim("batch")
            torch.onnx.export(
                model,
                (example,),
                str(path),
                dynamo=True,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes=({0: batch},),
                verbose=False,
            )
            exporter = "dynamo"
        except Exception as exc:
            errors.append(exc)
            for stale in path.parent.glob(f"{path.name}*"):
                stale.unlink()
            try:
                torch.onnx.export(
                    model,
                    (example,),
                    str(path),
                    dynamo=False,
                    input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME],
                    dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                )
                exporter = "torchscript"
            except Exception as fallback:
                errors.append(fallback)
                raise ExportError(f"ONNX export failed: {_first_line(errors[0])}") from errors[0]
    if file_bytes(path) < SINGLE_FILE_BYTES:
        # one self-contained file: what a deployment copies, and what the quantizer can read
        proto = onnx.load(str(path))
        for stale in path.parent.glob(f"{path.name}?*"):
            stale.unlink()
        onnx.save_model(proto, str(path), save_as_external_data=False)
    proto = onnx.load(str(path), load_external_data=False)
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    return exporter, int(opset)


class OrtCall:
    """The session as a forward: a float tensor in, a float tensor out, on the input's device."""

    def __init__(self, session: Any, num_classes: int) -> None:
        self.session = session
        self.num_classes = num_classes
        self.input = session.get_inputs()[0].name
        self.output = session.get_outputs()[0].name

    def __call__(self, x: Tensor) -> Tensor:
        if x.device.type == "cuda":
            return self._bound(x)
        x = x.detach()
        if x.dtype != torch.float32 or not x.is_contiguous():
            x = x.float().contiguous()
        out = self.session.run([self.output], {self.input: x.numpy()})[0]
        return torch.from_numpy(out)

    def _bound(self, x: Tensor) -> Tensor:
        """CUDA: input and output bound to device memory (no host round trip)."""
        x = x.detach().float().contiguous()
        out = torch.empty((x.shape[0], self.num_classes), device=x.device, dtype=torch.float32)
        index = x.device.index or 0
        binding = self.session.io_binding()
        binding.bind_input(
            self.input, "cuda", index, np.float32, tuple(x.shape), x.data_ptr()
        )  # fmt: skip
        binding.bind_output(
            self.output, "cuda", index, np.float32, tuple(out.shape), out.data_ptr()
        )  # fmt: skip
        self.session.run_with_iobinding(binding)
        return out


def parity(
    reference: Tensor, candidate: Tensor, held: bool = True, tolerance: float = PARITY_TOLERANCE
) -> Parity:
    """The runtime's logits against torch's on the same batch; `held`: fp32, passed only when
    within tolerance with every top-1 class agreeing (None for an int8 file: compared only)."""
    ref = reference.detach().float().cpu()
    got = candidate.detach().float().cpu()
    diff = float((ref - got).abs().max()) if ref.numel() else 0.0
    if not math.isfinite(diff):
        diff = float("inf")
    scale = max(1.0, float(ref.abs().max()) if ref.numel() else 1.0)
    agree = float((ref.argmax(1) == got.argmax(1)).float().mean()) if ref.numel() else 1.0
    passed = (diff <= tolerance * scale and agree == 1.0) if held else None
    finite_diff = diff if math.isfinite(diff) else 1e300
    return Parity(int(ref.shape[0]), finite_diff, scale, agree, tolerance, passed)


class _Reader:
    """onnxruntime.quantization's CalibrationDataReader over preprocessed batches."""

    def __init__(self, batches: list[np.ndarray]) -> None:
        self._batches = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {INPUT_NAME: batch}


def quantize_int8(
    fp32_path: Path, out_path: Path, calibration: Tensor, source: str, representative: bool
) -> dict[str, Any]:
    """Static int8 quantization (QDQ, per-channel int8 weights, int8 activations, MinMax
    calibration) of `fp32_path` into `out_path`, calibrated on `calibration` (preprocessed
    images). Returns what the report records about it."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    images = calibration.detach().float().cpu().numpy()
    batches = [images[i : i + 1] for i in range(len(images))]
    prepared = out_path.with_name(out_path.stem + ".pre.onnx")
    with _quiet():
        try:
            quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        except Exception:  # pre-processing is an optimisation; quantize the file as it is
            prepared = fp32_path
        try:
            quantize_static(
                str(prepared),
                str(out_path),
                _Reader(batches),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                weight_type=QuantType.QInt8,
                activation_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
            )
        except Exception as exc:
            raise ExportError(f"int8 quantization failed: {_first_line(exc)}") from exc
        finally:
            if prepared != fp32_path:
                for stale in prepared.parent.glob(f"{prepared.name}*"):
                    stale.unlink()
    return {
        "method": "onnxruntime static quantization: QDQ, per-channel int8 weights, int8 "
        "activations, MinMax calibration",
        "calibration_images": len(batches),
        "calibration_source": source,
        "representative": representative,
    }


@dataclass
class OrtPipeline(Pipeline):
    """A Pipeline whose model call is an ONNX Runtime session on the exported file; `model` is
    the torch model the file was exported from (parameters and FLOPs are counted on it)."""

    session: Any = None
    deployment: Deployment | None = None
    path: Path | None = None  # the file the session runs (in the run's own folder)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.session is not None:
            self.attach(self.session)

    def attach(self, session: Any) -> None:
        if self.num_classes is None:
            raise ValueError("an OrtPipeline needs num_classes")
        self.session = session
        self._forward = OrtCall(session, self.num_classes)

    @property
    def compiled(self) -> bool:
        return False

    def compile(self, mode: str, shapes: int = 1) -> None:
        raise UsageError(f"--runtime {ORT_RUNTIME} runs the exported file: no torch.compile")

    def train_step(self, x: Tensor, labels: Tensor, optimizer: torch.optim.Optimizer) -> None:
        raise UsageError(f"--runtime {ORT_RUNTIME} measures inference only")


def deploy(
    pipe: Pipeline,
    folder: Path,
    settings: OrtSettings,
    probe: Tensor,
    quantize: str | None = None,
    calibration: Tensor | None = None,
    calibration_source: str = "synthetic",
    representative: bool = False,
    stem: str | None = None,
    exported: dict[Path, tuple[str, int]] | None = None,
) -> OrtPipeline:
    """Export `pipe`'s model into `folder` (int8 on request), check it against torch on
    `probe` (preprocessed images), open a session: the pipeline that runs it. ExportError when
    the exporter, the quantizer or the fp32 parity check fails. `exported`: the fp32 files this
    run already wrote (path -> exporter, opset), reused instead of exported again."""
    ort = import_ort()
    started = time.perf_counter()
    stem = stem or f"{pipe.model.backbone_name}-{pipe.name}"
    fp32_path = folder / f"{stem}.onnx"
    if exported is not None and fp32_path in exported and fp32_path.is_file():
        exporter, opset = exported[fp32_path]
    else:
        example = pipe.example_input(EXPORT_BATCH, random=True)
        exporter, opset = export_model(pipe.model, example, fp32_path)
        if exported is not None:
            exported[fp32_path] = (exporter, opset)
    with torch.inference_mode():
        reference = pipe.model(probe)
    num_classes = int(reference.shape[1])
    path, quantization = fp32_path, None
    if quantize == "int8":
        if calibration is None:
            raise ValueError("int8 needs calibration images")
        path = folder / f"{stem}.int8.onnx"
        quantization = quantize_int8(
            fp32_path, path, calibration[:CALIBRATION_IMAGES], calibration_source, representative
        )
    session = open_session(path, settings)
    call = OrtCall(session, num_classes)
    fp32_session = session if quantize is None else open_session(fp32_path, settings)
    fp32_check = parity(reference, OrtCall(fp32_session, num_classes)(probe))
    if not fp32_check.passed:
        raise ExportError(
            f"the exported file disagrees with torch: max |logit difference| "
            f"{fp32_check.max_abs_diff:.3g} (tolerance {PARITY_TOLERANCE:g} x logit scale "
            f"{fp32_check.logit_scale:.3g}), top-1 agreement {fp32_check.top1_agreement:.0%}"
        )
    check = fp32_check if quantize is None else parity(reference, call(probe), held=False)
    deployment = Deployment(
        format="onnx",
        exporter=exporter,
        opset=opset,
        file_bytes=file_bytes(path),
        inside_graph=INSIDE_GRAPH,
        settings=settings.record(ort, session),
        parity=check,
        quantization=quantization,
        export_s=time.perf_counter() - started,
    )
    out = OrtPipeline(
        pipe.name,
        pipe.model,
        pipe.device,
        num_classes=num_classes,
        session=session,
        deployment=deployment,
        path=path,
    )
    return out


def with_fresh(deployment: Deployment, fresh: Any, note: str | None) -> Deployment:
    """The deployment with a fresh process's start (or why there is none) filled in."""
    return replace(deployment, fresh=fresh, fresh_note=note)
