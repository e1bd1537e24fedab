"""The compare scenario's CUDA-facing fixes of issue 21, pinned on the CPU: cold start in a
fresh process (the child itself runs for real, on the CPU), inputs freed before the train peak,
untimed train steps before the measured ones, block sizes recorded per measurement, and an
out-of-memory error that names the step, the batch and `emobench maxbatch`."""

from __future__ import annotations

import dataclasses
import gc
import json
import types
import weakref
from typing import Any

import pytest
import torch

from emobench.config import RunConfig
from emobench.errors import MeasurementError
from emobench.launchers.child import ChildResult
from emobench.runtimes.torch import Pipeline
from emobench.scenarios import cold_start
from emobench.scenarios import compare as runner_mod
from emobench.scenarios.steps import Budget, Steps, step_plan
from tests.conftest import TINY, tiny_model

# -- cold start -------------------------------------------------------------------------------


def fake_bench(config: RunConfig, budget: Budget | None = None) -> Any:
    """What `_cold_start` reads of a pipeline being measured on cuda:1."""
    plan = step_plan(config, torch.device("cpu"))
    ctx = types.SimpleNamespace(
        device=torch.device("cuda", 1),
        budget=budget or Budget(None),
        steps=Steps(plan, lambda *_: None),
    )
    return types.SimpleNamespace(
        config=config,
        ctx=ctx,
        tag="vgg16/direct48",
        backbone="vgg16",
        pipeline="direct48",
        pipe=None,
    )


def test_cuda_cold_start_is_timed_in_a_fresh_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """In one process the pipeline that ran first paid for the kernels CUDA loads lazily and
    the other reused them: each first call now comes from a process of its own."""
    launched: list[tuple[str, dict[str, Any], float]] = []

    def launch(entry: str, argument: str, timeout_s: float) -> ChildResult:
        launched.append((entry, json.loads(argument), timeout_s))
        return ChildResult(0, 'torch says hello\n{"cold_start_ms": 12.5}\n', "", 4.2)

    monkeypatch.setattr(runner_mod, "cold_start_launch", launch)
    config = RunConfig(backbones=("vgg16",), device="cuda:1", precision="bf16", tf32=True)
    ms, note = runner_mod._cold_start(fake_bench(config), in_process_ms=99.0)
    assert ms == 12.5 and note.startswith(cold_start.FRESH_PROCESS)
    ((entry, args, timeout),) = launched
    assert entry == cold_start.CHILD_ENTRY and timeout == cold_start.COLD_START_TIMEOUT_S
    assert args["backbone"] == "vgg16" and args["pipeline"] == "direct48"
    assert args["device"] == "cuda:1" and args["precision"] == "bf16" and args["tf32"] is True


def test_cuda_cold_start_is_absent_with_the_reason_when_the_child_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    results = iter(
        [
            ChildResult(None, "", "", 60.0),  # timed out
            ChildResult(1, "", "Traceback ...\nRuntimeError: CUDA error: busy\n", 3.0),
        ]
    )
    timeouts: list[float] = []

    def launch(entry: str, argument: str, timeout_s: float) -> ChildResult:
        timeouts.append(timeout_s)
        return next(results)

    monkeypatch.setattr(runner_mod, "cold_start_launch", launch)
    config = RunConfig(backbones=("vgg16",), device="cuda:1")
    clock = iter([0.0, 10.0, 10.0, 10.0, 10.0, 10.0])
    budget = Budget(30.0, clock=lambda: next(clock))  # 20 s of 30 left
    ms, note = runner_mod._cold_start(fake_bench(config, budget), None)
    assert ms is None and note == "not measured: the fresh process ran past 20 s"
    assert timeouts == [pytest.approx(20.0)]  # bounded by what --time-budget has left
    ms, note = runner_mod._cold_start(fake_bench(config), None)
    assert ms is None and note.endswith("failed: RuntimeError: CUDA error: busy")


def test_no_cold_start_under_compile_and_in_process_on_the_cpu() -> None:
    compiled = RunConfig(backbones=("vgg16",), device="cuda:1", compile="default")
    assert runner_mod._cold_start(fake_bench(compiled), 5.0) == (None, cold_start.COMPILED)
    bench = fake_bench(RunConfig(backbones=("vgg16",), device="cpu"))
    bench.ctx.device = torch.device("cpu")
    assert runner_mod._cold_start(bench, 5.0) == (5.0, cold_start.IN_PROCESS)


@pytest.mark.parametrize("paired", [True, False])
def test_cpu_runs_record_how_the_cold_start_was_taken(paired: bool) -> None:
    config = RunConfig(backbones=("resnet18",), device="cpu", paired=paired, **TINY)  # type: ignore[arg-type]
    for r in runner_mod.run_benchmark(config).results:
        assert r.cold_start_note == cold_start.IN_PROCESS
        assert r.latency is not None and r.latency.cold_start_ms is not None


def test_the_cold_start_child_runs_in_a_fresh_interpreter() -> None:
    """The real child (on the CPU here): imports, one-time costs, the model, its first call."""
    config = RunConfig(backbones=("resnet18",), device="cpu")
    ms, note = cold_start.cold_start_in_child(config, "resnet18", "direct48", "cpu")
    assert ms is not None and ms > 0, note
    assert note.startswith(cold_start.FRESH_PROCESS)


# -- train steps and their peak ---------------------------------------------------------------


def test_inference_inputs_are_gone_before_the_train_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """The peak-memory call's batch was kept referenced into the train step (its peak then
    held a batch the step never used)."""
    batches: list[weakref.ref[torch.Tensor]] = []
    alive_at_train: list[int] = []
    real_pre, real_warm = Pipeline.preprocess_batched, Pipeline.warm_train

    def preprocess_batched(self: Pipeline, batch_u8: torch.Tensor, device: Any = None) -> Any:
        out = real_pre(self, batch_u8, device)
        if out.shape[0] == 2:
            batches.append(weakref.ref(out))
        return out

    def warm_train(self: Pipeline, *args: Any) -> int:
        gc.collect()
        alive_at_train.append(sum(ref() is not None for ref in batches))
        return real_warm(self, *args)

    monkeypatch.setattr(Pipeline, "preprocess_batched", preprocess_batched)
    monkeypatch.setattr(Pipeline, "warm_train", warm_train)
    for paired in (True, False):
        batches.clear()
        config = RunConfig(  # type: ignore[arg-type]
            backbones=("resnet18",), device="cpu", mode="both", paired=paired, **TINY
        )
        runner_mod.run_benchmark(config)
        assert batches and alive_at_train[-2:] == [0, 0]


def test_train_steps_are_warm_before_the_peak_and_the_timing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events: list[str] = []
    real_warm, real_step = Pipeline.warm_train, Pipeline.train_step

    def warm_train(self: Pipeline, *args: Any) -> int:
        events.append("warm")
        return real_warm(self, *args)

    def train_step(self: Pipeline, *args: Any) -> None:
        events.append("step")
        real_step(self, *args)

    monkeypatch.setattr(Pipeline, "warm_train", warm_train)
    monkeypatch.setattr(Pipeline, "train_step", train_step)
    config = RunConfig(  # type: ignore[arg-type]
        backbones=("resnet18",), pipelines=("direct48",), device="cpu", mode="train", **TINY
    )
    (r,) = runner_mod.run_benchmark(config).results
    # warm_train's own step, then the measured peak step, then sizing and samples
    assert events[:3] == ["warm", "step", "step"]
    (train,) = r.train
    assert train.peak is not None and train.timing.cold_start_ms is None
    assert train.timing.warmup_iters == 0 and train.timing.block_calls is not None


# -- block sizes --------------------------------------------------------------------------------


@pytest.mark.parametrize("paired", [True, False])
def test_every_measurement_records_its_block_size(paired: bool) -> None:
    config = RunConfig(backbones=("resnet18",), device="cpu", paired=paired, **TINY)  # type: ignore[arg-type]
    for r in runner_mod.run_benchmark(config).results:
        assert r.latency is not None and r.latency.block_calls == 1
        for b in (*r.throughput, *r.end_to_end):
            assert b.timing.block_calls == 1  # CPU: one shared per-call loop
        blocks = {p.path: p.block_calls for p in r.preprocess}
        assert blocks["per_image_pil"] == 1
        assert blocks["batched_tensor"] is not None and blocks["batched_tensor"] >= 1


def test_a_blocked_loop_records_the_calls_per_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unpaired, with throughput timed on its own (as on CUDA): blocked, the block recorded."""
    config = RunConfig(  # type: ignore[arg-type]
        backbones=("resnet18",),
        device="cpu",
        paired=False,
        measurements=("throughput",),
        **TINY,
    )
    for r in runner_mod.run_benchmark(config).results:
        (b,) = r.throughput
        calls = b.timing.block_calls
        assert calls is not None and calls >= 1
        assert b.timing.timer == (
            "perf_counter_ns" if calls == 1 else f"perf_counter_ns_blocked x{calls}"
        )


# -- out of memory ------------------------------------------------------------------------------


def oom_at_batch(n: int) -> Any:
    def build(backbone: str, pipeline: str, **kwargs: Any) -> Any:
        model = tiny_model(backbone, pipeline, **kwargs)
        real = model.forward

        def forward(x: torch.Tensor) -> torch.Tensor:
            if x.shape[0] == n and not x.is_meta:
                raise torch.OutOfMemoryError(
                    "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total "
                    "capacity of 79.10 GiB of which 1.2 GiB is free."
                )
            return real(x)

        model.forward = forward  # type: ignore[method-assign]
        return model

    return build


def test_out_of_memory_names_the_step_the_batch_and_maxbatch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runner_mod, "build_model", oom_at_batch(2))
    config = RunConfig(backbones=("resnet18",), device="cpu", **TINY)  # type: ignore[arg-type]
    with pytest.raises(MeasurementError) as caught:
        runner_mod.run_benchmark(config)
    message = str(caught.value)
    assert message.startswith("out of memory at batch 2 during 'resnet18/upscale224: ")
    assert "(CUDA out of memory. Tried to allocate 2.00 GiB)" in message
    assert "`emobench maxbatch --backbone resnet18 --device cpu --mode infer`" in message
    assert "\n" not in message and caught.value.exit_code == 1


def test_out_of_memory_message_on_cuda_in_train_mode() -> None:
    exc = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")
    exc.batch_size = 256  # type: ignore[attr-defined]
    config = dataclasses.replace(RunConfig(backbones=("plug.mod:fn",)), mode="both")
    where = "plug.mod:fn/direct48: train step, batch 256"
    message = runner_mod.out_of_memory_message(exc, where, config, torch.device("cuda", 1))
    assert message == (
        "out of GPU memory at batch 256 during 'plug.mod:fn/direct48: train step, batch 256' "
        "(CUDA out of memory. Tried to allocate 20.00 MiB); use a smaller --batch-size: "
        "`emobench maxbatch --backbone "
        "plug.mod:fn --device cuda:1 --mode train` finds the largest batch that fits"
    )


@pytest.mark.parametrize(("device", "warm"), [("cuda", 1), ("cpu", 0)])
def test_the_inference_peak_is_a_warm_calls_on_cuda(
    monkeypatch: pytest.MonkeyPatch, device: str, warm: int
) -> None:
    seen: list[int] = []

    def peak_memory(fn: Any, dev: torch.device, held: Any, warm_calls: int = 0) -> Any:
        seen.append(warm_calls)
        return None

    monkeypatch.setattr(runner_mod, "peak_memory", peak_memory)
    model = tiny_model("vgg16", "direct48")
    pipe = Pipeline("direct48", model, torch.device("cpu"))
    config = RunConfig(backbones=("vgg16",), device="cpu")
    ctx = types.SimpleNamespace(
        device=torch.device(device), watched=lambda measure: measure(runner_mod.Watchdog(None))
    )
    bench = types.SimpleNamespace(ctx=ctx, config=config, pipe=pipe, model=model)
    memory = runner_mod.MemoryResult(4, 4, None, None)
    runner_mod._peak_memory(bench, pipe.example_input(2), 2, memory)
    assert seen == [warm]


def test_a_compiled_train_steps_live_tensor_peak_is_absent_not_too_small() -> None:
    """Review of #21: under --compile the train peak ran the compiled step, whose Inductor
    outputs the live-tensor tracker never sees: undercounted, while the note said eager. Now
    absent; the allocator's figures, which see everything, stay."""
    import torch

    from emobench.results.measurements import PeakMemory
    from emobench.runtimes.torch import Pipeline
    from emobench.scenarios.pipeline_steps import train_peak_of
    from tests.conftest import small_cnn

    pipe = Pipeline("direct48", small_cnn("resnet18", "direct48"), torch.device("cpu"))
    peak = PeakMemory("tracked", tensor_peak_bytes=1000, cuda_peak_allocated_bytes=5000)
    assert not pipe.compiled and train_peak_of(pipe, peak) == peak
    pipe._forward = lambda x: pipe.model(x)  # what compile() installs: another callable
    assert pipe.compiled
    hidden = train_peak_of(pipe, peak)
    assert hidden.tensor_peak_bytes is None and hidden.cuda_peak_allocated_bytes == 5000
    assert train_peak_of(pipe, None) is None


@pytest.mark.parametrize(
    ("passes_left", "left_s", "expected"), [(2, 6.0, 3.0), (1, 3.0, 3.0), (2, 20.0, 5.0)]
)
def test_paired_energy_passes_split_what_is_left_of_the_budget(
    monkeypatch: pytest.MonkeyPatch, passes_left: int, left_s: float, expected: float
) -> None:
    """Review of #21: both paired energy passes run after the last planned step, so the first
    (upscale224, >= 2 s, up to 5 s) could take the whole rest of --time-budget and leave
    direct48's energy absent. Each now gets an even share of what is left, at most 5 s."""
    import types

    import emobench.scenarios.context as ctx_mod
    from emobench.measure import nvml as nvml_mod

    limits: list[float] = []
    monkeypatch.setattr(ctx_mod, "_gpu_monitor", lambda device, on: "monitor")
    monkeypatch.setattr(
        ctx_mod, "monitor_pass", lambda monitor, fn, bs, limit: limits.append(limit) or "ok"
    )
    fake = types.SimpleNamespace(
        device=None,
        share_s=lambda cap: min(cap, left_s),  # one step left: all that is left, capped
        watched=lambda fn: fn(types.SimpleNamespace(call=lambda f, *a: f(*a))),
    )
    assert ctx_mod.RunContext.energy_pass(fake, lambda: None, 8, passes_left) == "ok"  # type: ignore[arg-type]
    assert limits == [pytest.approx(expected)]
    assert nvml_mod.ENERGY_MAX_WINDOW_S == 5.0
