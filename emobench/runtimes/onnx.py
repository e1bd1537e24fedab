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
stream, so CUDA-event timers bracket its kernels as they bracket torch's. On torch's default
(legacy) stream, whose handle is 0, ORT cannot share it and runs on a stream of its own: each call
then waits for torch's stream first, so the input it reads is the one torch finished writing.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import re
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from emobench.errors import MeasurementError, ModelError, UsageError
from emobench.names import ORT_RUNTIME
from emobench.results.measurements import Deployment, Parity
from emobench.runtimes.ort_child import SPIN_STOP_KEY as SPIN_STOP_KEY  # re-exported
from emobench.runtimes.torch import Pipeline

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
EXECUTION_MODES = ("sequential", "parallel")
SPINNING = "spins during a run, stopped when it returns (session.force_spinning_stop=1)"
CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"
MISSING = (
    f"--runtime {ORT_RUNTIME} needs the onnxruntime package (and onnx, onnxscript to export): "
    "pip install onnxruntime onnx onnxscript (on a CUDA device: onnxruntime-gpu)"
)
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # the exporters colour their messages
MESSAGE_CHARS = 240  # an error line's quoted message, at most


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
    available = list(ort.get_available_providers())
    if device.type == "cuda" and CUDA_PROVIDER not in available:
        raise UsageError(
            f"--runtime {ORT_RUNTIME} on {device}: this onnxruntime ({ort.__version__}) has no "
            f"{CUDA_PROVIDER} (available: {', '.join(available)}); "
            "install onnxruntime-gpu in place of onnxruntime, or use --device cpu"
        )


def torch_stream(device: torch.device) -> Any:
    """torch's current CUDA stream on `device` (one place, so a test can stand in for it)."""
    return torch.cuda.current_stream(device)


@dataclass(frozen=True)
class OrtSettings:
    """The session settings in force, recorded in the report (`Deployment.settings`)."""

    intra_op_threads: int  # 0: ORT's default (one per physical core)
    inter_op_threads: int = 1
    graph_optimization: str = "all"  # one of GRAPH_LEVELS; "all" is ORT_ENABLE_ALL
    execution_mode: str = "sequential"  # one of EXECUTION_MODES
    device: str = "cpu"  # "cpu" or "cuda:N"
    use_tf32: bool | None = None  # CUDA: the provider's use_tf32 (None: its default)

    def __post_init__(self) -> None:
        if self.intra_op_threads < 0 or self.inter_op_threads < 0:
            raise ValueError("thread counts must be >= 0 (0: onnxruntime's default)")
        if self.graph_optimization not in GRAPH_LEVELS:
            raise ValueError(f"graph_optimization must be one of {', '.join(GRAPH_LEVELS)}")
        if self.execution_mode not in EXECUTION_MODES:
            raise ValueError(f"execution_mode must be one of {', '.join(EXECUTION_MODES)}")

    @property
    def device_index(self) -> int | None:
        """The CUDA device's index (None on the CPU)."""
        if not self.device.startswith("cuda"):
            return None
        return int(self.device.partition(":")[2] or 0)

    def session_options(self, ort: Any) -> Any:
        """The SessionOptions these settings make (runtimes.ort_child.session_options, the
        one place every session gets its options, the thread spinning included)."""
        from emobench.runtimes.ort_child import session_options

        return session_options(ort, self.as_child())

    def compute_stream(self) -> int | None:
        """The CUDA stream the session is to compute on: torch's current one on the device,
        when torch can see CUDA and the stream is not the legacy default (handle 0, which ORT
        takes for "none" and replaces with a stream of its own)."""
        index = self.device_index
        if index is None or not torch.cuda.is_available():
            return None
        handle = int(torch_stream(torch.device("cuda", index)).cuda_stream)
        return handle or None

    def providers(self) -> list[Any]:
        index = self.device_index
        if index is None:
            return [CPU_PROVIDER]
        options = {"device_id": str(index)}
        if self.use_tf32 is not None:  # --tf32 / --no-tf32, as torch's convs and matmuls
            options["use_tf32"] = "1" if self.use_tf32 else "0"
        stream = self.compute_stream()
        if stream is not None:
            # ORT's kernels on torch's current stream: CUDA events recorded on it bracket them
            options["user_compute_stream"] = str(stream)
        return [(CUDA_PROVIDER, options), CPU_PROVIDER]

    def record(self, ort: Any, session: Any | None = None) -> dict[str, Any]:
        """The settings as the report keeps them (the providers the session really uses;
        None without a session)."""
        used = list(session.get_providers()) if session is not None else None
        return {
            "onnxruntime": ort.__version__,
            "providers": used,
            "intra_op_threads": self.intra_op_threads,
            "inter_op_threads": self.inter_op_threads,
            "graph_optimization": self.graph_optimization,
            "execution_mode": self.execution_mode,
            "thread_spinning": SPINNING,
            "use_tf32": self.use_tf32,  # None: the CUDA provider's default (CPU: not used)
        }

    def as_child(self) -> dict[str, Any]:
        """What a fresh process needs to open the file the same way (runtimes.ort_child)."""
        return {
            "intra_op_threads": self.intra_op_threads,
            "inter_op_threads": self.inter_op_threads,
            "graph_optimization": self.graph_optimization,
            "execution_mode": self.execution_mode,
            "device": self.device,
            "use_tf32": self.use_tf32,
        }


def open_session(path: Path, settings: OrtSettings) -> Any:
    """An InferenceSession on `path`; on CUDA, refused when ORT fell back to the CPU (it does
    so silently when the CUDA libraries it needs are missing)."""
    ort = import_ort()
    session = ort.InferenceSession(
        str(path), sess_options=settings.session_options(ort), providers=settings.providers()
    )
    used = list(session.get_providers())
    if settings.device_index is not None and (not used or used[0] != CUDA_PROVIDER):
        raise MeasurementError(
            f"onnxruntime opened {path.name} on {', '.join(used) or 'no provider'}, not "
            f"{CUDA_PROVIDER}: its CUDA libraries (cuDNN, cuBLAS) did not load"
        )
    return session


def _siblings(path: Path) -> list[Path]:
    """The files in `path`'s folder whose name starts with `path`'s name: the file itself and
    what an exporter writes beside it (`<name>.data`). By prefix, not glob: a name may hold
    `[` or `*`."""
    if not path.parent.is_dir():
        return []
    return [p for p in path.parent.iterdir() if p.name.startswith(path.name) and p.is_file()]


def _remove(path: Path) -> None:
    """`path` and everything written beside it under its name."""
    for stale in _siblings(path):
        stale.unlink(missing_ok=True)


def file_bytes(path: Path) -> int:
    """The file and its external data (`<name>.data` and any other file the exporter wrote
    beside it with its name as prefix), in bytes."""
    return sum(p.stat().st_size for p in _siblings(path))


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporters and the quantizer while they run: their progress lines and
    printed graphs (stdout and stderr), warnings and log records below ERROR. The root
    logger keeps its handlers: the quantizer's module-level `logging.warning` would otherwise
    install a stderr handler on it for the rest of the process (`logging.basicConfig`)."""
    names = ("", "torch", "torch.onnx", "torch.export", "onnxscript", "torch._dynamo", "torch.fx")
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    root = logging.getLogger()
    handlers = list(root.handlers)
    guard = logging.NullHandler()  # a root with a handler: basicConfig() adds none
    with (
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        root.addHandler(guard)
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)
            for handler in list(root.handlers):
                if handler not in handlers:
                    root.removeHandler(handler)


def _message(exc: BaseException) -> str:
    """`Type: first line` of an exception, without colour codes, progress lines ("[...]")
    or Markdown headings ("#..."); the type alone when it has no message."""
    for line in ANSI.sub("", str(exc)).splitlines():
        line = line.strip()
        if line and not line.startswith(("[", "#")):
            return f"{type(exc).__name__}: {line[:MESSAGE_CHARS]}"
    return type(exc).__name__


def _first_line(exc: BaseException) -> str:
    """One line naming what went wrong: the exception's own message, or, for a wrapper raised
    `from` another (the dynamo exporter's "Failed to export the model with torch.export..."),
    the wrapper's type and the message of the error it wraps, innermost first."""
    root, seen = exc, {id(exc)}
    while root.__cause__ is not None and id(root.__cause__) not in seen:
        root = root.__cause__
        seen.add(id(root))
    if root is exc:
        return _message(exc)
    return f"{type(exc).__name__}: {_message(root)}"


def export_model(model: torch.nn.Module, example: Tensor, path: Path) -> tuple[str, int]:
    """Write `model` to `path` as ONNX with a dynamic batch axis: (exporter, opset). The dynamo
    exporter first; the TorchScript exporter when it fails; ExportError (the first exporter's
    first message) when both do, with nothing left under the file's name. Files already there
    under its name (an earlier run's `<name>.data`) are removed first: the file size counts
    only what this export wrote."""
    import onnx

    model.eval()
    errors: list[Exception] = []
    _remove(path)
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
            _remove(path)
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
                _remove(path)
                raise ExportError(f"ONNX export failed: {_first_line(errors[0])}") from errors[0]
    if not path.is_file():
        _remove(path)
        raise ExportError(f"ONNX export failed: the {exporter} exporter wrote no {path.name}")
    if file_bytes(path) < SINGLE_FILE_BYTES:
        # one self-contained file: what a deployment copies, and what the quantizer can read
        proto = onnx.load(str(path))
        for stale in _siblings(path):
            if stale != path:
                stale.unlink()
        onnx.save_model(proto, str(path), save_as_external_data=False)
    proto = onnx.load(str(path), load_external_data=False)
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    return exporter, int(opset)


class OrtCall:
    """The session as a forward: a float tensor in, a float tensor out, on the input's device.

    `stream`: the CUDA stream handle the session computes on (its `user_compute_stream`), or
    None when it runs on a stream of its own; then each CUDA call first waits for torch's
    current stream, whose kernels write the input."""

    def __init__(self, session: Any, num_classes: int, stream: int | None = None) -> None:
        self.session = session
        self.num_classes = num_classes
        self.stream = stream
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
        out = x.new_empty((x.shape[0], self.num_classes), dtype=torch.float32)
        index = x.device.index or 0
        binding = self.session.io_binding()
        binding.bind_input(
            self.input, "cuda", index, np.float32, tuple(x.shape), x.data_ptr()
        )  # fmt: skip
        binding.bind_output(
            self.output, "cuda", index, np.float32, tuple(out.shape), out.data_ptr()
        )  # fmt: skip
        current = torch_stream(x.device)
        if self.stream is None or int(current.cuda_stream) != self.stream:
            current.synchronize()  # ORT's own stream does not wait for torch's
        self.session.run_with_iobinding(binding)
        return out


def parity(
    reference: Tensor, candidate: Tensor, held: bool = True, tolerance: float = PARITY_TOLERANCE
) -> Parity:
    """The runtime's logits against torch's on the same batch; `held`: fp32, passed only when
    within tolerance with every top-1 class agreeing (None for an int8 file: compared only).

    Logits of another shape, or any NaN or infinity on either side, are no agreement: the
    difference is infinite (a NaN would compare False against every tolerance, an infinity
    minus itself is NaN) and an fp32 file fails."""
    ref = reference.detach().float().cpu()
    got = candidate.detach().float().cpu()
    if ref.dim() != 2 or ref.shape[0] == 0:
        raise ValueError(f"parity needs (batch, classes) reference logits, got {tuple(ref.shape)}")
    if got.shape != ref.shape:
        return Parity(int(ref.shape[0]), math.inf, 1.0, 0.0, tolerance, False if held else None)
    finite_ref = bool(torch.isfinite(ref).all())
    scale = max(1.0, float(ref.abs().max())) if finite_ref else 1.0
    diff = float((ref - got).abs().max())
    if not (finite_ref and bool(torch.isfinite(got).all()) and math.isfinite(diff)):
        diff = math.inf
    mismatched = ref.argmax(1) != got.argmax(1)
    agree = 1.0 - float(mismatched.float().mean())
    # a top-1 swap between two logits closer than the tolerance is a near-tie, not a disagreement
    top2 = ref.topk(min(2, ref.shape[1]), dim=1).values
    margin = top2[:, 0] - top2[:, -1]
    real_swaps = bool((mismatched & (margin > 2 * tolerance * scale)).any())
    passed = (diff <= tolerance * scale and not real_swaps) if held else None
    return Parity(int(ref.shape[0]), diff, scale, agree, tolerance, passed)


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
    images). Returns what the report records about it. The fp32 file stays as it is; the
    pre-processed intermediate (`<out>.pre.onnx`) never outlives the call, nor does a partial
    `out_path` when quantization fails (ExportError)."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    images = calibration.detach().float().cpu().numpy()
    if len(images) == 0:
        raise ValueError("int8 quantization needs at least one calibration image")
    batches = [images[i : i + 1] for i in range(len(images))]
    prepared = out_path.with_name(out_path.stem + ".pre.onnx")
    _remove(out_path)
    _remove(prepared)
    source_path = prepared
    with _quiet():
        try:
            try:
                quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
            except Exception:  # pre-processing is an optimisation; quantize the file as it is
                source_path = fp32_path
            quantize_static(
                str(source_path),
                str(out_path),
                _Reader(batches),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                weight_type=QuantType.QInt8,
                activation_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
            )
        except Exception as exc:
            _remove(out_path)
            raise ExportError(f"int8 quantization failed: {_first_line(exc)}") from exc
        finally:
            _remove(prepared)
    return {
        "method": "onnxruntime static quantization: QDQ, per-channel int8 weights, int8 "
        "activations, MinMax calibration",
        "weights": "int8 (S8), per channel",
        "activations": "int8 (S8)",
        "reduce_range": False,
        "pre_processed": source_path == prepared,  # quant_pre_process ran (else the raw file)
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
    stream: int | None = None  # the CUDA stream the session computes on (None: its own)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.session is not None:
            self.attach(self.session, self.stream)

    def attach(self, session: Any, stream: int | None = None) -> None:
        if self.num_classes is None:
            raise ValueError("an OrtPipeline needs num_classes")
        self.session = session
        self.stream = stream
        self._forward = OrtCall(session, self.num_classes, stream)

    @property
    def compiled(self) -> bool:
        return False

    def compile(self, mode: str, shapes: int = 1) -> None:
        raise UsageError(f"--runtime {ORT_RUNTIME} runs the exported file: no torch.compile")

    def train_step(self, x: Tensor, labels: Tensor, optimizer: torch.optim.Optimizer) -> None:
        raise UsageError(f"--runtime {ORT_RUNTIME} measures inference only")


def _disagrees(check: Parity) -> str:
    return (
        f"max |logit difference| {check.max_abs_diff:.3g} (tolerance {check.tolerance:g} x "
        f"logit scale {check.logit_scale:.3g}), top-1 agreement {check.top1_agreement:.0%}"
    )


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
    the exporter, the quantizer or the fp32 parity check fails, or when the int8 file's logits
    are not finite. `exported`: the fp32 files this run already wrote (path -> exporter,
    opset), reused instead of exported again; an int8 deployment leaves its fp32 file in place
    and records it there, so the run's fp32 variant reuses it. `Deployment.export_s`: the
    seconds this call spent writing files (export, quantization); None when it wrote none."""
    if quantize not in (None, "int8"):
        raise ValueError(f"unknown quantization {quantize!r}")
    if quantize == "int8" and (calibration is None or len(calibration) == 0):
        raise ValueError("int8 needs calibration images")
    ort = import_ort()
    stem = stem or f"{pipe.model.backbone_name}-{pipe.name}"
    fp32_path = folder / f"{stem}.onnx"
    writing_s = 0.0
    wrote = False
    if exported is not None and fp32_path in exported and fp32_path.is_file():
        exporter, opset = exported[fp32_path]
    else:
        started = time.perf_counter()
        example = pipe.example_input(EXPORT_BATCH, random=True)
        exporter, opset = export_model(pipe.model, example, fp32_path)
        writing_s += time.perf_counter() - started
        wrote = True
        if exported is not None:
            exported[fp32_path] = (exporter, opset)
    reference = _reference(pipe.model, probe)
    num_classes = int(reference.shape[1])
    path, quantization = fp32_path, None
    if quantize == "int8":
        assert calibration is not None
        path = folder / f"{stem}.int8.onnx"
        started = time.perf_counter()
        quantization = quantize_int8(
            fp32_path, path, calibration[:CALIBRATION_IMAGES], calibration_source, representative
        )
        writing_s += time.perf_counter() - started
        wrote = True
    stream = settings.compute_stream()
    # the file's correctness is held on the CPU, in fp32 on both sides: on a GPU, TF32 convs
    # and the providers' own kernels differ by more than an export error would
    cpu = replace(settings, device="cpu", use_tf32=None)
    fp32_check = parity(reference, OrtCall(open_session(fp32_path, cpu), num_classes)(probe.cpu()))
    if not fp32_check.passed:
        raise ExportError(f"the exported file disagrees with torch: {_disagrees(fp32_check)}")
    check = fp32_check
    if quantize is not None:
        int8_out = OrtCall(open_session(path, cpu), num_classes)(probe.cpu())
        check = parity(reference, int8_out, held=False)
        if not math.isfinite(check.max_abs_diff):
            raise ExportError(f"the int8 file's logits are not finite: {_disagrees(check)}")
    # the session the run measures is a new one: no call has grown its memory arena yet, so
    # the run's peak-memory call sees what a deployment's first call at that batch allocates
    session = open_session(path, settings)
    deployment = Deployment(
        format="onnx",
        exporter=exporter,
        opset=opset,
        file_bytes=file_bytes(path),
        inside_graph=INSIDE_GRAPH,
        settings=settings.record(ort, session),
        parity=check,
        quantization=quantization,
        export_s=writing_s if wrote else None,
    )
    return OrtPipeline(
        pipe.name,
        pipe.model,
        pipe.device,
        num_classes=num_classes,
        session=session,
        deployment=deployment,
        path=path,
        stream=stream,
    )


def _reference(model: torch.nn.Module, probe: Tensor) -> Tensor:
    """torch eager's logits on the probe, in fp32 on the CPU (the parity check's reference)."""
    import copy

    with torch.inference_mode():
        if probe.device.type == "cpu":
            return model(probe)
        return copy.deepcopy(model).cpu()(probe.cpu())


def with_fresh(deployment: Deployment, fresh: Any, note: str | None) -> Deployment:
    """The deployment with a fresh process's start (or why there is none) filled in."""
    return replace(deployment, fresh=fresh, fresh_note=note)
