"""The maxbatch scenario: CPU fit and confirmation under a budget, the CUDA path with an injected
OOM, failed probes release their memory."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from emobench.errors import UsageError
from emobench.measure import search as mb
from emobench.models import build_model
from emobench.scenarios.maxbatch import MaxBatchConfig, make_step, run_maxbatch


def test_train_step_updates_weights() -> None:
    model = build_model("resnet18", "direct48")
    before = model.head[-1].weight.detach().clone()
    make_step(model, "train", torch.device("cpu"))(2)
    assert not torch.equal(before, model.head[-1].weight)
    assert model.training


def test_cpu_maxbatch_real_run_under_budget(tmp_path: Path) -> None:
    """A real CPU search: small fit runs in this process, one confirmation in a child."""
    config = MaxBatchConfig(
        backbone="resnet18",
        pipelines=("direct48",),
        mode="infer",
        device="cpu",
        budget="1.2GiB",
        max_batch=64,
    )
    report = run_maxbatch(config)
    (result,) = report.maxbatch
    assert result.method == "predicted+confirmed"
    assert result.budget_bytes == int(1.2 * 2**30)
    assert 16 <= result.max_batch <= 64
    assert result.safe_batch == math.floor(result.max_batch * 0.95)
    assert result.fit is not None and result.fit.per_image_bytes > 0
    assert result.peak_bytes_at_max is not None and result.peak_bytes_at_max <= result.budget_bytes
    assert result.fit_error is not None
    assert any("child" in (p.message or "") for p in result.probes)


class FakeCuda:
    """Stands in for torch.cuda so the CUDA search path runs on CPU with an injected OOM."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.fractions: list[float] = []
        self.peak = 0
        self.resets = 0

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import types

        cuda = torch.cuda
        monkeypatch.setattr(cuda, "synchronize", lambda device=None: None)
        monkeypatch.setattr(cuda, "empty_cache", lambda: None)
        monkeypatch.setattr(cuda, "reset_peak_memory_stats", self._reset)
        monkeypatch.setattr(cuda, "max_memory_allocated", lambda device=None: self.peak)
        monkeypatch.setattr(cuda, "max_memory_reserved", lambda device=None: self.peak + 512)
        monkeypatch.setattr(cuda, "memory_reserved", lambda device=None: 2**30)
        # 1 GiB reserved by the allocator + 600 MiB outside it (context, handles) in use
        monkeypatch.setattr(
            cuda, "mem_get_info", lambda device=None: (8 * 2**30 - 2**30 - 600 * 2**20, 8 * 2**30)
        )
        monkeypatch.setattr(
            cuda, "set_per_process_memory_fraction", lambda f, device=None: self.fractions.append(f)
        )
        monkeypatch.setattr(
            cuda,
            "get_device_properties",
            lambda device=None: types.SimpleNamespace(total_memory=8 * 2**30),
        )

    def _reset(self, device=None) -> None:
        self.resets += 1
        self.peak = 0

    def step_factory(self):
        def make(model, mode, device):
            def step(n: int) -> None:
                self.peak = 1000 + 100 * min(n, self.limit)
                if n > self.limit:
                    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

            return step

        return make


def test_cuda_search_path_with_injected_oom(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    import emobench.scenarios.maxbatch as mbmod

    fake = FakeCuda(limit=300)
    fake.install(monkeypatch)
    monkeypatch.setattr(mbmod, "make_step", fake.step_factory())
    # no model is needed on a fake GPU: the step above stands in for the forward pass
    monkeypatch.setattr(
        mbmod, "build_model", lambda *a, **k: types.SimpleNamespace(to=lambda d: None)
    )
    config = MaxBatchConfig(backbone="resnet18", pipelines=("direct48",), max_batch=4096)
    notes: list[str] = []
    gpu = torch.device("cuda", 0)  # only a name here: every torch.cuda call it meets is faked
    result = mbmod._cuda_maxbatch(config, "direct48", gpu, 2 * 2**30, notes.append)
    assert result.method == "probed" and result.max_batch == 300 and result.confirmed
    assert result.safe_batch == 285 and not result.capped
    assert result.peak_bytes_at_max == 1000 + 100 * 300
    assert result.bytes_per_extra_image == pytest.approx(100.0)
    # the budget less the 600 MiB outside the allocator, as a fraction; then restored
    assert fake.fractions == [pytest.approx((2 * 2**30 - 600 * 2**20) / (8 * 2**30)), 1.0]
    assert result.non_allocator_bytes == 600 * 2**20
    assert result.reserved_bytes_at_max == 1000 + 100 * 300 + 512
    # peak stats reset before every probe, and before the batch-1 step that creates handles
    assert fake.resets == len(result.probes) + 1
    assert sum(p.outcome == mb.OOM for p in result.probes) >= 1
    assert notes[0] == "batch 1: ok"


def test_fit_grows_while_cheap_and_stops_at_memory_share(monkeypatch: pytest.MonkeyPatch) -> None:
    import emobench.scenarios.maxbatch as mbmod

    budget = 64 * 2**20
    monkeypatch.setattr(mbmod, "build_model", lambda *a, **k: None)
    monkeypatch.setattr(mbmod, "make_step", lambda model, mode, device: lambda n: None)
    # RSS growth of budget/64 per image: batch 32 grows by half the budget
    monkeypatch.setattr(
        mbmod, "process_peak_rss", lambda fn: (100, 100 + fn.args[0] * budget // 64, "fake")
    )
    config = MaxBatchConfig(backbone="resnet18", max_batch=65536)
    probes, points = mbmod._fit_points(config, "direct48", budget, lambda text: None)
    assert [n for n, _ in points] == [2, 4, 8, 16, 32]
    assert all(p.outcome == mb.OK for p in probes)
    assert list(mbmod.fit_batches(20)) == [2, 4, 8, 16]


def test_cuda_budget_below_what_is_outside_the_allocator_is_refused() -> None:
    import emobench.scenarios.maxbatch as mbmod

    with pytest.raises(UsageError, match="already used outside torch's allocator"):
        mbmod.allocator_fraction(512 * 2**20, 600 * 2**20, 8 * 2**30)
    assert mbmod.allocator_fraction(2**30, 2**29, 2**32) == pytest.approx(2**29 / 2**32)


def test_failed_train_probe_releases_gradients_and_optimizer_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An OOM in optimizer.step skips zero_grad; the next probe must start as empty as the first."""
    import emobench.scenarios.maxbatch as mbmod
    from tests.conftest import tiny_model

    model = tiny_model("resnet18", "direct48")
    step = mbmod.make_step(model, "train", torch.device("cpu"))

    def grad_bytes() -> int:
        return sum(
            p.grad.numel() * p.grad.element_size() for p in model.parameters() if p.grad is not None
        )

    def oom_in_step(self, closure=None):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")

    before = grad_bytes()
    monkeypatch.setattr(torch.optim.SGD, "step", oom_in_step)
    hooks = mb.MemoryHooks(lambda: None, grad_bytes, lambda: None)
    outcome = mb.guarded_try_batch(step, hooks)(4)
    assert outcome.outcome == mb.OOM and outcome.message.startswith("[allocator] ")
    assert before == 0 and grad_bytes() == 0  # the backward's gradients are gone
    assert all(p.grad is None for p in model.parameters())
