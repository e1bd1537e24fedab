"""compare with runtime variants (issue 23): torch and ONNX Runtime (fp32, int8) side by side, a
--threads sweep, the fresh-process start, a failed export, the preflight and the CLI options.

One real sweep (six variants, the real fresh child) is shared by the module; the other runs
are the smallest config that reaches their path."""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from emobench import results as R
from emobench.cli import app
from emobench.config import RunConfig, load_suite
from emobench.errors import UsageError
from emobench.launchers.child import ChildResult
from emobench.models import EmotionNet
from emobench.results import PipelineResult, Report
from emobench.results.measurements import PeakMemory
from emobench.runtimes import onnx as O
from emobench.runtimes import ort_child
from emobench.scenarios import compare as C
from emobench.scenarios.steps import EXPORT, FRESH_START, Step, step_plan
from tests.conftest import TINY, TINY_ARGS, tiny_model

CPU = torch.device("cpu")
UP, DN = "upscale224", "direct48"
SWEEP_LABELS = [
    "torch 1t",
    "onnxruntime 1t",
    "onnxruntime int8 1t",
    "torch 2t",
    "onnxruntime 2t",
    "onnxruntime int8 2t",
]
ORT_LABELS = [label for label in SWEEP_LABELS if label.startswith("onnxruntime")]
runner = CliRunner()


def _config(**overrides: Any) -> RunConfig:
    return RunConfig(**{**TINY, "backbones": ("resnet18",), "device": "cpu", **overrides})


def _digest(model: EmotionNet) -> str:
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().numpy().tobytes())
    return h.hexdigest()


Call = tuple[str, int, int]


def _check_progress(calls: list[Call]) -> int:
    """Steps counted one by one, never past the total, ending exactly at it: the step count."""
    *steps, last = calls
    assert [done for _, done, _ in steps] == list(range(len(steps)))
    assert all(done < total for _, done, total in steps)
    assert last == ("done", len(steps), len(steps))
    return len(steps)


def _result(report: Report, pipeline: str, variant: str) -> PipelineResult:
    got = report.result("resnet18", pipeline, variant)
    assert got is not None, (pipeline, variant)
    return got


@dataclass
class Sweep:
    config: RunConfig
    report: Report
    calls: list[Call]
    exports: list[str]  # the file names export_model wrote, in order
    builds: list[tuple[str, int, str]]  # (pipeline, torch threads at build, weights digest)
    threads_before: int
    threads_after: int
    launches: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


@pytest.fixture(scope="module")
def sweep() -> Sweep:
    """torch and onnxruntime (fp32 and int8) at 1 and 2 threads: one real run, real children."""
    config = _config(runtimes=("torch", "onnxruntime"), quantize="int8", thread_counts=(1, 2))
    calls: list[Call] = []
    exports: list[str] = []
    builds: list[tuple[str, int, str]] = []
    launches: list[tuple[str, dict[str, Any]]] = []
    real_export, real_launch = O.export_model, C.fresh_start_launch

    def build(backbone: str, pipeline: str, **kwargs: Any) -> EmotionNet:
        model = tiny_model(backbone, pipeline, **kwargs)
        builds.append((pipeline, torch.get_num_threads(), _digest(model)))
        return model

    def export(model: torch.nn.Module, example: torch.Tensor, path: Path) -> tuple[str, int]:
        exports.append(path.name)
        return real_export(model, example, path)

    def launch(entry: str, argument: str, timeout_s: float) -> Any:
        launches.append((entry, json.loads(argument)))
        return real_launch(entry, argument, timeout_s)  # the real fresh process

    original = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(C, "build_model", build)
        mp.setattr(O, "export_model", export)
        mp.setattr(C, "fresh_start_launch", launch)
        torch.set_num_threads(1)  # the last variant sets 2: a run that left it would show
        try:
            report = C.run_benchmark(config, progress=lambda d, n, t: calls.append((d, n, t)))
            after = torch.get_num_threads()
        finally:
            torch.set_num_threads(original)
    return Sweep(config, report, calls, exports, builds, 1, after, launches)


# -- the sweep -----------------------------------------------------------------------------------


def test_variants_in_config_order_each_with_both_pipelines_measured(sweep: Sweep) -> None:
    report = sweep.report
    assert [v.label for v in sweep.config.variants] == SWEEP_LABELS
    assert report.variants == SWEEP_LABELS
    assert report.config["variants"] == SWEEP_LABELS
    # results grouped by variant, in the config's order, each with both pipelines
    assert [(r.variant, r.pipeline) for r in report.results] == [
        (label, p) for label in SWEEP_LABELS for p in (UP, DN)
    ]
    for r in report.results:
        assert r.error is None, r.error
        assert r.latency is not None and r.latency.stats.median > 0
        assert [t.batch_size for t in r.throughput] == [2]
        assert [t.batch_size for t in r.end_to_end] == [2]
        assert r.params.total > 0
        threads = int(r.variant.split()[-1].removesuffix("t"))
        assert r.threads == threads
        assert r.runtime == r.variant.split()[0]
        assert r.quantize == ("int8" if "int8" in r.variant else None)
    assert report.view("onnxruntime int8 2t").variants == ["onnxruntime int8 2t"]


def test_progress_ends_exactly_at_the_planned_total(sweep: Sweep) -> None:
    steps = _check_progress(sweep.calls)
    plan = step_plan(sweep.config, CPU)
    assert plan.n_variants == 6 and plan.n_runtime_variants == 4
    assert plan.runtime == (Step(EXPORT), Step(FRESH_START))
    assert {total for _, _, total in sweep.calls} == {plan.total} == {steps}
    exports = [d for d, _, _ in sweep.calls if "export to ONNX and parity check" in d]
    fresh = [d for d, _, _ in sweep.calls if "fresh process: open the file" in d]
    assert len(exports) == len(fresh) == 4 * 2  # every runtime variant's two pipelines
    assert sum(", int8 quantization" in d for d in exports) == 2 * 2
    # every step names its variant
    for label in SWEEP_LABELS:
        assert any(d.endswith(f"[{label}]: building model") for d, _, _ in sweep.calls)


def test_paired_ratios_carry_their_variant(sweep: Sweep) -> None:
    report = sweep.report
    assert [p.variant for p in report.paired] == sorted(
        (p.variant for p in report.paired), key=SWEEP_LABELS.index
    )
    keys = {label: {p.key for p in report.paired if p.variant == label} for label in SWEEP_LABELS}
    assert keys["torch 1t"] >= {"latency_b1_median_ms", "throughput_b2_images_per_s"}
    assert all(k == keys["torch 1t"] for k in keys.values())
    for label in SWEEP_LABELS:
        ratio = report.paired_ratio("resnet18", "latency_b1_median_ms", label)
        assert ratio is not None and ratio.variant == label and ratio.ratio > 0
    # the first variant is what every older reader gets
    first = report.paired_ratio("resnet18", "latency_b1_median_ms")
    assert first is not None and first.variant == "torch 1t"


def test_each_variant_runs_on_its_thread_count_and_torch_threads_are_put_back(
    sweep: Sweep,
) -> None:
    # a sweep's `threads` is its largest count (what the run applies and the environment
    # records, as with the CLI's repeated --threads); the variants' own counts are put back
    assert sweep.config.threads == 2
    assert sweep.threads_after == 2
    assert [threads for _, threads, _ in sweep.builds] == [1] * 6 + [2] * 6
    assert torch.get_num_threads() >= 1


def test_onnxruntime_results_record_their_deployment(sweep: Sweep) -> None:
    for label in ORT_LABELS:
        threads = int(label.split()[-1].removesuffix("t"))
        for pipeline in (UP, DN):
            dep = _result(sweep.report, pipeline, label).deployment
            assert dep is not None and dep.format == "onnx"
            assert dep.exporter in ("dynamo", "torchscript") and dep.opset > 0
            assert dep.file_bytes > 0
            assert dep.settings["intra_op_threads"] == threads
            assert dep.settings["providers"] == [O.CPU_PROVIDER]
            assert dep.parity is not None and dep.parity.batch_size > 0
            if "int8" in label:
                assert dep.parity.passed is None  # compared, not held
                assert dep.quantization is not None
            else:
                assert dep.parity.passed is True
                assert dep.parity.max_abs_diff <= dep.parity.tolerance * dep.parity.logit_scale
                assert dep.quantization is None
    for label in ("torch 1t", "torch 2t"):
        assert all(_result(sweep.report, p, label).deployment is None for p in (UP, DN))


def test_int8_says_it_was_calibrated_on_synthetic_images(sweep: Sweep) -> None:
    for label in ("onnxruntime int8 1t", "onnxruntime int8 2t"):
        for pipeline in (UP, DN):
            dep = _result(sweep.report, pipeline, label).deployment
            assert dep is not None and dep.quantization is not None
            assert dep.quantization["calibration_source"] == "synthetic"
            assert dep.quantization["representative"] is False
            assert dep.quantization["calibration_images"] == TINY["preprocess_images"]
    notes = [n for n in sweep.report.notes if n.startswith("--quantize int8")]
    assert len(notes) == 1 and "synthetic images, not representative" in notes[0]
    assert C.RUNTIME_COUNTS_NOTE in sweep.report.notes


def test_int8_calibrated_on_data_says_which_and_is_not_flagged(
    monkeypatch: pytest.MonkeyPatch, fer_csv: Path
) -> None:
    _fake_launch(monkeypatch, ChildResult(0, json.dumps(FRESH_JSON), "", 0.1))
    config = _config(
        runtimes=("onnxruntime",),
        quantize="int8",
        pipelines=(DN,),
        measurements=("latency",),
        data=str(fer_csv),
    )
    report = C.run_benchmark(config)
    assert report.variants == ["onnxruntime", "onnxruntime int8"]
    dep = _result(report, DN, "onnxruntime int8").deployment
    assert dep is not None and dep.quantization is not None
    assert dep.quantization["calibration_source"] == "--data fer.csv"
    assert dep.quantization["representative"] is True
    assert not any(n.startswith("--quantize") for n in report.notes)


def test_the_fp32_file_is_exported_once_per_pipeline_from_the_same_weights(sweep: Sweep) -> None:
    assert sorted(sweep.exports) == ["resnet18-direct48.onnx", "resnet18-upscale224.onnx"]
    for pipeline in (UP, DN):
        digests = {d for p, _, d in sweep.builds if p == pipeline}
        assert len(digests) == 1  # every variant builds the same weights (the run's seed)
        first = _result(sweep.report, pipeline, "onnxruntime 1t").deployment
        reused = _result(sweep.report, pipeline, "onnxruntime 2t").deployment
        assert first is not None and first.export_s is not None and first.export_s > 0
        assert reused is not None and reused.export_s is None  # it wrote nothing
        assert reused.file_bytes == first.file_bytes
        for label in ("onnxruntime int8 1t", "onnxruntime int8 2t"):
            dep = _result(sweep.report, pipeline, label).deployment
            assert dep is not None and dep.export_s is not None  # its quantization wrote a file


def test_the_real_fresh_process_start_is_the_cold_start(sweep: Sweep) -> None:
    assert len(sweep.launches) == 8
    assert {entry for entry, _ in sweep.launches} == {ort_child.ENTRY}
    sizes = {argument["input_size"] for _, argument in sweep.launches}
    assert sizes == {224, 48}
    for label in ORT_LABELS:
        for pipeline in (UP, DN):
            r = _result(sweep.report, pipeline, label)
            assert r.deployment is not None
            fresh = r.deployment.fresh
            assert fresh is not None, r.deployment.fresh_note
            assert fresh.session_create_ms > 0 and fresh.first_infer_ms > 0
            assert 0 < fresh.base_rss_bytes <= fresh.peak_rss_bytes
            assert r.latency is not None and r.latency.cold_start_ms == fresh.cold_start_ms
            assert r.cold_start_note == C.FRESH_RUNTIME
    for label in ("torch 1t", "torch 2t"):
        r = _result(sweep.report, UP, label)
        assert r.cold_start_note is not None and r.cold_start_note.startswith("in process")


def test_runtime_peak_memory_is_the_process_rss_only(sweep: Sweep) -> None:
    for r in sweep.report.results:
        peak = r.memory.peak
        assert peak is not None and r.memory.peak_batch_size == 2
        if r.runtime == "onnxruntime":
            assert peak.tensor_peak_bytes is None  # torch's trackers see only the output
            assert peak.cpu_peak_rss_growth_bytes is not None
            assert peak.method.endswith("(runtime: RSS or NVML only)")
        else:
            assert peak.tensor_peak_bytes is not None and peak.tensor_peak_bytes > 0


def test_runtime_peak_drops_what_torch_cannot_see() -> None:
    full = PeakMemory("cuda", 1, 2, 3, 4, 5, 6, 7)
    assert C.runtime_peak(full) == PeakMemory(
        "cuda (runtime: RSS or NVML only)",
        tensor_peak_bytes=None,
        cpu_peak_rss_growth_bytes=2,
        cuda_peak_allocated_bytes=None,
        cuda_peak_reserved_bytes=None,
        nvml_device_used_bytes=5,
        cuda_allocated_before_bytes=None,
        cuda_own_resident_bytes=None,
    )


def test_the_sweep_report_round_trips(sweep: Sweep, tmp_path: Path) -> None:
    path = tmp_path / "sweep.json"
    R.save(sweep.report, path)
    loaded = R.load(path)
    assert loaded == sweep.report
    assert loaded.variants == SWEEP_LABELS
    dep = loaded.result("resnet18", DN, "onnxruntime int8 2t")
    assert (
        dep is not None
        and dep.deployment == _result(sweep.report, DN, "onnxruntime int8 2t").deployment
    )


# -- the fresh process, faked --------------------------------------------------------------------

FRESH_JSON = {
    "session_create_ms": 12.5,
    "first_infer_ms": 3.25,
    "peak_rss_bytes": 90_000_000,
    "base_rss_bytes": 60_000_000,
    "providers": ["CPUExecutionProvider"],
    "torch_imported": False,
}


def _fake_launch(
    monkeypatch: pytest.MonkeyPatch, result: ChildResult
) -> list[tuple[str, dict[str, Any], float]]:
    seen: list[tuple[str, dict[str, Any], float]] = []

    def launch(entry: str, argument: str, timeout_s: float) -> ChildResult:
        seen.append((entry, json.loads(argument), timeout_s))
        return result

    monkeypatch.setattr(C, "fresh_start_launch", launch)
    return seen


@pytest.mark.parametrize("paired", [True, False], ids=["paired", "unpaired"])
def test_the_fresh_process_answer_is_the_cold_start(
    monkeypatch: pytest.MonkeyPatch, paired: bool
) -> None:
    seen = _fake_launch(monkeypatch, ChildResult(0, "loading\n" + json.dumps(FRESH_JSON), "", 0.2))
    config = _config(runtimes=("onnxruntime",), measurements=("latency",), paired=paired)
    report = C.run_benchmark(config)
    assert [(e, a["input_size"]) for e, a, _ in seen] == [
        (ort_child.ENTRY, 224),
        (ort_child.ENTRY, 48),
    ]
    for _, argument, timeout in seen:
        assert Path(argument["path"]).name.endswith(".onnx")
        assert argument["intra_op_threads"] == torch.get_num_threads()
        assert argument["device"] == "cpu" and timeout == C.FRESH_TIMEOUT_S
    for pipeline in (UP, DN):
        r = _result(report, pipeline, "onnxruntime")
        assert r.deployment is not None and r.deployment.fresh is not None
        assert r.latency is not None
        assert r.latency.cold_start_ms == pytest.approx(12.5 + 3.25)
        assert r.deployment.fresh.cold_start_ms == pytest.approx(15.75)
        assert r.deployment.fresh.base_rss_bytes == 60_000_000
        assert r.deployment.fresh.peak_rss_bytes == 90_000_000
        assert r.cold_start_note == C.FRESH_RUNTIME and "fresh process" in r.cold_start_note
        assert "no torch" in r.cold_start_note


@pytest.mark.parametrize(
    ("child", "why"),
    [
        (ChildResult(None, "", "", 120.0), "not measured: the fresh process took over 120 s"),
        (
            ChildResult(1, "", "Traceback\nImportError: no onnxruntime here", 0.1),
            "not measured: the fresh process failed (ImportError: no onnxruntime here)",
        ),
        (
            ChildResult(0, json.dumps({"session_create_ms": 1.0}), "", 0.1),
            "not measured: the fresh process's answer was not understood",
        ),
    ],
    ids=["timed-out", "failed", "not-understood"],
)
def test_a_fresh_process_that_fails_leaves_the_cold_start_absent(
    monkeypatch: pytest.MonkeyPatch, child: ChildResult, why: str
) -> None:
    _fake_launch(monkeypatch, child)
    config = _config(runtimes=("onnxruntime",), pipelines=(DN,), measurements=("latency",))
    calls: list[Call] = []
    report = C.run_benchmark(config, progress=lambda d, n, t: calls.append((d, n, t)))
    _check_progress(calls)
    r = _result(report, DN, "onnxruntime")
    assert r.error is None
    assert r.deployment is not None and r.deployment.fresh is None
    assert r.deployment.fresh_note == why
    assert r.latency is not None and r.latency.stats.median > 0  # the run went on
    assert r.latency.cold_start_ms is None
    assert r.cold_start_note == why


# -- a failed export -----------------------------------------------------------------------------


def _export_fails_for(monkeypatch: pytest.MonkeyPatch, *pipelines: str) -> list[str]:
    """export_model raises ExportError for these pipelines' files (the others export for real)."""
    real = O.export_model
    tried: list[str] = []

    def export(model: torch.nn.Module, example: torch.Tensor, path: Path) -> tuple[str, int]:
        tried.append(path.name)
        if any(p in path.name for p in pipelines):
            raise O.ExportError("ONNX export failed: boom")
        return real(model, example, path)

    monkeypatch.setattr(O, "export_model", export)
    return tried


@pytest.mark.parametrize("paired", [True, False], ids=["paired", "unpaired"])
def test_a_failed_export_is_that_pipelines_error_and_the_other_is_measured(
    monkeypatch: pytest.MonkeyPatch, paired: bool
) -> None:
    _export_fails_for(monkeypatch, DN)
    _fake_launch(monkeypatch, ChildResult(0, json.dumps(FRESH_JSON), "", 0.1))
    runtimes = ("torch", "onnxruntime") if paired else ("onnxruntime",)
    config = _config(runtimes=runtimes, paired=paired)
    calls: list[Call] = []
    report = C.run_benchmark(config, progress=lambda d, n, t: calls.append((d, n, t)))
    _check_progress(calls)

    failed = _result(report, DN, "onnxruntime")
    assert failed.error == "onnxruntime: ONNX export failed: boom"
    assert failed.runtime == "onnxruntime" and failed.deployment is None
    assert failed.latency is None and failed.throughput == [] and failed.end_to_end == []
    assert failed.preprocess == [] and failed.memory.peak is None
    assert failed.params.total > 0 and failed.memory.weight_bytes > 0

    survivor = _result(report, UP, "onnxruntime")
    assert survivor.error is None
    assert survivor.latency is not None and survivor.latency.stats.median > 0
    assert survivor.latency.cold_start_ms == pytest.approx(15.75)
    assert [t.batch_size for t in survivor.throughput] == [2]
    assert [t.batch_size for t in survivor.end_to_end] == [2]
    assert {p.path for p in survivor.preprocess} == {"per_image_pil", "batched_tensor"}
    assert survivor.memory.peak is not None
    assert survivor.deployment is not None and survivor.deployment.parity is not None
    assert survivor.deployment.parity.passed is True

    assert [p for p in report.paired if p.variant == "onnxruntime"] == []
    if paired:  # the torch variant still pairs
        assert report.paired_ratio("resnet18", "latency_b1_median_ms", "torch") is not None
        assert all(r.error is None for r in report.results if r.variant == "torch")
    # the survivor's steps are the unpaired plan's, the failed one's stop at its export
    taken = [d for d, _, _ in calls if d.startswith("resnet18/direct48 [onnxruntime]")]
    if paired:
        assert [d.split(": ", 1)[1] for d in taken] == [
            "building model",
            "export to ONNX and parity check",
        ]


def test_both_exports_failing_in_paired_mode_still_counts_exactly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tried = _export_fails_for(monkeypatch, UP, DN)
    monkeypatch.setattr(C, "fresh_start_launch", _must_not_launch)
    config = _config(runtimes=("onnxruntime",), quantize="int8")
    calls: list[Call] = []
    report = C.run_benchmark(config, progress=lambda d, n, t: calls.append((d, n, t)))
    _check_progress(calls)
    assert len(tried) == 4  # the int8 variant tries its fp32 export again
    assert [r.error for r in report.results] == ["onnxruntime: ONNX export failed: boom"] * 4
    assert report.paired == []


def _must_not_launch(entry: str, argument: str, timeout_s: float) -> ChildResult:
    raise AssertionError("no fresh process for a file that was never written")


# -- preflight -----------------------------------------------------------------------------------


@pytest.fixture
def nothing_built(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("got past the preflight")

    monkeypatch.setattr(C, "build_model", refuse)
    monkeypatch.setattr(O, "export_model", refuse)


def test_a_cuda_device_without_the_cuda_provider_is_refused_before_any_export(
    monkeypatch: pytest.MonkeyPatch, nothing_built: None
) -> None:
    import onnxruntime

    monkeypatch.setattr(C, "resolve_device", lambda spec: torch.device("cuda"))
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: [O.CPU_PROVIDER])
    config = _config(device="cuda", runtimes=("torch", "onnxruntime"))
    with pytest.raises(UsageError) as err:
        C.run_benchmark(config)
    message = str(err.value)
    assert "--runtime onnxruntime on cuda" in message
    assert "has no CUDAExecutionProvider (available: CPUExecutionProvider)" in message
    assert "onnxruntime-gpu" in message and "\n" not in message


def test_onnxruntime_missing_is_one_usage_error_naming_pip_install(
    monkeypatch: pytest.MonkeyPatch, nothing_built: None
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(UsageError) as err:
        C.run_benchmark(_config(runtimes=("onnxruntime",)))
    assert "pip install onnxruntime onnx onnxscript" in str(err.value)
    assert "\n" not in str(err.value)


def test_a_torch_only_run_never_needs_onnxruntime(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    config = _config(measurements=("latency",), pipelines=(DN,))
    report = C.run_benchmark(config)
    assert report.variants == ["torch"]
    assert report.results[0].deployment is None and report.results[0].runtime == "torch"


def test_cli_with_onnxruntime_missing_is_one_line_exit_2(
    monkeypatch: pytest.MonkeyPatch, nothing_built: None, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    out = tmp_path / "r.json"
    result = runner.invoke(
        app, ["compare", *TINY_ARGS, "--runtime", "onnxruntime", "--out", str(out)]
    )
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --runtime onnxruntime needs")
    assert "pip install onnxruntime" in lines[0]
    assert not out.exists()


# -- the CLI and suite files ---------------------------------------------------------------------


def test_cli_runtimes_and_a_threads_sweep_measure_four_variants(
    tmp_path: Path, restore_threads: None
) -> None:
    out = tmp_path / "r.json"
    args = ["compare", *TINY_ARGS, "--quick", "--runtime", "torch", "--runtime", "onnxruntime"]
    args += ["--threads", "1", "--threads", "2", "--out", str(out), "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = R.from_dict(json.loads(result.stdout))
    labels = ["torch 1t", "onnxruntime 1t", "torch 2t", "onnxruntime 2t"]
    assert report.variants == labels
    assert report.config["thread_counts"] == [1, 2] and report.config["threads"] == 2
    assert report.config["runtimes"] == ["torch", "onnxruntime"]
    assert report.config["quick"] is True
    for label in labels:
        assert {r.pipeline for r in report.results if r.variant == label} == {UP, DN}
    assert R.load(out) == report


SUITE = """[suite]
backbones = ["resnet18"]
device = "cpu"
batch_sizes = [2]
{extra}
"""


def test_a_suite_file_takes_runtimes_quantize_and_a_thread_sweep(tmp_path: Path) -> None:
    path = tmp_path / "ort.toml"
    extra = 'runtimes = ["onnxruntime"]\nquantize = "int8"\nthread_counts = [1, 2]'
    path.write_text(SUITE.format(extra=extra))
    config = load_suite(path)
    assert config.runtimes == ("onnxruntime",)
    assert config.quantize == "int8"
    assert config.thread_counts == (1, 2)
    assert config.threads == 2  # a sweep's largest count, as the CLI's --threads 1 --threads 2
    assert [v.label for v in config.variants] == [
        "onnxruntime 1t",
        "onnxruntime int8 1t",
        "onnxruntime 2t",
        "onnxruntime int8 2t",
    ]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('runtimes = "onnxruntime"', "key 'runtimes' must be a list of strings, got 'onnxruntime'"),
        ("runtimes = [1]", "key 'runtimes' must be a list of strings, got [1]"),
        ("quantize = 8", "key 'quantize' must be a string, got 8"),
        ('thread_counts = [1, "2"]', "key 'thread_counts' must be a list of integers"),
        ("thread_counts = 2", "key 'thread_counts' must be a list of integers, got 2"),
        ("thread_counts = [1, true]", "key 'thread_counts' must be a list of integers"),
    ],
    ids=[
        "runtimes-str",
        "runtimes-int",
        "quantize-int",
        "threads-str",
        "threads-int",
        "threads-bool",
    ],
)
def test_a_suite_with_wrong_types_is_one_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.toml").write_text(SUITE.format(extra=extra))
    result = runner.invoke(app, ["run", "bad.toml"])
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: bad.toml: "), result.stderr
    assert message in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]
