from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from emobench.cli import app
from emobench.errors import UsageError
from emobench.measure import search as mb
from emobench.models import build_model
from emobench.results import load
from emobench.scenarios.maxbatch import MaxBatchConfig, make_step, run_maxbatch

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


def fits_below(limit: int):
    calls: list[int] = []

    def try_batch(n: int) -> mb.ProbeOutcome:
        calls.append(n)
        return mb.ProbeOutcome(mb.OK if n <= limit else mb.OOM, peak_bytes=1000 + 10 * n)

    return try_batch, calls


@pytest.mark.parametrize("limit", [1, 2, 3, 7, 100, 1000, 12345])
def test_search_finds_the_exact_limit_within_probe_bound(limit: int) -> None:
    try_batch, calls = fits_below(limit)
    result = mb.search_max_batch(try_batch, max_batch=65536)
    assert result.max_batch == limit
    assert not result.capped and result.error is None and result.confirmed
    assert len(result.probes) <= 2 * math.log2(limit) + 3
    assert calls[-1] == limit  # the winner ran once more to confirm
    assert [p.batch_size for p in result.probes] == calls  # every probe is in the trace


def test_search_caps_and_says_so() -> None:
    try_batch, _ = fits_below(10**9)
    result = mb.search_max_batch(try_batch, max_batch=300)
    assert result.max_batch == 300 and result.capped
    assert [p.batch_size for p in result.probes][:-1] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]


def test_search_when_nothing_fits() -> None:
    try_batch, _ = fits_below(0)
    result = mb.search_max_batch(try_batch, max_batch=64)
    assert result.max_batch == 0 and not result.capped and result.confirmed is None
    assert len(result.probes) == 1


def test_non_memory_failure_stops_the_search() -> None:
    def try_batch(n: int) -> mb.ProbeOutcome:
        if n >= 8:
            return mb.ProbeOutcome(mb.ERROR, message="RuntimeError: cuDNN error: bad param")
        return mb.ProbeOutcome(mb.OK)

    result = mb.search_max_batch(try_batch, max_batch=1024)
    assert result.error == "RuntimeError: cuDNN error: bad param"
    assert result.max_batch == 4
    assert [p.outcome for p in result.probes] == ["ok", "ok", "ok", "error"]


def test_margin() -> None:
    assert mb.apply_margin(100, 0.05) == 95
    assert mb.apply_margin(7, 0.0) == 7
    assert mb.apply_margin(0, 0.5) == 0
    with pytest.raises(UsageError):
        mb.apply_margin(10, 1.0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("8GiB", 8 * 2**30), ("512MiB", 512 * 2**20), ("2GB", 2 * 10**9), ("0.5", 8 * 2**30)],
)
def test_parse_budget(text: str, expected: int) -> None:
    assert mb.parse_budget(text, 16 * 2**30) == expected


@pytest.mark.parametrize("text", ["0", "-1GiB", "abc", "1.5", "32GiB", "3 parsecs", ""])
def test_parse_budget_rejects(text: str) -> None:
    with pytest.raises(UsageError, match="--budget"):
        mb.parse_budget(text, 16 * 2**30)


def test_is_oom_classification() -> None:
    assert mb.is_oom(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert mb.is_oom(RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling ..."))
    assert mb.is_oom(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried ..."))
    assert not mb.is_oom(RuntimeError("CUDA error: an illegal memory access was encountered"))
    assert not mb.is_oom(ValueError("out of memory"))  # not an allocator error type


def test_guarded_try_batch_with_injected_oom() -> None:
    """The CUDA probe path on CPU: an injected OOM is an outcome, memory is released after."""
    events: list[str] = []
    peaks = iter([111, 222, 333])

    def step(n: int) -> None:
        events.append(f"step {n}")
        if n > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1 GiB")
        if n == 2:
            raise RuntimeError("CUDA error: device-side assert triggered\nmore detail")

    hooks = mb.MemoryHooks(
        reset=lambda: events.append("reset"),
        peak_bytes=lambda: next(peaks),
        release=lambda: events.append("release"),
    )
    try_batch = mb.guarded_try_batch(step, hooks)
    assert try_batch(1) == mb.ProbeOutcome(mb.OK, 111)
    assert try_batch(4).outcome == mb.OOM
    err = try_batch(2)
    assert err.outcome == mb.ERROR
    assert err.message == "RuntimeError: CUDA error: device-side assert triggered"
    assert events[:3] == ["reset", "step 1", "release"]


def test_bytes_per_extra_image_is_the_slope() -> None:
    probes = [mb.Probe(n, mb.OK, 500 + 40 * n, 0.0) for n in (1, 2, 4, 8)]
    probes.append(mb.Probe(16, mb.OOM, None, 0.0))
    assert mb.bytes_per_extra_image(probes) == pytest.approx(40.0)


def test_linear_fit_prediction() -> None:
    fit = mb.LinearFit.from_points([(1, 110), (2, 120), (4, 140)])
    assert fit.fixed_bytes == pytest.approx(100) and fit.per_image_bytes == pytest.approx(10)
    assert fit.largest_batch_under(1000, cap=10_000) == 90
    assert fit.largest_batch_under(1000, cap=50) == 50


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


def test_maxbatch_cli_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for args, message in [
        (["--budget", "lots"], "--budget 'lots'"),
        (["--budget", "1PiB"], "unknown unit"),
        (["--budget", "100000GiB"], "larger than the available RAM"),
        (["--mode", "fly"], "unknown mode"),
        (["--pipeline", "direct64"], "unknown pipeline"),
        (["--margin", "1.5"], "--margin"),
    ]:
        result = runner.invoke(app, ["maxbatch", "--device", "cpu", *args])
        assert result.exit_code == 2, args
        assert message in result.stderr
    assert not (tmp_path / "results").exists()


def test_maxbatch_cli_writes_report(tmp_path: Path) -> None:
    out = tmp_path / "mb.json"
    result = CliRunner().invoke(
        app,
        [
            *SMALL_CPU_SEARCH,
            "--budget",
            "1.2GiB",
            "--max-batch",
            "32",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "search trace" in result.stdout
    report = load(out)
    assert report.kind == "maxbatch" and report.maxbatch[0].pipeline == "direct48"
    assert json.loads(out.read_text())["config"]["budget"] == "1.2GiB"


def test_maxbatch_non_memory_failure_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import emobench.scenarios.maxbatch as mbmod

    def broken_step(model, mode, device):
        def step(n: int) -> None:
            raise RuntimeError("cuDNN error: CUDNN_STATUS_EXECUTION_FAILED")

        return step

    monkeypatch.setattr(mbmod, "make_step", broken_step)
    out = tmp_path / "mb.json"
    args = [
        *SMALL_CPU_SEARCH,
        "--budget",
        "1GiB",
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert "CUDNN_STATUS_EXECUTION_FAILED" in result.stderr
    (r,) = load(out).maxbatch
    assert r.error is not None and "CUDNN_STATUS_EXECUTION_FAILED" in r.error
    assert r.probes[0].outcome == mb.ERROR


@pytest.mark.parametrize("command", ["maxbatch", "compare"])
def test_ctrl_c_leaves_no_report(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import emobench.scenarios.compare as runner_mod
    import emobench.scenarios.maxbatch as mbmod

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(mbmod, "run_maxbatch", interrupted)
    monkeypatch.setattr(runner_mod, "run_benchmark", interrupted)
    out = tmp_path / "r.json"
    result = CliRunner().invoke(app, [command, "--device", "cpu", "--out", str(out)])
    assert result.exit_code == 130
    assert "interrupted" in result.stderr
    assert list(tmp_path.iterdir()) == []


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
    from emobench.errors import UsageError

    with pytest.raises(UsageError, match="already used outside torch's allocator"):
        mbmod.allocator_fraction(512 * 2**20, 600 * 2**20, 8 * 2**30)
    assert mbmod.allocator_fraction(2**30, 2**29, 2**32) == pytest.approx(2**29 / 2**32)


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("GET was unable to find an engine to execute this computation", "cudnn no engine"),
        ("FIND was unable to find an engine to execute this computation", "cudnn no engine"),
        (
            "cuDNN error: CUDNN_STATUS_NOT_SUPPORTED. This error may appear if ...",
            "cudnn no engine",
        ),
        (
            "Expected canUse32BitIndexMath(input) && canUse32BitIndexMath(output)",
            "32-bit index limit",
        ),
        ("upsample: input tensor must fit into 32-bit index math", "32-bit index limit"),
        ("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate", "cublas alloc"),
        ("cuDNN error: CUDNN_STATUS_ALLOC_FAILED", "cudnn workspace"),
    ],
)
def test_disguised_ooms_are_does_not_fit(message: str, kind: str) -> None:
    assert mb.oom_kind(RuntimeError(message)) == kind

    def step(n: int) -> None:
        if n > 40:
            raise RuntimeError(message)

    hooks = mb.MemoryHooks(lambda: None, lambda: None, lambda: None)
    result = mb.search_max_batch(mb.guarded_try_batch(step, hooks), 4096)
    # the search bisects below the failure instead of stopping with an error
    assert result.error is None and result.max_batch == 40 and result.confirmed
    failed = [p for p in result.probes if p.outcome == mb.OOM]
    assert failed and all(p.message and p.message.startswith(f"[{kind}] ") for p in failed)


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


def test_child_probe_does_not_import_from_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`python -m` put the working folder first on the child's sys.path: a numpy.py there ran."""
    from emobench.scenarios.maxbatch import _child_probe

    marker = tmp_path / "planted-module-ran"
    for name in ("numpy.py", "json.py", "psutil.py"):
        (tmp_path / name).write_text(f"open({str(marker)!r}, 'w').close()\nraise SystemExit(3)\n")
    monkeypatch.chdir(tmp_path)
    config = MaxBatchConfig(backbone="resnet18", pipelines=("direct48",))
    probe = _child_probe(config, "direct48", 0, 2**40)  # build the model, report the RSS
    assert not marker.exists()
    assert probe.outcome == mb.OK, probe.message
    assert probe.peak_bytes is not None and probe.peak_bytes > 0
