"""The contention monitor: another process's CPU share noticed, a quiet machine not flagged."""

from __future__ import annotations

import pytest

from emobench.measure import contention as contention_mod
from emobench.measure.contention import ContentionMonitor


class FakeMachine:
    """Wall clock and all-CPU busy seconds, advanced by hand."""

    def __init__(self) -> None:
        self.now = 0.0
        self.busy = 0.0

    def clock(self) -> float:
        return self.now

    def busy_cpu_s(self) -> float:
        return self.busy


def test_contention_monitor_flags_other_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    machine = FakeMachine()
    monkeypatch.setattr(contention_mod, "_own_cpu_s", lambda proc: 0.0)
    monkeypatch.setattr(contention_mod, "_usable_cores", lambda: 2)
    monitor = ContentionMonitor(clock=machine.clock, busy_cpu_s=machine.busy_cpu_s)
    monitor.mark("vgg16/upscale224: latency, batch 1")
    machine.now, machine.busy = 10.0, 10.0  # someone else kept one of two cores busy
    monitor.mark("vgg16/direct48: latency, batch 1")
    machine.now += 10.0  # then the machine was idle
    result = monitor.finish()
    assert result.busy and result.other_cpu_fraction == pytest.approx(0.25)
    assert result.others_cpu_s == pytest.approx(10.0)
    (worst,) = result.busy_steps
    assert worst.step == "vgg16/upscale224: latency, batch 1"
    assert worst.other_cpu_fraction == pytest.approx(0.5)
    assert "other processes used 25% of the 2 usable cores" in result.note
    assert "worst step: vgg16/upscale224: latency, batch 1 (50%)" in result.note


def test_quiet_machine_is_not_flagged(monkeypatch: pytest.MonkeyPatch) -> None:
    machine = FakeMachine()
    monkeypatch.setattr(contention_mod, "_own_cpu_s", lambda proc: machine.busy)
    monitor = ContentionMonitor(clock=machine.clock, busy_cpu_s=machine.busy_cpu_s)
    machine.now, machine.busy = 5.0, 9.0  # all the busy time is our own
    result = monitor.finish()
    assert not result.busy and result.other_cpu_fraction == 0.0 and result.note == ""
