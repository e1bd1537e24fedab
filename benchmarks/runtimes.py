"""Torch eager vs ONNX Runtime fp32 vs ONNX Runtime int8, at 1 and 2 threads, on this machine.

Run by hand, alone (not a test; another process on the machine skews every figure):
`.venv/bin/python benchmarks/runtimes.py [--backbones resnet18 vgg16 mobilenet_v3_small]`.

Part 1 runs ONE `compare` per backbone with `--runtime torch --runtime onnxruntime --quantize
int8 --threads 1 --threads 2` (quick loops, batch 8, synthetic images): every figure of a
backbone comes from one run, so its ratios are side by side. It prints, per backbone and
pipeline, each variant's batch-1 latency (median and 95% interval), throughput at batch 8, the
file size, the fresh-process cold start and peak RSS, and the speed-up over torch at the same
thread count; then each variant's direct48/upscale224 batch-1 ratio (paired rounds).

Part 3 (`--parity-only` runs it alone): every registered family, both pipelines, exported and
checked (fp32 parity, int8 size and agreement).

Part 2 (the issue's cost target): `compare --backbone resnet18 --runtime onnxruntime --quick`
on the CPU, export included, in forward units (one vgg16 upscale224 batch-1 forward, as
benchmarks/cost.py): target <= 60.
"""

from __future__ import annotations

import argparse
import time

import torch

from emobench.config import QUICK, RunConfig
from emobench.names import DIRECT, UPSCALE
from emobench.results import Report
from emobench.scenarios.compare import run_benchmark

COST_TARGET = 60
BATCH = 8


def unit_forward_s() -> float:
    from cost import unit_forward_s as unit  # benchmarks/cost.py (this script's folder)

    return unit()


def _ms(report: Report, backbone: str, pipeline: str, variant: str) -> tuple[str, float | None]:
    r = report.result(backbone, pipeline, variant)
    if r is None or r.error or r.latency is None:
        return ("error: " + (r.error or "")[:60] if r and r.error else "—"), None
    s = r.latency.stats
    ci = ""
    if s.median_ci_low is not None and s.median_ci_high is not None:
        ci = f" [{s.median_ci_low:.2f}, {s.median_ci_high:.2f}]"
    return f"{s.median:.2f}{ci}", s.median


def _row(report: Report, backbone: str, pipeline: str, variant: str) -> list[str]:
    text, median = _ms(report, backbone, pipeline, variant)
    r = report.result(backbone, pipeline, variant)
    thr = next((t.images_per_s for t in (r.throughput if r else []) if t.batch_size == BATCH), None)
    dep = r.deployment if r else None
    size = f"{dep.file_bytes / 1e6:.1f}" if dep else "—"
    fresh = dep.fresh if dep else None
    cold = f"{fresh.cold_start_ms:.0f}" if fresh else "—"
    rss = f"{fresh.peak_rss_bytes / 2**20:.0f}" if fresh else "—"
    threads = variant.rsplit(" ", 1)[-1]
    _torch_text, torch_ms = _ms(report, backbone, pipeline, f"torch {threads}")
    speed = f"{torch_ms / median:.2f}x" if torch_ms and median else "—"
    return [variant, text, f"{thr:.1f}" if thr else "—", size, cold, rss, speed]


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print("| " + " | ".join("-" * w for w in widths) + " |")
    for r in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")


def side_by_side(backbone: str) -> Report:
    config = RunConfig(
        backbones=(backbone,),
        device="cpu",
        batch_sizes=(BATCH,),
        measurements=("latency", "throughput", "end_to_end", "memory"),
        runtimes=("torch", "onnxruntime"),
        quantize="int8",
        thread_counts=(1, 2),
        threads=2,
        quick=True,
        **QUICK,  # type: ignore[arg-type]
    )
    started = time.perf_counter()
    report = run_benchmark(config)
    print(f"\n## {backbone}: one compare, {time.perf_counter() - started:.0f} s wall")
    header = [
        "variant",
        "b1 latency ms [95% CI]",
        f"b{BATCH} img/s",
        "file MB",
        "cold start ms",
        "peak RSS MiB",
        "vs torch, b1",
    ]
    for pipeline in (UPSCALE, DIRECT):
        print(f"\n{backbone} / {pipeline}")
        _print_table(header, [_row(report, backbone, pipeline, v) for v in report.variants])
    print(f"\n{backbone}: direct48 / upscale224 batch-1 latency ratio (paired rounds)")
    rows = []
    for v in report.variants:
        p = report.paired_ratio(backbone, "latency_b1_median_ms", v)
        if p is None:
            rows.append([v, "—"])
            continue
        ci = f" [{p.ci_low:.2f}, {p.ci_high:.2f}]" if p.ci_low and p.ci_high else ""
        rows.append([v, f"{p.ratio:.2f}x{ci}"])
    _print_table(["variant", "upscale224 / direct48"], rows)
    for r in report.results:
        if r.deployment and r.deployment.parity and r.deployment.parity.passed is False:
            print(f"PARITY FAILED: {r.variant} {r.pipeline}")
    return report


def cost() -> None:
    unit = unit_forward_s()
    config = RunConfig(
        backbones=("resnet18",), device="cpu", runtimes=("onnxruntime",), quick=True, **QUICK
    )  # type: ignore[arg-type]
    started = time.perf_counter()
    report = run_benchmark(config)
    wall = time.perf_counter() - started
    units = wall / unit
    export_s = sum((r.deployment.export_s or 0.0) for r in report.results if r.deployment)
    verdict = "meets" if units <= COST_TARGET else "MISSES"
    print(
        f"\n## cost: compare --backbone resnet18 --runtime onnxruntime --quick\n"
        f"unit forward (vgg16 upscale224 b1) {unit * 1e3:.1f} ms; run {wall:.1f} s = "
        f"{units:.1f} units (export and quantization {export_s:.1f} s of it); target <= "
        f"{COST_TARGET}: {verdict}"
    )


def parity_all() -> None:
    """Part 3: every registered family, both pipelines: the export, fp32 parity against torch
    eager on 8 synthetic images (random-init models; the logit scale is what the models give),
    and the int8 file's size and its agreement."""
    import tempfile
    from pathlib import Path

    from emobench.config import BACKBONE_NAMES
    from emobench.data.images import synthetic_images
    from emobench.models import build_model
    from emobench.runtimes.onnx import ExportError, OrtSettings, deploy
    from emobench.runtimes.torch import Pipeline

    print("\n## parity: every family, both pipelines (fp32 held to 1e-4 x logit scale)")
    rows = []
    host = torch.from_numpy(synthetic_images(64, seed=0))
    for backbone in BACKBONE_NAMES:
        for pipeline in (UPSCALE, DIRECT):
            torch.manual_seed(0)
            pipe = Pipeline(pipeline, build_model(backbone, pipeline), torch.device("cpu"))
            x = pipe.preprocess_batched(host)
            with tempfile.TemporaryDirectory() as folder:
                exported: dict = {}
                try:
                    fp32 = deploy(pipe, Path(folder), OrtSettings(2), x[:8], exported=exported)
                    int8 = deploy(
                        pipe, Path(folder), OrtSettings(2), x[:8], "int8", x, exported=exported
                    )
                except ExportError as exc:
                    rows.append([backbone, pipeline, "FAILED: " + str(exc)[:80], "", "", "", ""])
                    continue
            a, b = fp32.deployment, int8.deployment
            assert a and b and a.parity and b.parity
            rows.append(
                [
                    backbone,
                    pipeline,
                    f"{a.exporter} opset {a.opset}",
                    f"{a.parity.max_abs_diff:.2e} / {a.parity.logit_scale:.3g}",
                    f"{a.parity.top1_agreement:.0%}" + (" ok" if a.parity.passed else " FAIL"),
                    f"{a.file_bytes / 1e6:.1f} -> {b.file_bytes / 1e6:.1f}",
                    f"{b.parity.top1_agreement:.0%}",
                ]
            )
    _print_table(
        [
            "backbone",
            "pipeline",
            "exporter",
            "fp32 max |diff| / scale",
            "fp32 top-1",
            "file MB fp32 -> int8",
            "int8 top-1 vs torch",
        ],
        rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--backbones", nargs="+", default=["resnet18", "vgg16", "mobilenet_v3_small"]
    )
    parser.add_argument("--skip-cost", action="store_true")
    parser.add_argument("--parity-only", action="store_true", help="only part 3")
    args = parser.parse_args()
    import onnxruntime

    print(
        f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, "
        f"{torch.get_num_threads()} threads, capability "
        f"{torch.backends.cpu.get_cpu_capability()}"
    )
    if args.parity_only:
        parity_all()
        return
    for backbone in args.backbones:
        side_by_side(backbone)
    if not args.skip_cost:
        cost()
    parity_all()


if __name__ == "__main__":
    main()
