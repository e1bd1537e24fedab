"""The GPU acceptance run: `make gpu-check` (or `make gpu-check DRY_RUN=1` to list the commands).

On a CUDA machine it runs the GPU tests, `compare` for vgg16 and resnet18 in fp32, fp16, bf16
(where native) and with `--compile default`, `maxbatch` in infer and train mode, then checks the
invariants that catch the CUDA defects fixed in the "CUDA numbers you can trust" issue:

* block-timed throughput at batch 1 >= per-call throughput (1000 / latency median);
* the report ran on the requested device (cuda:0, and cuda:1 when a second GPU exists), by UUID;
* NVML device memory used >= allocator peak reserved >= allocator peak allocated;
* "% of matmul rate" below 100% in fp32 (TF32 reference, the convolutions' math mode);
* maxbatch's max batch runs, and max + 1 fails, each in a fresh process under the same budget.

Every report is kept under results/gpu-check/. Prints a verdict table; exits 1 on any broken
invariant, 2 when no CUDA device is present (outside a dry run).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

OUT = Path("results/gpu-check")
BACKBONES = ("vgg16", "resnet18")
PRECISIONS = ("fp32", "fp16", "bf16")
BATCHES = ("1", "64")
MODES = ("infer", "train")
THROUGHPUT_SLACK = 0.95  # blocked b1 throughput may not fall below 95% of per-call
EMOBENCH = [sys.executable, "-m", "emobench.cli"]


@dataclass
class Verdict:
    check: str
    subject: str
    ok: bool
    detail: str


def commands(gpus: int) -> list[tuple[str, list[str], Path | None]]:
    """(label, argv, report path) for every run of the acceptance check."""
    runs: list[tuple[str, list[str], Path | None]] = [
        ("gpu tests", [sys.executable, "-m", "pytest", "-m", "gpu", "-q"], None)
    ]
    batches = [a for b in BATCHES for a in ("--batch-size", b)]
    for backbone in BACKBONES:
        for precision in PRECISIONS:
            out = OUT / f"compare-{backbone}-{precision}.json"
            argv = [*EMOBENCH, "compare", "--backbone", backbone, "--device", "cuda:0"]
            argv += ["--precision", precision, *batches, "--out", str(out)]
            runs.append((f"compare {backbone} {precision}", argv, out))
        out = OUT / f"compare-{backbone}-compile.json"
        argv = [*EMOBENCH, "compare", "--backbone", backbone, "--device", "cuda:0"]
        argv += ["--compile", "default", *batches, "--out", str(out)]
        runs.append((f"compare {backbone} compile", argv, out))
    if gpus > 1:
        out = OUT / "compare-vgg16-fp32-cuda1.json"
        argv = [*EMOBENCH, "compare", "--backbone", "vgg16", "--device", "cuda:1", *batches]
        runs.append(("compare vgg16 fp32 on cuda:1", [*argv, "--out", str(out)], out))
    for mode in MODES:
        out = OUT / f"maxbatch-vgg16-{mode}.json"
        argv = [*EMOBENCH, "maxbatch", "--backbone", "vgg16", "--device", "cuda:0"]
        runs.append((f"maxbatch vgg16 {mode}", [*argv, "--mode", mode, "--out", str(out)], out))
    return runs


def check_compare(label: str, report: dict, requested: str) -> list[Verdict]:
    import torch

    out = []
    env = report["environment"]
    index = int(requested.split(":")[1])
    uuid = str(torch.cuda.get_device_properties(index).uuid)
    out.append(
        Verdict(
            "ran on the requested GPU",
            label,
            env.get("device") == requested and env.get("gpu_uuid") == uuid,
            f"{env.get('device')} {env.get('gpu_uuid')} (wanted {requested} {uuid})",
        )
    )
    for r in report["results"]:
        subject = f"{label} {r['pipeline']}"
        lat = r.get("latency")
        thr = next((t for t in r["throughput"] if t["batch_size"] == 1), None)
        if lat and thr:
            per_call = 1000.0 / lat["stats"]["median"]
            out.append(
                Verdict(
                    "blocked throughput >= per-call",
                    subject,
                    thr["images_per_s"] >= THROUGHPUT_SLACK * per_call,
                    f"b1 {thr['images_per_s']:.1f} vs per-call {per_call:.1f} images/s "
                    f"({thr['timing']['timer']})",
                )
            )
        peak = (r.get("memory") or {}).get("peak") or {}
        alloc, reserved = (
            peak.get("cuda_peak_allocated_bytes"),
            peak.get("cuda_peak_reserved_bytes"),
        )
        used = peak.get("nvml_device_used_bytes")
        if alloc is not None and reserved is not None:
            ok = reserved >= alloc and (used is None or used >= reserved)
            out.append(
                Verdict(
                    "NVML used >= reserved >= allocated",
                    subject,
                    ok,
                    f"{used} >= {reserved} >= {alloc}" + (" (no NVML)" if used is None else ""),
                )
            )
        eff = r.get("efficiency")
        if eff and report["config"].get("precision") == "fp32":
            frac = eff["matmul_fraction"]
            out.append(
                Verdict(
                    "% of matmul rate < 100% (fp32/TF32)",
                    subject,
                    frac < 1.0,
                    f"{frac:.1%} of {report['limits'].get('matmul_math')} matmul",
                )
            )
    return out


FRESH_PROBE = """
import sys, torch
from emobench.scenarios.maxbatch import allocator_fraction, make_step, non_allocator_bytes
from emobench.measure import search as mb
from emobench.models import build_model
backbone, pipeline, mode, batch, budget = sys.argv[1:4] + [int(a) for a in sys.argv[4:6]]
device = torch.device("cuda", 0)
model = build_model(backbone, pipeline).to(device)
step = make_step(model, mode, device)
step(1)
total = torch.cuda.get_device_properties(device).total_memory
torch.cuda.set_per_process_memory_fraction(
    allocator_fraction(budget, non_allocator_bytes(device), total), device)
try:
    step(batch)
    print("ok")
except Exception as exc:
    print("oom" if mb.is_oom(exc) else f"error {exc}")
"""


def fresh_probe(backbone: str, pipeline: str, mode: str, batch: int, budget: int) -> str:
    argv = [sys.executable, "-I", "-c", FRESH_PROBE, backbone, pipeline, mode]
    done = subprocess.run([*argv, str(batch), str(budget)], capture_output=True, text=True)
    return (done.stdout.strip().splitlines() or [f"error rc={done.returncode}"])[-1]


def check_maxbatch(label: str, report: dict) -> list[Verdict]:
    out = []
    mode = report["config"]["mode"]
    budget = report["config"]["budget_bytes"]
    for r in report["maxbatch"]:
        if r["capped"] or not r["max_batch"]:
            continue
        n = r["max_batch"]
        at = fresh_probe(r["backbone"], r["pipeline"], mode, n, budget)
        above = fresh_probe(r["backbone"], r["pipeline"], mode, n + 1, budget)
        out.append(
            Verdict(
                "max batch fits, max + 1 does not (fresh process)",
                f"{label} {r['pipeline']}",
                at == "ok" and above == "oom",
                f"batch {n}: {at}; batch {n + 1}: {above}; reserved at max "
                f"{r.get('reserved_bytes_at_max')}, "
                f"outside allocator {r.get('non_allocator_bytes')}",
            )
        )
    return out


def main() -> int:
    dry = os.environ.get("DRY_RUN", "") not in ("", "0")
    gpus = 1
    if not dry:
        import torch

        if not torch.cuda.is_available():
            print("error: gpu-check needs a CUDA device (DRY_RUN=1 lists the commands)")
            return 2
        gpus = torch.cuda.device_count()
    runs = commands(gpus if not dry else 2)
    if dry:
        for label, argv, _ in runs:
            print(f"# {label}\n{shlex.join(argv)}")
        print(
            "# then: invariants over the reports in results/gpu-check/ and fresh-process "
            "probes at max batch and max + 1 for each maxbatch report"
        )
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    verdicts: list[Verdict] = []
    for label, argv, out in runs:
        print(f"$ {shlex.join(argv)}", flush=True)
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            refused = "--allow-emulated" in done.stderr  # bf16 on a pre-Ampere GPU
            verdicts.append(Verdict("command succeeds", label, refused, last))
            continue
        verdicts.append(Verdict("command succeeds", label, True, "exit 0"))
        if out is None:
            continue
        report = json.loads(out.read_text())
        if report["kind"] == "maxbatch":
            verdicts += check_maxbatch(label, report)
        else:
            requested = "cuda:1" if "cuda:1" in label else "cuda:0"
            verdicts += check_compare(label, report, requested)
    from rich.console import Console
    from rich.table import Table

    table = Table(title="GPU acceptance check")
    for col in ("check", "subject", "verdict", "detail"):
        table.add_column(col, overflow="fold")
    for v in verdicts:
        table.add_row(v.check, v.subject, "pass" if v.ok else "[red]FAIL[/red]", v.detail)
    Console(width=200).print(table)
    failed = sum(not v.ok for v in verdicts)
    print(f"gpu-check: {len(verdicts) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
