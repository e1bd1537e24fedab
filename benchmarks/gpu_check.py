"""The GPU acceptance run: `python benchmarks/gpu_check.py` (`make gpu-check` only wraps it).

Runs from an existing checkout whose .venv was built elsewhere: no pip, no network, no
entry-point scripts (`python -m emobench`, this checkout first on PYTHONPATH). This process
never imports torch, so it holds no CUDA context while the runs measure memory.

    python benchmarks/gpu_check.py           # --quick (default): <= 360 s on one H100/H200
    python benchmarks/gpu_check.py --full    # + fp16, train mode, cuda:1, the gpu tests
    DRY_RUN=1 python benchmarks/gpu_check.py # the commands and the seconds each may take

Each command has its own timeout (its share of the budget; `compare` also gets a
--time-budget a little under it, so it shortens its loops rather than being killed). Every
verdict is printed as soon as its command ends; the last line is `gpu-check: N passed, M
failed`. Exit 1 on any failed check, a command that failed or timed out, a pipeline `error`,
or a report field a check needs that is missing (the verdict names it); 2 without a CUDA
device. Checks that can fail honestly, per pipeline:

* energy: the NVML pass's window >= 1 s holding >= 10 updates of the energy counter, and an
  energy figure (gpu_monitor.window_s, .energy_updates, .energy_joules);
* memory: peak allocated less the weights within 25% of the live-tensor peak
  (memory.peak.cuda_peak_allocated_bytes, memory.weight_bytes, memory.peak.tensor_peak_bytes);
* blocked throughput at batch 1 >= per-call throughput (1000 / latency median), with the block
  size recorded (throughput[b1].images_per_s, .timing.block_calls, latency.stats.median);
* "% of matmul rate" < 100% in eager runs (efficiency.matmul_fraction, .ceiling_kernel);
* --compile: every batch size compiled before timing (compile_s_per_batch);
* maxbatch: the max batch confirmed in a fresh process, the budget's margin there in MiB
  (confirmed, confirmed_in, confirm_margin_bytes);
* every report on the GPU asked for, by UUID (environment.device, environment.gpu_uuid).

Reports and each command's output (`<name>.log`) are kept under results/gpu-check/.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = "benchmarks/gpu_check.py"
OUT = Path("results/gpu-check")  # under ROOT: the commands run there
TOTAL_BUDGET_S = 360  # the quick profile's commands together, on one H100/H200-class GPU
COMPARE_STARTUP_S = 18  # interpreter, torch, CUDA context, models: outside --time-budget
THROUGHPUT_SLACK = 0.95  # blocked b1 throughput may not fall below 95% of per-call
MEMORY_FLOOR_BYTES = 64 * 2**20  # and at least this much, in bytes
MEMORY_TOLERANCE = 0.25  # peak allocated - weights vs the live-tensor peak
ENERGY_MIN_WINDOW_S = 1.0
ENERGY_MIN_UPDATES = 10
MAXBATCH_BUDGET = "16GiB"
MAXBATCH_CAP = "8192"
FRESH_PROCESS = "fresh process"


def preflight() -> int:
    """`--preflight`: the CUDA devices as one JSON line (the only place torch is imported)."""
    import torch

    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    props = [torch.cuda.get_device_properties(i) for i in range(n)]
    info = {
        "count": n,
        "uuids": [str(p.uuid) for p in props],
        "names": [p.name for p in props],
        "sm": [p.major * 10 + p.minor for p in props],
    }
    print(json.dumps(info))
    return 0


def python() -> str:
    """This interpreter when it has torch; else the checkout's .venv (built elsewhere: only
    its interpreter is used, never its entry-point scripts, whose paths are foreign)."""
    import importlib.util

    venv = ROOT / ".venv" / "bin" / "python"
    if importlib.util.find_spec("torch") is None and venv.exists():
        return str(venv)
    return sys.executable


@dataclass
class Run:
    """One command: its label, argv, seconds allowed, the report it writes and how to check it."""

    label: str
    argv: list[str]
    budget_s: int
    report: Path | None = None
    kind: str = "compare"  # compare | maxbatch | tests | preflight
    device: str = "cuda:0"
    batches: tuple[int, ...] = ()
    compiled: bool = False
    expect_refusal: bool = False  # bf16 on a GPU before sm_80: refused is right


@dataclass
class Verdict:
    check: str
    subject: str
    ok: bool
    detail: str


@dataclass
class Tally:
    verdicts: list[Verdict] = field(default_factory=list)

    def add(self, verdict: Verdict) -> None:
        self.verdicts.append(verdict)
        mark = "PASS" if verdict.ok else "FAIL"
        print(f"  {mark}  {verdict.check} | {verdict.subject} | {verdict.detail}", flush=True)

    @property
    def failed(self) -> int:
        return sum(not v.ok for v in self.verdicts)


def compare_run(
    name: str,
    backbone: str,
    budget_s: int,
    *,
    precision: str = "fp32",
    batches: tuple[int, ...] = (1, 64),
    compile_mode: str | None = None,
    device: str = "cuda:0",
    expect_refusal: bool = False,
) -> Run:
    out = OUT / f"{name}.json"
    argv = ["compare", "--backbone", backbone, "--device", device, "--precision", precision]
    if compile_mode:
        argv += ["--compile", compile_mode]
    argv += [a for b in batches for a in ("--batch-size", str(b))]
    argv += ["--quick", "--time-budget", str(budget_s - COMPARE_STARTUP_S)]
    argv += ["--out", str(out), "--force"]
    label = f"compare {backbone} {precision}" + (
        f" --compile {compile_mode}" if compile_mode else ""
    )
    if device != "cuda:0":
        label += f" on {device}"
    return Run(
        label,
        argv,
        budget_s,
        out,
        device=device,
        batches=batches,
        compiled=compile_mode is not None,
        expect_refusal=expect_refusal,
    )


def maxbatch_run(mode: str, budget_s: int) -> Run:
    out = OUT / f"maxbatch-vgg16-{mode}.json"
    argv = ["maxbatch", "--backbone", "vgg16", "--device", "cuda:0", "--mode", mode]
    argv += ["--budget", MAXBATCH_BUDGET, "--max-batch", MAXBATCH_CAP, "--out", str(out)]
    return Run(f"maxbatch vgg16 {mode}", [*argv, "--force"], budget_s, out, kind="maxbatch")


def runs(profile: str, gpus: int, bf16_native: bool) -> list[Run]:
    """The commands of a profile, in order, each with its seconds."""
    plan = [
        Run("preflight (CUDA devices)", [SCRIPT, "--preflight"], 20, kind="preflight"),
        compare_run("compare-vgg16-fp32", "vgg16", 60),
        compare_run(
            "compare-vgg16-bf16", "vgg16", 55, precision="bf16", expect_refusal=not bf16_native
        ),
        compare_run("compare-resnet18-fp32", "resnet18", 45),
        compare_run(
            "compare-resnet18-compile", "resnet18", 95, batches=(64,), compile_mode="default"
        ),
        maxbatch_run("infer", 80),
    ]
    if profile == "full":
        plan += [
            compare_run("compare-vgg16-fp16", "vgg16", 55, precision="fp16"),
            compare_run(
                "compare-resnet18-bf16",
                "resnet18",
                45,
                precision="bf16",
                expect_refusal=not bf16_native,
            ),
            maxbatch_run("train", 120),
            Run(
                "gpu tests",
                ["-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider"],
                240,
                kind="tests",
            ),
        ]
        if gpus > 1:
            plan.append(compare_run("compare-vgg16-fp32-cuda1", "vgg16", 60, device="cuda:1"))
    return plan


def command(run: Run, py: str) -> list[str]:
    if run.kind in ("preflight", "tests"):
        return [py, *run.argv]
    return [py, "-m", "emobench", *run.argv]


# -- reading reports: a missing field is a failed check that names it ------------------------


class Missing(Exception):
    """A field a check needs is not in the report."""


def get(obj: Any, path: str) -> Any:
    """obj["a"]["b"]... for path "a.b"; Missing (naming the path) when absent or null."""
    value = obj
    for key in path.split("."):
        if not isinstance(value, dict) or value.get(key) is None:
            raise Missing(path)
        value = value[key]
    return value


def checked(
    tally: Tally, check: str, subject: str, fn: Callable[[], tuple[bool, str]], where: str = ""
) -> None:
    """Run one check; a missing field fails it with the field's name."""
    try:
        ok, detail = fn()
    except Missing as missing:
        ok, detail = False, f"missing field {where}{missing.args[0]}"
    tally.add(Verdict(check, subject, ok, detail))


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def check_energy(r: dict[str, Any]) -> tuple[bool, str]:
    window = float(get(r, "gpu_monitor.window_s"))
    updates = int(get(r, "gpu_monitor.energy_updates"))
    joules = (r.get("gpu_monitor") or {}).get("energy_joules")
    ok = window >= ENERGY_MIN_WINDOW_S and updates >= ENERGY_MIN_UPDATES and joules is not None
    energy = f"{joules:.2f} J" if joules is not None else "energy absent"
    note = (r.get("gpu_monitor") or {}).get("energy_note")
    return ok, f"window {window:.2f} s, {updates} counter updates, {energy}" + (
        f" ({note})" if note and not ok else ""
    )


def check_memory(r: dict[str, Any]) -> tuple[bool, str]:
    allocated = int(get(r, "memory.peak.cuda_peak_allocated_bytes"))
    weights = int(get(r, "memory.weight_bytes"))
    live = int(get(r, "memory.peak.tensor_peak_bytes"))
    own = allocated - weights
    # cuDNN's per-call workspace is in the allocator's peak, not among the live tensors: a
    # small model's tens of MiB of workspace would exceed 25% alone, hence the floor
    ok = live > 0 and abs(own - live) <= max(MEMORY_TOLERANCE * live, MEMORY_FLOOR_BYTES)
    off = f"{(own - live) / live:+.0%}" if live else "no live tensors"
    own_text = f"allocated {mib(allocated)} - weights {mib(weights)} = {mib(own)}"
    return ok, f"{own_text} vs live tensors {mib(live)} ({off})"


def check_blocked(r: dict[str, Any]) -> tuple[bool, str]:
    median_ms = float(get(r, "latency.stats.median"))
    b1 = next((t for t in r.get("throughput") or [] if t.get("batch_size") == 1), None)
    if b1 is None:
        raise Missing("throughput[batch_size=1]")
    try:
        blocked = float(get(b1, "images_per_s"))
        calls = int(get(b1, "timing.block_calls"))
    except Missing as missing:
        raise Missing(f"throughput[batch_size=1].{missing.args[0]}") from None
    per_call = 1000.0 / median_ms
    ok = blocked >= THROUGHPUT_SLACK * per_call
    return ok, (
        f"b1 {blocked:,.1f} images/s in blocks of {calls} vs per-call {per_call:,.1f} "
        f"(>= {THROUGHPUT_SLACK:.0%} needed)"
    )


def check_fraction(r: dict[str, Any]) -> tuple[bool, str]:
    fraction = float(get(r, "efficiency.matmul_fraction"))
    kernel = get(r, "efficiency.ceiling_kernel")
    return fraction < 1.0, f"{fraction:.1%} of the ceiling ({kernel})"


def check_compiled(r: dict[str, Any], batches: tuple[int, ...]) -> tuple[bool, str]:
    per_batch = get(r, "compile_s_per_batch")
    absent = [b for b in (1, *batches) if str(b) not in per_batch]
    shown = ", ".join(f"b{k} {float(v):.1f} s" for k, v in per_batch.items())
    return not absent, shown + (f"; not compiled first: {absent}" if absent else "")


def check_compare(run: Run, report: dict[str, Any], uuids: list[str], tally: Tally) -> None:
    env = report.get("environment") or {}
    index = int(run.device.split(":")[1])
    wanted = uuids[index] if index < len(uuids) else None

    def on_device() -> tuple[bool, str]:
        device, uuid = get(env, "device"), get(env, "gpu_uuid")
        ok = device == run.device and (wanted is None or uuid == wanted)
        return ok, f"{device} {uuid} (asked {run.device} {wanted or 'uuid unknown'})"

    checked(tally, "ran on the GPU asked for", run.label, on_device, "environment.")
    results = report.get("results") or []
    if not results:
        tally.add(Verdict("pipelines measured", run.label, False, "missing field results"))
    eager = not run.compiled
    for r in results:
        subject = f"{run.label} {r.get('pipeline')}"
        error = r.get("error")
        tally.add(Verdict("pipeline ran", subject, error is None, error or "no error"))
        if error is not None:
            continue
        checked(tally, "energy window >= 1 s, >= 10 updates", subject, lambda r=r: check_energy(r))
        if 1 in run.batches:
            checked(tally, "blocked throughput >= per-call", subject, lambda r=r: check_blocked(r))
        if eager:  # compiled code's buffers and fused kernels are not what these compare
            checked(
                tally,
                "peak allocated - weights ~ live tensors",
                subject,
                lambda r=r: check_memory(r),
            )
            checked(tally, "% of matmul rate < 100%", subject, lambda r=r: check_fraction(r))
        else:
            checked(
                tally,
                "every batch size compiled first",
                subject,
                lambda r=r: check_compiled(r, run.batches),
            )


def check_maxbatch(run: Run, report: dict[str, Any], tally: Tally) -> None:
    results = report.get("maxbatch") or []
    if not results:
        tally.add(Verdict("pipelines searched", run.label, False, "missing field maxbatch"))
    for r in results:
        subject = f"{run.label} {r.get('pipeline')}"
        error = r.get("error")
        tally.add(Verdict("search ran", subject, error is None, error or "no error"))
        if error is not None:
            continue

        def confirmed(r: dict[str, Any] = r) -> tuple[bool, str]:
            n = int(get(r, "max_batch"))
            where = get(r, "confirmed_in")
            margin = int(get(r, "confirm_margin_bytes"))
            ok = n > 0 and r.get("confirmed") is True and where == FRESH_PROCESS and margin >= 0
            per_image = r.get("bytes_per_extra_image")
            images = f" (~{margin / per_image:,.0f} images)" if per_image else ""
            capped = " (capped)" if r.get("capped") else ""
            return ok, (
                f"batch {n:,}{capped} confirmed={r.get('confirmed')} in a {where}, "
                f"{mib(margin)} of the budget left{images}"
            )

        checked(tally, "max batch confirmed, margin in MiB", subject, confirmed)


# -- running -------------------------------------------------------------------------------


def execute(run: Run, py: str, log: Path) -> tuple[int | None, float, str]:
    """Run one command under its timeout, output to `log`: (exit code or None on timeout,
    seconds, its output's last lines). The whole process group is killed at the timeout, so
    no fresh-process child or compile worker outlives it."""
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    }
    started = time.monotonic()
    with log.open("w") as sink:
        proc = subprocess.Popen(
            command(run, py),
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            code: int | None = proc.wait(timeout=run.budget_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            code = None
        except BaseException:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    tail = log.read_text(errors="replace").strip().splitlines()[-3:]
    return code, time.monotonic() - started, " / ".join(line.strip() for line in tail)


def dry_run(plan: list[Run], py: str, profile: str) -> int:
    total = sum(r.budget_s for r in plan)
    for r in plan:
        print(f"# {r.label}: {r.budget_s} s")
        print(shlex.join(command(r, py)))
    limit = f" (limit {TOTAL_BUDGET_S} s)" if profile == "quick" else ""
    print(f"# total budget: {total} s{limit}")
    print("# each report's checks are printed as its command ends; last line:")
    print("# gpu-check: N passed, M failed")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", dest="profile", action="store_const", const="quick")
    parser.add_argument("--full", dest="profile", action="store_const", const="full")
    parser.add_argument("--preflight", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.preflight:
        return preflight()
    profile = args.profile or "quick"
    py = python()
    if os.environ.get("DRY_RUN", "") not in ("", "0"):
        return dry_run(runs(profile, gpus=2, bf16_native=True), py, profile)
    os.chdir(ROOT)
    OUT.mkdir(parents=True, exist_ok=True)
    tally = Tally()
    started = time.monotonic()
    first, *_ = runs(profile, gpus=1, bf16_native=True)
    log = OUT / "preflight.log"
    code, seconds, tail = execute(first, py, log)
    info: dict[str, Any] = {}
    if code == 0:
        try:
            info = json.loads(log.read_text().strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            info = {}
    if not info.get("count"):
        print(f"error: gpu-check needs a CUDA device (preflight: {tail or 'no output'})")
        print("gpu-check: 0 passed, 1 failed")
        return 2
    print(f"preflight: {info['count']} GPU(s): {', '.join(info['names'])} ({seconds:.1f} s)")
    uuids = list(info.get("uuids") or [])
    plan = runs(profile, int(info["count"]), bf16_native=min(info.get("sm") or [0]) >= 80)[1:]
    for run in plan:
        print(f"$ {shlex.join(command(run, py))}  (budget {run.budget_s} s)", flush=True)
        name = run.report.stem if run.report else run.label.replace(" ", "-")
        if run.report is not None:
            run.report.unlink(missing_ok=True)  # never check an earlier run's report
        code, seconds, tail = execute(run, py, OUT / f"{name}.log")
        if code is None:
            why = f"killed after {run.budget_s} s; last output: {tail}"
            tally.add(Verdict("command finished in its budget", run.label, False, why))
            continue
        if run.expect_refusal:
            refused = code == 2 and "--allow-emulated" in tail
            tally.add(Verdict("emulated bf16 refused", run.label, refused, f"exit {code}: {tail}"))
            continue
        ok = code == 0
        detail = f"exit {code} in {seconds:.1f} s" + ("" if ok else f": {tail}")
        tally.add(Verdict("command succeeds", run.label, ok, detail))
        # a run that exited 1 may still have written its report: its errors are shown below
        if run.report is None or not run.report.exists():
            continue
        try:
            report = json.loads(run.report.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            tally.add(Verdict("report readable", run.label, False, str(exc)))
            continue
        if run.kind == "maxbatch":
            check_maxbatch(run, report, tally)
        else:
            check_compare(run, report, uuids, tally)
    passed = len(tally.verdicts) - tally.failed
    print(f"wall time {time.monotonic() - started:.0f} s")
    print(f"gpu-check: {passed} passed, {tally.failed} failed")
    return 1 if tally.failed else 0


if __name__ == "__main__":
    sys.exit(main())
