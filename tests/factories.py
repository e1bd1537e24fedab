"""Reports, suites and clocks built in memory, shared by tests of several wings."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from emobench import results as R
from emobench.measure.flops import ParamCounts
from emobench.measure.memory import PeakMemory
from emobench.measure.timing import TimingResult
from emobench.results import (
    BatchTiming,
    MemoryResult,
    PipelineResult,
    PreprocessResult,
    Report,
    Transfer,
)
from emobench.results.measurements import Probe
from emobench.stats.summary import Stats

TIGHT_UP = [100.0, 101.0, 99.0, 100.5, 99.5, 100.2, 99.8, 100.1, 99.9, 100.3]
TIGHT_DN = [10.0, 10.1, 9.9, 10.05, 9.95, 10.02, 9.98, 10.01, 9.99, 10.03]


def timing(samples: list[float]) -> TimingResult:
    return TimingResult(samples[0] * 1.5, 1, Stats.from_samples(samples, "ms"), "perf_counter_ns")


def pipeline_result(
    backbone: str,
    pipeline: str,
    latency_ms: list[float],
    params: int,
    copied: list[str] | None = None,
) -> PipelineResult:
    size = 224 if pipeline == "upscale224" else 48
    batch = [s * 4 for s in latency_ms]
    return PipelineResult(
        backbone=backbone,
        pipeline=pipeline,
        input_size=size,
        feature_map=[7, 7] if size == 224 else [3, 3],
        transfer=Transfer("random", copied or [], {}, ["head.weight"]),
        params=ParamCounts(params, params, 0),
        flops_per_image=params * 100,
        latency=timing(latency_ms),
        throughput=[BatchTiming(8, 8 / (sorted(batch)[len(batch) // 2] / 1000), timing(batch))],
        end_to_end=[],
        preprocess=[
            PreprocessResult(
                "per_image_pil", 16, Stats.from_samples([s * 5 for s in latency_ms], "us/image")
            )
        ],
        memory=MemoryResult(
            input_bytes_per_image=3 * size * size * 4,
            weight_bytes=params * 4,
            peak_batch_size=8,
            peak=PeakMemory(
                "vmhwm", tensor_peak_bytes=size * 1000, cpu_peak_rss_growth_bytes=size * 2000
            ),
        ),
    )


def make_report(
    up_latency: list[float] = TIGHT_UP,
    dn_latency: list[float] = TIGHT_DN,
    dn_params: int = 8_424_775,
    device_name: str = "AMD EPYC",
    backbones: tuple[str, ...] = ("vgg16",),
    dn_copied: list[str] | None = None,
) -> Report:
    results = []
    for b in backbones:
        results.append(pipeline_result(b, "upscale224", up_latency, 134_289_223))
        results.append(pipeline_result(b, "direct48", dn_latency, dn_params, dn_copied))
    return Report(
        kind="run",
        created_utc="2026-11-25T00:00:00Z",
        wall_time_s=1.0,
        config={"backbones": list(backbones)},
        environment={
            "machine": "x86_64",
            "device": "cpu",
            "device_name": device_name,
            "cpu_model": device_name,
            "cpu_isa": "avx512",
            "cpu_capability": "AVX512",
            "cpu_affinity_count": 2,
            "num_threads": 2,
            "torch": "2.14.1",
        },
        results=results,
    )


def with_env(report: Report, **env: object) -> Report:
    return dataclasses.replace(report, environment=report.environment | env)


def other_class(report: Report) -> Report:
    """The same report as if measured on an AVX2-only CPU: another machine class."""
    return with_env(report, cpu_isa="avx2", cpu_capability="AVX2")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def maxbatch_report(up: int, dn: int, capped: bool = False) -> R.Report:
    def result(pipeline: str, n: int) -> R.MaxBatchResult:
        return R.MaxBatchResult(
            backbone="vgg16",
            pipeline=pipeline,
            mode="infer",
            method="probed",
            budget_bytes=8 * 2**30,
            max_batch=n,
            safe_batch=int(n * 0.95),
            margin=0.05,
            capped=capped and pipeline == "direct48",
            confirmed=True,
            peak_bytes_at_max=7 * 2**30,
            bytes_per_extra_image=1e6,
            probes=[Probe(1, "ok", 100, 0.1), Probe(n, "ok", 7 * 2**30, 0.5)],
        )

    return R.Report(
        kind="maxbatch",
        created_utc="2026-11-25T00:00:00Z",
        wall_time_s=1.0,
        config={"mode": "infer", "budget_bytes": 8 * 2**30},
        environment={"device": "cuda:0", "gpu_name": "NVIDIA H100"},
        results=[],
        maxbatch=[result("upscale224", up), result("direct48", dn)],
    )


TINY_SUITE = """
[suite]
backbones = ["resnet18"]
device = "cpu"
batch_sizes = [2]
warmup_iters = 0
min_iters = 2
min_time_s = 0
max_time_s = 0.001
limits_time_s = 0.01
preprocess_images = 4
"""


def csv_file(path: Path, rows: list[str], header: str = "emotion,pixels") -> Path:
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


PIX = " ".join(["7"] * 2304)


# five runs whose direct48 latency drifts run to run (the within-run samples stay tight)
DRIFT = (1.00, 1.04, 0.97, 1.02, 0.99)


def drifting_runs() -> list:
    return [make_report(dn_latency=[s * f for s in TIGHT_DN]) for f in DRIFT]


def with_config(report: R.Report, **config: object) -> R.Report:
    import dataclasses

    return dataclasses.replace(report, config=report.config | config)


# a quick real search: the cheapest model, one pipeline, a small budget
SMALL_CPU_SEARCH = [
    "maxbatch",
    "--backbone",
    "resnet18",
    "--device",
    "cpu",
    "--pipeline",
    "direct48",
]
