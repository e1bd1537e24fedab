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
    """Stands in for torch.cuda so the CUDA search path runs on CPU with an injected OOM.

    Kernels are asynchronous: a step "launches" its work and an error it causes is raised by the
    next synchronize (`pending`), as on a GPU. `sticky` keeps raising it, like a broken context.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.fractions: list[float] = []
        self.peak = 0
        self.resets = 0
        self.ooms = 0  # the allocator's num_ooms
        self.pending: Exception | None = None
        self.sticky = False
        self.scopes: list[object] = []
        self.synced = 0

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import gc
        import types
        from contextlib import nullcontext

        # release() collects garbage after every probe (~0.15 s with torch loaded, for tensors a
        # failed step left behind): the fake device has none, and 40 probes would cost 6 s
        monkeypatch.setattr(gc, "collect", lambda generation=2: 0)
        cuda = torch.cuda
        monkeypatch.setattr(cuda, "synchronize", self._synchronize)
        monkeypatch.setattr(cuda, "empty_cache", lambda: None)
        monkeypatch.setattr(cuda, "reset_peak_memory_stats", self._reset)
        monkeypatch.setattr(cuda, "max_memory_allocated", lambda device=None: self.peak)
        monkeypatch.setattr(cuda, "max_memory_reserved", lambda device=None: self.peak + 512)
        monkeypatch.setattr(cuda, "memory_reserved", lambda device=None: 2**30)
        monkeypatch.setattr(
            cuda,
            "memory_stats",
            lambda device=None: {"num_ooms": self.ooms, "num_alloc_retries": 0},
        )
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
        monkeypatch.setattr(cuda, "device", lambda d: self.scopes.append(d) or nullcontext())

    def _synchronize(self, device=None) -> None:
        self.synced += 1
        if self.pending is not None:
            error = self.pending
            if not self.sticky:
                self.pending = None
            raise error

    def _reset(self, device=None) -> None:
        self.resets += 1
        self.peak = 0

    def step_factory(self, async_error_at: int | None = None, message: str = ""):
        def make(model, mode, device):
            def step(n: int) -> None:
                self.peak = 1000 + 100 * min(n, self.limit)
                if n > self.limit:
                    self.ooms += 1
                    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
                if async_error_at is not None and n >= async_error_at:
                    self.pending = RuntimeError(message)  # raised at the next synchronize

            return step

        return make


class FakeModel:
    def __init__(self) -> None:
        self.moves: list[object] = []

    def to(self, device: object) -> FakeModel:
        self.moves.append(device)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        return None


@pytest.fixture
def fake_gpu(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """A fake CUDA device with a 300-image limit; the fresh-process confirmation recorded."""
    import emobench.scenarios.maxbatch as mbmod

    fake = FakeCuda(limit=300)
    fake.install(monkeypatch)
    monkeypatch.setattr(mbmod, "make_step", fake.step_factory())
    # no model is needed on a fake GPU: the step above stands in for the forward pass
    model = FakeModel()
    monkeypatch.setattr(mbmod, "build_model", lambda *a, **k: model)
    children: list[dict] = []

    def child(config, pipeline, batch, device, cap):  # type: ignore[no-untyped-def]
        children.append({"batch": batch, "device": device, "cap": cap, "moves": [*model.moves]})
        reserved = 1000 + 100 * batch + 512
        return mb.ProbeOutcome(mb.OK, 1000 + 100 * batch, "fresh", reserved), cap - reserved

    monkeypatch.setattr(mbmod, "_cuda_child_probe", child)
    return fake, model, children


def _search(config: MaxBatchConfig | None = None, index: int = 0):  # type: ignore[no-untyped-def]
    import emobench.scenarios.maxbatch as mbmod

    config = config or MaxBatchConfig(backbone="resnet18", pipelines=("direct48",), max_batch=4096)
    notes: list[str] = []
    gpu = torch.device("cuda", index)  # only a name here: every torch.cuda call it meets is faked
    return mbmod._cuda_maxbatch(config, "direct48", gpu, 2 * 2**30, notes.append), notes


def test_cuda_search_path_with_injected_oom(fake_gpu) -> None:  # type: ignore[no-untyped-def]
    fake, _, _ = fake_gpu
    result, notes = _search()
    assert result.method == "probed" and result.max_batch == 300 and result.confirmed
    assert result.safe_batch == 285 and not result.capped
    assert result.peak_bytes_at_max == 1000 + 100 * 300
    assert result.bytes_per_extra_image == pytest.approx(100.0)
    # the budget less the 600 MiB outside the allocator, as a fraction; then restored
    cap = 2 * 2**30 - 600 * 2**20
    assert fake.fractions[0] == pytest.approx(cap / (8 * 2**30)) and fake.fractions[-1] == 1.0
    assert result.non_allocator_bytes == 600 * 2**20
    assert result.reserved_bytes_at_max == 1000 + 100 * 300 + 512
    # peak stats reset before every in-process probe and the batch-1 step that creates handles;
    # the confirmation ran in the (fake) fresh process
    assert fake.resets == len(result.probes)
    assert sum(p.outcome == mb.OOM for p in result.probes) >= 1
    assert notes[0] == "batch 1: ok"


def test_cuda_confirmation_runs_in_a_fresh_process_with_a_margin_in_mib(fake_gpu) -> None:  # type: ignore[no-untyped-def]
    """It re-ran the winning batch in the searching process; now a fresh one, same cap."""
    _, _, children = fake_gpu
    result, notes = _search()
    cap = 2 * 2**30 - 600 * 2**20
    (child,) = children
    assert (
        child["batch"] == 300 and child["cap"] == cap and child["device"] == torch.device("cuda", 0)
    )
    # the searching process's model left the device before the fresh one started
    assert child["moves"][-1] == "cpu"
    assert result.probes[-1].batch_size == 300 and result.probes[-1].message == "fresh"
    assert result.confirmed_in == "fresh process"
    assert result.confirm_margin_bytes == cap - (1000 + 100 * 300 + 512)
    assert "confirming batch 300 in a fresh process" in notes
    # a probe bound that includes the confirmation
    assert len(result.probes) <= 2 * math.log2(300) + 3


def test_cuda_confirmation_that_does_not_fit_is_not_confirmed(
    fake_gpu, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    import emobench.scenarios.maxbatch as mbmod

    monkeypatch.setattr(
        mbmod,
        "_cuda_child_probe",
        lambda *a: (mb.ProbeOutcome(mb.OOM, None, "fresh process: [allocator] OOM"), None),
    )
    result, _ = _search()
    assert result.max_batch == 300 and result.confirmed is False and result.error is None
    assert result.confirm_margin_bytes is None and result.confirmed_in == "fresh process"


def test_cuda_search_runs_with_its_device_current(fake_gpu) -> None:  # type: ignore[no-untyped-def]
    fake, _, _ = fake_gpu
    _search(index=1)
    assert fake.scopes == [torch.device("cuda", 1)]


def test_an_asynchronous_cuda_error_is_caught_with_its_step(
    fake_gpu, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """The error surfaced at the first synchronize, in release() outside the try: it escaped the
    search, and "fits" had been decided before the kernels ran."""
    import emobench.scenarios.maxbatch as mbmod

    fake, _, children = fake_gpu
    fake.sticky = True  # an illegal address leaves the context broken
    message = "CUDA error: an illegal memory access was encountered"
    monkeypatch.setattr(mbmod, "make_step", fake.step_factory(async_error_at=64, message=message))
    result, _ = _search()
    assert result.error is not None and "illegal memory access" in result.error
    assert result.max_batch == 32 and result.confirmed is None and not children
    assert [p.outcome for p in result.probes][-1] == mb.ERROR
    assert [p.batch_size for p in result.probes] == [1, 2, 4, 8, 16, 32, 64]


def test_a_non_memory_error_at_batch_1_is_an_error_not_max_batch_0(
    fake_gpu, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    import emobench.scenarios.maxbatch as mbmod

    fake, _, children = fake_gpu
    message = "CUDA error: device-side assert triggered"
    monkeypatch.setattr(mbmod, "make_step", fake.step_factory(async_error_at=1, message=message))
    result, notes = _search()
    assert result.error is not None and "device-side assert" in result.error
    assert result.max_batch == 0 and result.confirmed is None and not children
    (probe,) = result.probes
    assert probe.batch_size == 1 and probe.outcome == mb.ERROR
    assert fake.fractions == [1.0]  # no cap was set, the card's full share restored
    assert notes == [f"batch 1: error: RuntimeError: {message}"]


@pytest.mark.parametrize(("after_oom", "outcome"), [(True, mb.OOM), (False, mb.ERROR)])
def test_cudnn_internal_error_is_oom_only_after_a_failed_allocation(
    fake_gpu, monkeypatch: pytest.MonkeyPatch, after_oom: bool, outcome: str
) -> None:  # type: ignore[no-untyped-def]
    import emobench.scenarios.maxbatch as mbmod

    fake, _, _ = fake_gpu

    def make(model, mode, device):  # type: ignore[no-untyped-def]
        def step(n: int) -> None:
            fake.peak = 1000 + 100 * n
            if n > 40:
                if after_oom:
                    fake.ooms += 1  # cuDNN's workspace allocation failed first
                fake.pending = RuntimeError("cuDNN error: CUDNN_STATUS_INTERNAL_ERROR")

        return step

    monkeypatch.setattr(mbmod, "make_step", make)
    result, _ = _search()
    assert result.probes[6].batch_size == 64 and result.probes[6].outcome == outcome
    if after_oom:
        assert result.error is None and result.max_batch == 40 and result.confirmed
    else:
        assert result.max_batch == 32 and "CUDNN_STATUS_INTERNAL_ERROR" in (result.error or "")


def test_cuda_child_step_runs_under_the_searchs_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fresh process: batch 1 for the handles, then the cap in bytes, then the batch."""
    import emobench.scenarios.maxbatch as mbmod

    fake = FakeCuda(limit=300)
    fake.install(monkeypatch)
    monkeypatch.setattr(mbmod, "make_step", fake.step_factory())
    cap = 3 * 2**30
    args = {"device": "cuda:1", "mode": "infer", "batch": 300, "cap": cap}
    out = mbmod._cuda_child_step(FakeModel(), args)  # type: ignore[arg-type]
    assert out["outcome"] == mb.OK and out["reserved_bytes"] == 1000 + 100 * 300 + 512
    assert fake.fractions == [pytest.approx(cap / (8 * 2**30))]
    assert fake.scopes == [torch.device("cuda", 1)]
    # the device has less free than the cap: the refusal says so
    out = mbmod._cuda_child_step(FakeModel(), args | {"batch": 301, "cap": 15 * 2**29})  # type: ignore[arg-type]
    assert out["outcome"] == mb.OOM and "was free for it" in str(out["message"])


def test_cuda_child_probe_reads_the_fresh_process(monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    import emobench.scenarios.maxbatch as mbmod
    from emobench.launchers.child import ChildResult

    ran: list[dict] = []
    reply = {"outcome": mb.OK, "peak_bytes": 5 * 2**20, "reserved_bytes": 6 * 2**20}

    def run_child(entry: str, argument: str, timeout_s: float) -> ChildResult:
        ran.append(json.loads(argument))
        return ChildResult(0, json.dumps(reply) + "\n", "", 1.0)

    monkeypatch.setattr(mbmod, "run_child", run_child)
    config = MaxBatchConfig(backbone="resnet18", pipelines=("direct48",))
    gpu1 = torch.device("cuda", 1)
    out, margin = mbmod._cuda_child_probe(config, "direct48", 64, gpu1, 100 * 2**20)
    assert ran[0]["device"] == "cuda:1" and ran[0]["cap"] == 100 * 2**20 and ran[0]["batch"] == 64
    assert out.outcome == mb.OK and margin == 94 * 2**20
    assert out.message is not None and "94.0 MiB of the budget left" in out.message
    reply = {"outcome": mb.OOM, "message": "[allocator] OutOfMemoryError: ..."}
    out, margin = mbmod._cuda_child_probe(config, "direct48", 64, gpu1, 100 * 2**20)
    assert out.outcome == mb.OOM and margin is None


def test_the_child_entry_takes_the_cuda_path(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    import emobench.scenarios.maxbatch as mbmod

    monkeypatch.setattr(mbmod, "build_model", lambda *a, **k: "model")
    monkeypatch.setattr(
        mbmod, "_cuda_child_step", lambda model, args: {"outcome": "ok", "m": model}
    )
    args = {"backbone": "resnet18", "pipeline": "direct48", "mode": "infer", "batch": 8}
    mbmod._child_main(json.dumps(args | {"num_classes": 7, "device": "cuda:0", "cap": 1}))
    assert json.loads(capsys.readouterr().out) == {"outcome": "ok", "m": "model"}


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


def test_memory_outside_the_allocator_is_measured_again_at_the_max_batch(
    fake_gpu, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """The budget's charge for memory outside the allocator was measured once, after batch 1;
    lazily loaded kernels and workspaces grow it with the batch: it is measured again after
    each new largest batch that fit and reported beside the charge."""
    import emobench.scenarios.maxbatch as mbmod

    del fake_gpu  # installed: a fake CUDA device with a 300-image limit
    readings: list[int] = []

    def outside(device: object) -> int:
        # 600 MiB after batch 1, then 1 MiB more per probe that ran
        value = 600 * 2**20 + len(readings) * 2**20
        readings.append(value)
        return value

    monkeypatch.setattr(mbmod, "non_allocator_bytes", outside)
    result, _ = _search()
    assert result.non_allocator_bytes == 600 * 2**20  # the charge, from batch 1
    assert result.non_allocator_bytes_at_max == readings[-1] > result.non_allocator_bytes
    ok = [p for p in result.probes if p.outcome == mb.OK and p.message != "fresh"]
    # batch 1's reading, then at most one per probe that fit (none after one that did not)
    assert 2 <= len(readings) <= 1 + len(ok)
