"""Real-GPU checks; skipped without CUDA (see conftest). Run with `make test-gpu`."""

from __future__ import annotations

import pytest
import torch

from emobench.config import RunConfig
from emobench.data.images import synthetic_images
from emobench.device import resolve_device
from emobench.measure.memory import cuda_peak_memory
from emobench.measure.timing import LoopSettings, time_loop, timer_for
from emobench.models import build_model
from emobench.runtimes.torch import Pipeline
from emobench.scenarios.compare import run_benchmark
from tests.conftest import TINY

pytestmark = pytest.mark.gpu


def test_resolve_cuda_device() -> None:
    assert resolve_device("cuda").type == "cuda"
    assert resolve_device("auto").type == "cuda"


def test_cuda_event_timer_measures_gpu_work() -> None:
    device = torch.device("cuda")
    timer, name = timer_for(device)
    a = torch.randn(2048, 2048, device=device)
    result = time_loop(lambda: a @ a, LoopSettings(1, 3, 0.0), timer, name)
    assert name == "cuda_event" and result.stats.median > 0


def test_cuda_peak_memory_sees_the_batch() -> None:
    device = torch.device("cuda")
    peak = cuda_peak_memory(lambda: torch.empty(64 * 2**20, device=device), device)
    assert peak.cuda_peak_allocated_bytes is not None
    assert peak.cuda_peak_allocated_bytes >= 64 * 2**20
    assert peak.cuda_peak_reserved_bytes >= peak.cuda_peak_allocated_bytes
    assert peak.cpu_peak_rss_growth_bytes is None


def test_preprocessing_paths_agree_on_cuda() -> None:
    images = synthetic_images(4)
    pipe = Pipeline("upscale224", build_model("resnet18", "upscale224"), torch.device("cuda"))
    batched = pipe.preprocess_batched(torch.from_numpy(images)).cpu()
    per_image = pipe.preprocess_per_image(images).cpu()  # the PIL path ends on the device
    assert (batched - per_image).abs().max().item() <= 1 / 255 / 0.224 + 1e-4


def test_compare_on_cuda_reports_allocator_peaks() -> None:
    config = RunConfig(backbones=("resnet18",), device="cuda", **TINY)  # type: ignore[arg-type]
    report = run_benchmark(config)
    for result in report.results:
        peak = result.memory.peak
        assert peak is not None and peak.cuda_peak_allocated_bytes
        assert result.latency is not None and result.latency.timer == "cuda_event"
    assert report.environment["gpu_name"]


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_compare_each_precision_on_cuda(precision: str) -> None:
    config = RunConfig(  # type: ignore[arg-type]
        backbones=("resnet18",), device="cuda", precision=precision, mode="both", **TINY
    )
    report = run_benchmark(config)
    assert report.limits is not None and report.limits.matmul_dtype == precision
    up, dn = report.results
    placements = {t.placement for t in up.to_device}
    assert placements == {"host_upscale_then_copy_f32", "copy_uint8_then_device_upscale"}
    assert {t.placement for t in dn.to_device} == {"copy_uint8_48"}
    assert up.train and up.train[0].peak is not None and up.train[0].peak.cuda_peak_allocated_bytes
    assert up.efficiency is not None and up.efficiency.matmul_fraction > 0


def test_maxbatch_search_on_cuda_with_budget() -> None:
    from emobench.scenarios.maxbatch import MaxBatchConfig, run_maxbatch

    report = run_maxbatch(
        MaxBatchConfig(
            backbone="resnet18", mode="infer", device="cuda", budget="1GiB", max_batch=4096
        )
    )
    for r in report.maxbatch:
        assert r.method == "probed" and r.max_batch > 0 and r.error is None
        assert r.peak_bytes_at_max is not None and r.peak_bytes_at_max <= 2**30
        assert any(p.outcome == "oom" for p in r.probes) or r.capped
