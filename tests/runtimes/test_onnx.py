"""The ONNX Runtime runtime: export (dynamo, TorchScript fallback), parity with torch eager,
static int8, sessions and their settings, the CUDA I/O-binding path (with fakes on the CPU) and
the fresh-process start (a real child process, no torch in it)."""

from __future__ import annotations

import ctypes
import json
import logging
import math
import shutil
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pytest
import torch
from torch import nn

from emobench.data.images import synthetic_images
from emobench.errors import MeasurementError, UsageError
from emobench.launchers.child import run_child
from emobench.models import build_model
from emobench.results.measurements import Deployment, Parity
from emobench.runtimes import onnx as O
from emobench.runtimes import ort_child
from emobench.runtimes.torch import Pipeline
from tests.conftest import as_emotion_net, tiny_model

CPU = torch.device("cpu")
FAMILIES = ("resnet18", "mobilenet_v3_small", "vgg11")  # three registered families
PROBE_IMAGES = 8
CHILD_TIMEOUT_S = 120.0


def _pipe(model: Any, pipeline: str = "direct48") -> Pipeline:
    return Pipeline(pipeline, model, CPU, num_classes=7)


def _probe(pipe: Pipeline, n: int = PROBE_IMAGES, seed: int = 5) -> torch.Tensor:
    """The run's kind of probe: synthetic faces through the batched preprocessing."""
    return pipe.preprocess_batched(torch.from_numpy(synthetic_images(n, seed=seed)))


def _dep(ort_pipe: O.OrtPipeline) -> Deployment:
    assert ort_pipe.deployment is not None
    return ort_pipe.deployment


def _parity(ort_pipe: O.OrtPipeline) -> Parity:
    assert ort_pipe.deployment is not None and ort_pipe.deployment.parity is not None
    return ort_pipe.deployment.parity


def _names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def _conv_net() -> Any:
    """A small conv-heavy model (~56k conv weights): what int8 shrinks, exported in a second."""
    body = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(64, 64, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )
    return as_emotion_net(body, nn.Linear(64, 7), "conv", "direct48")


class _DataDependent(nn.Module):
    """A branch on a tensor's value: torch.export refuses it, TorchScript traces the branch
    taken (always this one for real inputs, so the trace stays right)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=4)
        self.head = nn.Linear(4, 7)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.abs().sum() >= 0:
            return self.head(self.conv(x).mean((2, 3)))
        return torch.zeros(x.shape[0], 7)


# ---------------------------------------------------------------- shared exports (module scope)


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], tuple[Any, Any, Path]]:
    """backbone -> (torch pipeline, its fp32 OrtPipeline, folder): each exported once."""
    cache: dict[str, tuple[Any, Any, Path]] = {}

    def get(backbone: str) -> tuple[Any, Any, Path]:
        if backbone not in cache:
            torch.manual_seed(0)
            pipe = _pipe(build_model(backbone, "direct48"))
            folder = tmp_path_factory.mktemp(backbone)
            ort_pipe = O.deploy(pipe, folder, O.OrtSettings(2), _probe(pipe))
            cache[backbone] = (pipe, ort_pipe, folder)
        return cache[backbone]

    return get


@pytest.fixture(scope="module")
def conv_fp32(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path, tuple[str, int]]:
    """The conv-heavy model and its fp32 export: (torch pipeline, file, (exporter, opset))."""
    torch.manual_seed(1)
    pipe = _pipe(_conv_net())
    path = tmp_path_factory.mktemp("conv") / "conv-direct48.onnx"
    done = O.export_model(pipe.model, pipe.example_input(2, random=True), path)
    return pipe, path, done


def _reuse(conv_fp32: tuple[Any, Path, tuple[str, int]], folder: Path) -> dict[Path, Any]:
    """The conv model's fp32 file copied into `folder`, as a run that already exported it."""
    _, path, done = conv_fp32
    shutil.copy(path, folder / path.name)
    return {folder / path.name: done}


# ---------------------------------------------------------------- export and parity


@pytest.mark.parametrize("backbone", FAMILIES)
def test_fp32_export_matches_torch_on_registered_families(deployed, backbone: str) -> None:
    pipe, ort_pipe, folder = deployed(backbone)
    d, p = _dep(ort_pipe), _parity(ort_pipe)
    assert p.passed is True
    assert p.batch_size == PROBE_IMAGES
    assert p.tolerance == O.PARITY_TOLERANCE == 1e-4
    assert p.logit_scale >= 1.0
    assert 0.0 <= p.max_abs_diff <= 1e-4 * p.logit_scale
    assert p.top1_agreement == 1.0
    assert d.exporter == "dynamo"  # the registered backbones export with torch.export
    assert d.opset >= 17
    assert d.format == "onnx" and d.inside_graph == O.INSIDE_GRAPH
    assert d.quantization is None
    assert d.export_s is not None and d.export_s > 0
    # one self-contained file: the dynamo exporter's .data folded back in, nothing else left
    assert _names(folder) == {f"{backbone}-direct48.onnx"}
    assert ort_pipe.path == folder / f"{backbone}-direct48.onnx"
    assert d.file_bytes == ort_pipe.path.stat().st_size == O.file_bytes(ort_pipe.path)
    assert d.settings["providers"] == ["CPUExecutionProvider"]
    # the session's logits on the probe are the recorded comparison's
    probe = _probe(pipe)
    with torch.inference_mode():
        diff = (ort_pipe.infer(probe) - pipe.model(probe)).abs().max().item()
    assert diff <= 1e-4 * p.logit_scale


@pytest.mark.parametrize("batch", [1, 3])
def test_ort_pipeline_calls_match_torch_eager_at_any_batch(deployed, batch: int) -> None:
    pipe, ort_pipe, _ = deployed("resnet18")
    scale = _parity(ort_pipe).logit_scale
    torch.manual_seed(batch)
    x = pipe.example_input(batch, random=True)
    got, want = ort_pipe.infer(x), pipe.infer(x)
    assert got.shape == want.shape == (batch, 7)  # one file, a dynamic batch axis
    assert got.dtype == torch.float32
    assert (got - want).abs().max().item() <= 1e-4 * scale
    u8 = torch.from_numpy(synthetic_images(batch, seed=11))
    got, want = ort_pipe.end_to_end(u8), pipe.end_to_end(u8)
    assert got.shape == (batch, 7)
    assert (got - want).abs().max().item() <= 1e-4 * scale
    assert torch.equal(got.argmax(1), want.argmax(1))


def test_ort_pipeline_refuses_compile_and_training(deployed) -> None:
    pipe, ort_pipe, _ = deployed("resnet18")
    assert ort_pipe.compiled is False
    assert ort_pipe.model is pipe.model  # parameters and FLOPs counted on the torch model
    with pytest.raises(UsageError, match=r"no torch\.compile"):
        ort_pipe.compile("default")
    x, labels = pipe.example_input(2), torch.zeros(2, dtype=torch.long)
    with pytest.raises(UsageError, match="inference only"):
        ort_pipe.train_step(x, labels, pipe.new_optimizer())


def test_settings_record_what_the_session_uses(deployed) -> None:
    _, ort_pipe, _ = deployed("resnet18")
    assert _dep(ort_pipe).settings == {
        "onnxruntime": onnxruntime.__version__,
        "providers": ["CPUExecutionProvider"],
        "intra_op_threads": 2,
        "inter_op_threads": 1,
        "graph_optimization": "all",
        "execution_mode": "sequential",
        "thread_spinning": O.SPINNING,
        "use_tf32": None,
    }
    options = ort_pipe.session.get_session_options()
    assert options.get_session_config_entry(O.SPIN_STOP_KEY) == "1"
    assert options.intra_op_num_threads == 2
    assert options.inter_op_num_threads == 1
    level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert options.graph_optimization_level == level
    assert options.execution_mode == onnxruntime.ExecutionMode.ORT_SEQUENTIAL


def test_settings_in_force_on_a_real_session(deployed) -> None:
    _, ort_pipe, _ = deployed("resnet18")
    settings = O.OrtSettings(1, inter_op_threads=2, graph_optimization="basic")
    session = O.open_session(ort_pipe.path, settings)
    options = session.get_session_options()
    assert options.intra_op_num_threads == 1
    assert options.inter_op_num_threads == 2
    level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
    assert options.graph_optimization_level == level
    record = settings.record(onnxruntime, session)
    assert record["providers"] == ["CPUExecutionProvider"]
    assert record["intra_op_threads"] == 1 and record["graph_optimization"] == "basic"
    assert settings.record(onnxruntime)["providers"] is None  # no session: not claimed
    assert settings.as_child() == {
        "intra_op_threads": 1,
        "inter_op_threads": 2,
        "graph_optimization": "basic",
        "execution_mode": "sequential",
        "device": "cpu",
        "use_tf32": None,
    }


def test_settings_refuse_what_onnxruntime_has_not() -> None:
    with pytest.raises(ValueError, match="graph_optimization"):
        O.OrtSettings(1, graph_optimization="max")
    with pytest.raises(ValueError, match="execution_mode"):
        O.OrtSettings(1, execution_mode="async")
    with pytest.raises(ValueError, match="thread"):
        O.OrtSettings(-1)


def test_stale_files_under_the_name_are_replaced(tmp_path: Path) -> None:
    pipe = _pipe(tiny_model("resnet18", "direct48"))
    (tmp_path / "resnet18-direct48.onnx").write_bytes(b"old file")
    (tmp_path / "resnet18-direct48.onnx.data").write_bytes(b"x" * 10_000)  # an old export's
    (tmp_path / "other.onnx").write_bytes(b"not ours")
    out = O.deploy(pipe, tmp_path, O.OrtSettings(1), _probe(pipe, 4))
    assert _names(tmp_path) == {"resnet18-direct48.onnx", "other.onnx"}
    assert _dep(out).file_bytes == (tmp_path / "resnet18-direct48.onnx").stat().st_size
    assert _parity(out).passed is True


def test_file_bytes_counts_the_file_and_its_data_by_name_not_glob(tmp_path: Path) -> None:
    path = tmp_path / "net[1]-direct48.onnx"
    path.write_bytes(b"a" * 10)
    (tmp_path / "net[1]-direct48.onnx.data").write_bytes(b"b" * 32)
    (tmp_path / "net1-direct48.onnx").write_bytes(b"c" * 99)  # what a glob's [1] would match
    assert O.file_bytes(path) == 42
    assert O.file_bytes(tmp_path / "absent.onnx") == 0


# ---------------------------------------------------------------- exporter fallback and failures


def _fake_export(
    real: Callable[..., Any], dynamo_error: Exception | None, ts_error: Exception | None
):
    """torch.onnx.export where an exporter writes partial files and raises its error."""

    def export(model, args, f, **kwargs):
        error = dynamo_error if kwargs.get("dynamo") else ts_error
        if error is None:
            return real(model, args, f, **kwargs)
        Path(f).write_bytes(b"partial")
        Path(f"{f}.data").write_bytes(b"partial weights")
        raise error

    return export


def test_dynamo_failure_falls_back_to_torchscript(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(
        torch.onnx, "export", _fake_export(torch.onnx.export, RuntimeError("no dynamo"), None)
    )
    pipe = _pipe(tiny_model("resnet18", "direct48"))
    out = O.deploy(pipe, tmp_path, O.OrtSettings(1), _probe(pipe, 4))
    d, check = _dep(out), _parity(out)
    assert d.exporter == "torchscript"
    assert d.opset >= 17
    assert check.passed is True and check.top1_agreement == 1.0
    assert _names(tmp_path) == {"resnet18-direct48.onnx"}  # the dynamo attempt's files gone
    for batch in (1, 3):  # the TorchScript file's batch axis is dynamic too
        x = pipe.example_input(batch, random=True)
        assert (out.infer(x) - pipe.infer(x)).abs().max().item() <= 1e-4


def test_both_exporters_failing_is_one_line_naming_the_first(tmp_path: Path, monkeypatch) -> None:
    try:  # a wrapper raised from the real cause, as the dynamo exporter's, in colour
        raise ValueError("the real cause\n  File 'model.py', line 3\nTraceback text")
    except ValueError as cause:
        try:
            raise RuntimeError(
                "Failed to export. \x1b[96mThis is step 1/3\x1b[0m\n## Exception summary"
            ) from cause
        except RuntimeError as wrapper:
            first = wrapper
    second = RuntimeError("torchscript said this")
    monkeypatch.setattr(torch.onnx, "export", _fake_export(torch.onnx.export, first, second))
    pipe = _pipe(tiny_model("resnet18", "direct48"))
    with pytest.raises(O.ExportError) as caught:
        O.deploy(pipe, tmp_path, O.OrtSettings(1), _probe(pipe, 4))
    message = str(caught.value)
    assert message == "ONNX export failed: RuntimeError: ValueError: the real cause"
    assert "\n" not in message and "\x1b" not in message
    assert list(tmp_path.iterdir()) == []  # no partial file, no .data


def test_plain_first_error_is_quoted_as_it_is(tmp_path: Path, monkeypatch) -> None:
    first = TypeError("dynamo: unsupported op aten::foo\nmore detail")
    monkeypatch.setattr(
        torch.onnx, "export", _fake_export(torch.onnx.export, first, RuntimeError("ts"))
    )
    with pytest.raises(O.ExportError, match=r"^ONNX export failed: TypeError: dynamo: unsupported"):
        O.export_model(
            tiny_model("resnet18", "direct48"), torch.randn(2, 3, 48, 48), tmp_path / "m.onnx"
        )
    assert list(tmp_path.iterdir()) == []


def test_a_real_torch_export_failure_falls_back_quietly(tmp_path: Path, capfd) -> None:
    path = tmp_path / "branchy.onnx"
    exporter, opset = O.export_model(_DataDependent().eval(), torch.randn(2, 3, 48, 48), path)
    assert exporter == "torchscript" and opset >= 17
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # torch.export prints the partial graph to stderr: swallowed
    assert _names(tmp_path) == {"branchy.onnx"}


def test_parity_failure_is_the_pipelines_export_error(
    tmp_path: Path, conv_fp32, monkeypatch
) -> None:
    real = O.OrtCall.__call__

    def shifted(self, x):
        out = real(self, x)
        return out + torch.linspace(0, 0.5, out.shape[1])  # moves logits and top-1 classes

    monkeypatch.setattr(O.OrtCall, "__call__", shifted)
    pipe, exported = conv_fp32[0], _reuse(conv_fp32, tmp_path)
    with pytest.raises(O.ExportError, match=r"disagrees with torch: max \|logit difference\|"):
        O.deploy(pipe, tmp_path, O.OrtSettings(1), _probe(pipe, 4), exported=exported)


def test_nan_logits_from_the_file_fail_parity(tmp_path: Path, conv_fp32, monkeypatch) -> None:
    monkeypatch.setattr(
        O.OrtCall, "__call__", lambda self, x: torch.full((x.shape[0], 7), math.nan)
    )
    pipe, exported = conv_fp32[0], _reuse(conv_fp32, tmp_path)
    with pytest.raises(O.ExportError, match=r"max \|logit difference\| inf"):
        O.deploy(pipe, tmp_path, O.OrtSettings(1), _probe(pipe, 4), exported=exported)


def test_deploy_refuses_unknown_quantization_and_missing_calibration(tmp_path: Path) -> None:
    pipe = _pipe(tiny_model("resnet18", "direct48"))
    probe = _probe(pipe, 2)
    with pytest.raises(ValueError, match="unknown quantization"):
        O.deploy(pipe, tmp_path, O.OrtSettings(1), probe, quantize="int4")
    with pytest.raises(ValueError, match="calibration"):
        O.deploy(pipe, tmp_path, O.OrtSettings(1), probe, quantize="int8")
    with pytest.raises(ValueError, match="calibration"):
        O.deploy(pipe, tmp_path, O.OrtSettings(1), probe, "int8", torch.zeros(0, 3, 48, 48))
    assert list(tmp_path.iterdir()) == []  # refused before anything is exported


# ---------------------------------------------------------------- parity() itself


def _logits() -> torch.Tensor:
    return torch.tensor([[1.0, 2.0, 3.0], [3.0, -2.0, 0.5]])


def test_parity_holds_fp32_to_a_relative_tolerance() -> None:
    ref = _logits() * 1000  # logit scale 3000: the tolerance is 0.3 in absolute terms
    ok = O.parity(ref, ref + 0.25)
    assert ok.passed is True and ok.logit_scale == 3000.0
    assert ok.max_abs_diff == pytest.approx(0.25) and ok.top1_agreement == 1.0
    assert ok.batch_size == 2 and ok.tolerance == 1e-4
    assert O.parity(ref, ref + 0.35).passed is False
    small = O.parity(_logits() / 100, _logits() / 100 + 5e-5)  # scale at least 1
    assert small.logit_scale == 1.0 and small.passed is True


@pytest.mark.parametrize(
    "case",
    ["nan in file", "nan in torch", "inf on both sides", "inf in file", "narrower output"],
)
def test_parity_never_passes_what_it_cannot_compare(case: str) -> None:
    ref, got = _logits(), _logits().clone()
    if case == "nan in file":
        got[0, 0] = math.nan
    elif case == "nan in torch":
        ref[1, 1] = math.nan
    elif case == "inf on both sides":  # inf - inf is NaN: must not read as within tolerance
        ref[0, 2] = got[0, 2] = math.inf
    elif case == "inf in file":
        got[1, 0] = math.inf
    else:  # (2, 1) would broadcast against (2, 3)
        got = _logits()[:, :1]
    check = O.parity(ref, got)
    assert check.passed is False
    assert check.max_abs_diff == math.inf
    assert math.isfinite(check.logit_scale)
    assert O.parity(ref, got, held=False).passed is None  # int8: compared, not held


def test_parity_needs_a_batch_of_logits() -> None:
    with pytest.raises(ValueError, match="batch, classes"):
        O.parity(torch.zeros(0, 7), torch.zeros(0, 7))


# ---------------------------------------------------------------- int8


def test_int8_is_smaller_compared_not_held_and_says_what_it_calibrated_on(
    tmp_path: Path, conv_fp32, monkeypatch, capfd
) -> None:
    pipe, fp32_file, (exporter, opset) = conv_fp32
    exported = _reuse(conv_fp32, tmp_path)
    (tmp_path / "conv-direct48.int8.pre.onnx").write_bytes(b"a crashed run's")
    (tmp_path / "conv-direct48.int8.onnx.data").write_bytes(b"a crashed run's")
    handlers = list(logging.getLogger().handlers)

    def no_export(*args, **kwargs):
        raise AssertionError("the fp32 file this run wrote was exported again")

    monkeypatch.setattr(O, "export_model", no_export)
    calibration = _probe(pipe, 70, seed=9)
    out = O.deploy(
        pipe, tmp_path, O.OrtSettings(1), _probe(pipe), "int8", calibration, exported=exported
    )
    d, check = _dep(out), _parity(out)
    assert out.path == tmp_path / "conv-direct48.int8.onnx"
    assert _names(tmp_path) == {"conv-direct48.onnx", "conv-direct48.int8.onnx"}
    assert d.file_bytes == out.path.stat().st_size
    assert d.file_bytes / fp32_file.stat().st_size < 0.5
    assert (d.exporter, d.opset) == (exporter, opset)  # the fp32 file's export
    assert check.passed is None and check.batch_size == PROBE_IMAGES
    assert 0.0 < check.max_abs_diff < math.inf
    assert 0.0 <= check.top1_agreement <= 1.0
    assert d.quantization == {
        "method": "onnxruntime static quantization: QDQ, per-channel int8 weights, int8 "
        "activations, MinMax calibration",
        "weights": "int8 (S8), per channel",
        "activations": "int8 (S8)",
        "reduce_range": False,
        "pre_processed": True,
        "calibration_images": O.CALIBRATION_IMAGES,  # 70 given, 64 used
        "calibration_source": "synthetic",
        "representative": False,
    }
    assert d.export_s is not None and d.export_s > 0  # the quantization's time
    ops = {node.op_type for node in __import__("onnx").load(str(out.path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    x = pipe.example_input(3, random=True)
    assert out.infer(x).shape == (3, 7)
    assert logging.getLogger().handlers == handlers  # the quantizer's logging.warning left none
    assert capfd.readouterr() == ("", "")


def test_int8_leaves_the_fp32_file_for_the_fp32_variant(
    tmp_path: Path, conv_fp32, monkeypatch
) -> None:
    pipe, fp32_file, done = conv_fp32
    exports: list[Path] = []

    def export_once(model: Any, example: torch.Tensor, path: Path) -> tuple[str, int]:
        exports.append(path)
        shutil.copy(fp32_file, path)  # what the exporter wrote for this model
        return done

    monkeypatch.setattr(O, "export_model", export_once)
    exported: dict[Path, tuple[str, int]] = {}
    probe = _probe(pipe)
    calibration = _probe(pipe, 8, seed=2)
    int8 = O.deploy(pipe, tmp_path, O.OrtSettings(1), probe, "int8", calibration, exported=exported)
    fp32_path = tmp_path / "conv-direct48.onnx"
    assert exported == {fp32_path: done}
    assert (_dep(int8).exporter, _dep(int8).opset) == done
    export_s = _dep(int8).export_s
    assert export_s is not None and export_s > 0
    fp32 = O.deploy(pipe, tmp_path, O.OrtSettings(1), probe, exported=exported)
    assert exports == [fp32_path]  # exported once, for the int8 variant; reused since
    assert fp32.path == fp32_path
    assert _parity(fp32).passed is True
    assert _dep(fp32).export_s is None  # it wrote nothing: no export time to claim
    assert _dep(fp32).file_bytes == fp32_path.stat().st_size
    assert _dep(fp32).file_bytes > 2 * _dep(int8).file_bytes


def test_quantizer_preprocessing_failure_leaves_no_intermediate(
    tmp_path: Path, conv_fp32, monkeypatch
) -> None:
    import onnxruntime.quantization.shape_inference as shape_inference

    def broken(source: str, target: str, **kwargs: Any) -> None:
        Path(target).write_bytes(b"half written")
        raise RuntimeError("shape inference failed")

    monkeypatch.setattr(shape_inference, "quant_pre_process", broken)
    pipe = conv_fp32[0]
    fp32 = next(iter(_reuse(conv_fp32, tmp_path)))
    out = tmp_path / "conv-direct48.int8.onnx"
    record = O.quantize_int8(fp32, out, _probe(pipe, 4), "FER test split", True)
    assert record["calibration_images"] == 4
    assert record["calibration_source"] == "FER test split" and record["representative"] is True
    assert _names(tmp_path) == {"conv-direct48.onnx", "conv-direct48.int8.onnx"}


def test_quantizer_failure_is_an_export_error_with_nothing_left(
    tmp_path: Path, conv_fp32, monkeypatch
) -> None:
    import onnxruntime.quantization as quantization

    def broken(source: str, target: str, reader: Any, **kwargs: Any) -> None:
        Path(target).write_bytes(b"half written")
        raise RuntimeError("calibration\nfailed badly")

    monkeypatch.setattr(quantization, "quantize_static", broken)
    fp32 = next(iter(_reuse(conv_fp32, tmp_path)))
    with pytest.raises(
        O.ExportError, match=r"^int8 quantization failed: RuntimeError: calibration$"
    ):
        O.quantize_int8(fp32, tmp_path / "c.int8.onnx", _probe(conv_fp32[0], 2), "synthetic", False)
    assert _names(tmp_path) == {"conv-direct48.onnx"}


# ---------------------------------------------------------------- the CUDA paths, with fakes


class _FakeCuda(torch.Tensor):
    """A CPU tensor that says it lives on cuda:1: the device-memory path's arithmetic on a
    machine without CUDA (its data_ptr is real host memory)."""

    @property
    def device(self) -> torch.device:  # type: ignore[override]
        return torch.device("cuda", 1)


class _FakeStream:
    def __init__(self, handle: int, log: list[Any]) -> None:
        self.cuda_stream = handle
        self.log = log

    def synchronize(self) -> None:
        self.log.append(("synchronize", self.cuda_stream))


class _Binding:
    def __init__(self, log: list[Any]) -> None:
        self.log = log
        self.output_ptr = 0

    def bind_input(self, *args: Any) -> None:
        self.log.append(("bind_input", *args))

    def bind_output(self, *args: Any) -> None:
        self.log.append(("bind_output", *args))
        self.output_ptr = args[-1]


class _Session:
    """An InferenceSession stand-in: records the I/O binding calls; its 'kernel' writes
    0, 1, 2, ... into the bound output memory."""

    def __init__(self, log: list[Any], providers: list[str] | None = None) -> None:
        self.log = log
        self.providers = providers or ["CUDAExecutionProvider", "CPUExecutionProvider"]

    def get_inputs(self) -> list[Any]:
        return [types.SimpleNamespace(name="input")]

    def get_outputs(self) -> list[Any]:
        return [types.SimpleNamespace(name="logits")]

    def get_providers(self) -> list[str]:
        return self.providers

    def io_binding(self) -> _Binding:
        return _Binding(self.log)

    def run_with_iobinding(self, binding: _Binding) -> None:
        self.log.append(("run_with_iobinding",))
        values = np.arange(3 * 7, dtype=np.float32)
        ctypes.memmove(binding.output_ptr, values.ctypes.data, values.nbytes)

    def run(self, *args: Any) -> None:
        raise AssertionError("a CUDA input went through the host path")


@pytest.mark.parametrize(("shared", "waits"), [(None, True), (777, False), (5, True)])
def test_cuda_input_is_bound_in_device_memory(monkeypatch, shared, waits: bool) -> None:
    log: list[Any] = []
    monkeypatch.setattr(O, "torch_stream", lambda device: _FakeStream(777, log))
    call = O.OrtCall(_Session(log), num_classes=7, stream=shared)
    x = torch.randn(3, 3, 48, 48).as_subclass(_FakeCuda)
    out = call(x)
    bound_in, bound_out = log[0], log[1]
    assert bound_in == ("bind_input", "input", "cuda", 1, np.float32, (3, 3, 48, 48), x.data_ptr())
    assert bound_out == ("bind_output", "logits", "cuda", 1, np.float32, (3, 7), out.data_ptr())
    expected_tail = [("synchronize", 777)] if waits else []
    # torch's stream waited for (ORT on a stream of its own), or not (ORT on torch's stream)
    assert log[2:] == [*expected_tail, ("run_with_iobinding",)]
    assert out.device.type == "cuda" and out.shape == (3, 7) and out.dtype == torch.float32
    assert torch.equal(
        out.as_subclass(torch.Tensor), torch.arange(21, dtype=torch.float32).view(3, 7)
    )


def test_cuda_providers_name_the_device_and_torch_stream(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert O.OrtSettings(1).providers() == ["CPUExecutionProvider"]
    assert O.OrtSettings(1, device="cuda:1").providers() == [
        ("CUDAExecutionProvider", {"device_id": "1"}),
        "CPUExecutionProvider",
    ]
    assert O.OrtSettings(1, device="cuda").providers()[0] == (
        "CUDAExecutionProvider",
        {"device_id": "0"},
    )
    assert O.OrtSettings(1, device="cuda:1").compute_stream() is None
    asked: list[torch.device] = []

    def stream(device: torch.device) -> _FakeStream:
        asked.append(device)
        return _FakeStream(handle, [])

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(O, "torch_stream", stream)
    handle = 4242
    assert O.OrtSettings(1, device="cuda:1").providers()[0] == (
        "CUDAExecutionProvider",
        {"device_id": "1", "user_compute_stream": "4242"},
    )
    assert asked == [torch.device("cuda", 1)]
    handle = 0  # torch's legacy default stream: ORT would take 0 for "none"
    assert O.OrtSettings(1, device="cuda:1").providers()[0] == (
        "CUDAExecutionProvider",
        {"device_id": "1"},
    )


def _fake_ort(providers_used: list[str], available: list[str]) -> tuple[Any, list[Any]]:
    opened: list[Any] = []

    class SessionOptions:
        def __init__(self) -> None:
            self.config: dict[str, str] = {}

        def add_session_config_entry(self, key: str, value: str) -> None:
            self.config = {**self.config, key: value}

    def session(path: str, sess_options: Any, providers: list[Any]) -> _Session:
        opened.append((path, sess_options, providers))
        return _Session([], providers_used)

    ort = types.SimpleNamespace(
        __version__="9.9.9",
        SessionOptions=SessionOptions,
        GraphOptimizationLevel=types.SimpleNamespace(
            ORT_DISABLE_ALL=0, ORT_ENABLE_BASIC=1, ORT_ENABLE_EXTENDED=2, ORT_ENABLE_ALL=99
        ),
        ExecutionMode=types.SimpleNamespace(ORT_SEQUENTIAL=0, ORT_PARALLEL=1),
        InferenceSession=session,
        get_available_providers=lambda: available,
    )
    return ort, opened


def test_open_session_refuses_a_cuda_session_that_fell_back_to_the_cpu(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    ort, opened = _fake_ort(["CPUExecutionProvider"], ["CUDAExecutionProvider"])
    monkeypatch.setattr(O, "import_ort", lambda: ort)
    settings = O.OrtSettings(3, device="cuda:0")
    with pytest.raises(
        MeasurementError, match="on CPUExecutionProvider, not CUDAExecutionProvider"
    ):
        O.open_session(Path("/run/m.onnx"), settings)
    path, options, providers = opened[0]
    assert path == "/run/m.onnx"
    assert providers == [("CUDAExecutionProvider", {"device_id": "0"}), "CPUExecutionProvider"]
    assert options.intra_op_num_threads == 3 and options.graph_optimization_level == 99
    assert options.log_severity_level == 3

    ort, _ = _fake_ort(["CUDAExecutionProvider", "CPUExecutionProvider"], [])
    monkeypatch.setattr(O, "import_ort", lambda: ort)
    session = O.open_session(Path("/run/m.onnx"), settings)
    assert settings.record(ort, session)["providers"] == [
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]


def test_check_available_names_what_to_install(monkeypatch) -> None:
    O.check_available(CPU)  # this environment has them all
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    with pytest.raises(UsageError, match="pip install onnxruntime onnx onnxscript"):
        O.check_available(CPU)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime: ImportError
    with pytest.raises(UsageError, match="pip install onnxruntime onnx onnxscript") as caught:
        O.import_ort()
    assert caught.value.__cause__ is None and "\n" not in str(caught.value)


def test_check_available_wants_the_cuda_provider_on_cuda(monkeypatch) -> None:
    ort, _ = _fake_ort([], ["CPUExecutionProvider"])
    monkeypatch.setattr(O, "import_ort", lambda: ort)
    O.check_available(CPU)
    with pytest.raises(UsageError) as caught:
        O.check_available(torch.device("cuda", 0))
    message = str(caught.value)
    assert "no CUDAExecutionProvider" in message and "available: CPUExecutionProvider" in message
    assert "install onnxruntime-gpu" in message and "9.9.9" in message


# ---------------------------------------------------------------- a fresh process's start


def _rss_now() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * __import__("os").sysconf("SC_PAGE_SIZE")


def test_fresh_process_opens_the_file_without_torch(deployed) -> None:
    _, ort_pipe, _ = deployed("resnet18")
    argument = {
        "path": str(ort_pipe.path),
        "input_size": 48,
        **O.OrtSettings(1).as_child(),
    }
    child = run_child(ort_child.ENTRY, json.dumps(argument), CHILD_TIMEOUT_S)
    assert child.returncode == 0, child.stderr
    got = child.last_json()
    assert isinstance(got, dict)
    assert got["torch_imported"] is False
    assert got["providers"] == ["CPUExecutionProvider"]
    assert got["session_create_ms"] > 0 and got["first_infer_ms"] > 0
    assert 0 < got["base_rss_bytes"] <= got["peak_rss_bytes"]
    # the child's own peak: not this torch-laden process's RSS, which Linux's ru_maxrss
    # carries across exec into a child
    if sys.platform.startswith("linux"):
        assert got["peak_rss_bytes"] < _rss_now()
        assert got["peak_rss_bytes"] > _dep(ort_pipe).file_bytes  # the weights are in it


def test_child_peak_is_this_process_high_water_mark() -> None:
    peak = ort_child._peak_bytes()
    assert peak >= ort_child._rss_bytes() > 0
    if sys.platform.startswith("linux"):
        status = Path("/proc/self/status").read_text().splitlines()
        hwm = next(line for line in status if line.startswith("VmHWM"))
        assert abs(peak - int(hwm.split()[1]) * 1024) < 64 * 2**20


def test_a_top1_swap_between_near_tied_logits_is_not_a_disagreement() -> None:
    ref = torch.tensor([[1.0, 1.00001, 0.0], [2.0, 0.0, 0.0]])
    near = torch.tensor([[1.00001, 1.0, 0.0], [2.0, 0.0, 0.0]])  # top-1 swapped in a near-tie
    check = O.parity(ref, near)
    assert check.top1_agreement == 0.5 and check.passed is True
    far = torch.tensor([[1.0, 1.00001, 0.0], [0.0, 2.0, 0.0]])  # a real swap
    assert O.parity(ref, far).passed is False


def test_the_session_the_run_measures_is_a_new_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    """The parity calls must not grow the measured session's memory arena."""
    opened: list[object] = []
    real = O.open_session

    def spy(path, settings):  # type: ignore[no-untyped-def]
        session = real(path, settings)
        opened.append(session)
        return session

    monkeypatch.setattr(O, "open_session", spy)
    pipe = Pipeline(
        "direct48", tiny_model("resnet18", "direct48"), torch.device("cpu"), num_classes=7
    )
    probe = pipe.example_input(4, random=True)
    out = O.deploy(pipe, tmp_path, O.OrtSettings(1), probe)
    assert len(opened) == 2 and out.session is opened[-1]  # parity's session is not the one kept
