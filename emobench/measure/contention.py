"""Is anything else using the machine while we measure? CPU time of other processes, load
average, CPU frequency and other processes on the GPU, read at every step of a run.

The CPU share of others is (all CPUs' busy time - this process's CPU time) / (wall time x
usable cores), from the kernel's own counters (/proc/stat through psutil): exact, no sampling
thread, nothing running inside the timed loops.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import psutil

from emobench.device import usable_cores as _usable_cores  # a module name tests patch
from emobench.results.measurements import Contention, StepShare

OTHER_CPU_BUSY = 0.10  # others using more than 10% of the usable cores marks the run as busy
STEP_MIN_WALL_S = 0.2  # shorter steps are too short for a meaningful share


def _busy_cpu_s() -> float:
    t = psutil.cpu_times()
    idle = t.idle + getattr(t, "iowait", 0.0)
    total = sum(t)
    # guest time is already inside user time on Linux; do not count it twice
    total -= getattr(t, "guest", 0.0) + getattr(t, "guest_nice", 0.0)
    return float(total - idle)


def _own_cpu_s(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system + t.children_user + t.children_system)


def _freq_mhz() -> float | None:
    try:
        freq = psutil.cpu_freq()
    except (OSError, NotImplementedError, AttributeError):
        return None
    return float(freq.current) if freq is not None and freq.current else None


class ContentionMonitor:
    """Call `mark(step)` at each step boundary and `finish()` at the end."""

    def __init__(
        self,
        gpu_processes: Callable[[], int | None] | None = None,
        clock: Callable[[], float] = time.perf_counter,
        busy_cpu_s: Callable[[], float] = _busy_cpu_s,
    ) -> None:
        self._proc = psutil.Process()
        self._clock = clock
        self._busy = busy_cpu_s
        self._gpu_processes = gpu_processes
        self._cores = _usable_cores()
        self._start = self._point()
        self._last = self._start
        self._step = "start"
        self._steps: list[StepShare] = []
        self._freqs: list[float] = []
        self._gpu_others: list[int] = []
        self._sample_extras()

    def _point(self) -> tuple[float, float, float]:
        return self._clock(), self._busy(), _own_cpu_s(self._proc)

    def _share(self, a: tuple[float, float, float], b: tuple[float, float, float]) -> float:
        wall = b[0] - a[0]
        if wall <= 0:
            return 0.0
        others = max(0.0, (b[1] - a[1]) - (b[2] - a[2]))
        return min(1.0, others / (wall * self._cores))

    def _sample_extras(self) -> None:
        freq = _freq_mhz()
        if freq is not None:
            self._freqs.append(freq)
        if self._gpu_processes is not None:
            count = self._gpu_processes()
            if count is not None:
                self._gpu_others.append(count)

    def mark(self, step: str) -> None:
        now = self._point()
        wall = now[0] - self._last[0]
        if wall >= STEP_MIN_WALL_S:
            self._steps.append(StepShare(self._step, wall, self._share(self._last, now)))
        self._last, self._step = now, step
        self._sample_extras()

    def finish(self) -> Contention:
        self.mark("end")
        end = self._last
        wall = end[0] - self._start[0]
        own = end[2] - self._start[2]
        others = max(0.0, (end[1] - self._start[1]) - own)
        fraction = self._share(self._start, end)
        busy_steps = [s for s in self._steps if s.other_cpu_fraction > OTHER_CPU_BUSY]
        gpu_others = max(self._gpu_others) if self._gpu_others else None
        busy = fraction > OTHER_CPU_BUSY or bool(gpu_others)
        try:
            load: float | None = os.getloadavg()[0]
        except OSError:
            load = None
        return Contention(
            wall_s=wall,
            usable_cores=self._cores,
            own_cpu_s=own,
            others_cpu_s=others,
            other_cpu_fraction=fraction,
            load_avg_1m=load,
            cpu_freq_mhz_min=min(self._freqs) if self._freqs else None,
            cpu_freq_mhz_max=max(self._freqs) if self._freqs else None,
            gpu_other_processes=gpu_others,
            busy=busy,
            busy_steps=busy_steps,
            note=_note(fraction, self._cores, load, gpu_others, busy_steps) if busy else "",
        )


def _note(
    fraction: float,
    cores: int,
    load: float | None,
    gpu_others: int | None,
    steps: list[StepShare],
) -> str:
    parts = [
        f"machine busy: other processes used {fraction:.0%} of the {cores} usable cores "
        "during this run"
    ]
    if load is not None:
        parts.append(f"load average {load:.2f} on {cores} cores")
    if gpu_others:
        parts.append(f"{gpu_others} other process(es) on the GPU")
    if steps:
        worst = max(steps, key=lambda s: s.other_cpu_fraction)
        parts.append(f"worst step: {worst.step} ({worst.other_cpu_fraction:.0%})")
    return "; ".join(parts) + "; timings may be inflated: rerun on an idle machine"


def nvml_other_processes(nvml: Any, handle: Any, pid: int) -> Callable[[], int | None]:
    """A probe counting compute processes on the GPU other than `pid` (None where hidden)."""

    def count() -> int | None:
        try:
            procs = nvml.nvmlDeviceGetComputeRunningProcesses(handle)
        except Exception:
            return None
        pids = {getattr(p, "pid", None) for p in procs}
        # in a container NVML may show host PIDs: ours then never matches, so say nothing
        if pid not in pids:
            return None
        return len(pids - {pid})

    return count
