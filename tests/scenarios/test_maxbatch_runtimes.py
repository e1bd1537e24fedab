"""maxbatch --runtime onnxruntime (issue 23): the CPU search over the exported file, its
torch-free fresh processes (runtimes.ort_batch), the probe's outcomes, and what the command
refuses before torch is imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import onnxruntime
import pytest
import torch
from onnxruntime.capi.onnxruntime_pybind11_state import RuntimeException
from typer.testing import CliRunner

from emobench.cli import app
from emobench.errors import UsageError
from emobench.launchers.child import ChildResult
from emobench.measure import search as mb
from emobench.results import load
from emobench.runtimes import onnx as O
from emobench.runtimes import ort_batch, ort_child
from emobench.scenarios import maxbatch as M
from tests.conftest import tiny_model
from tests.paths import ROOT

DN = "direct48"
BUDGET = "1GiB"
SMALL = dict(backbone="resnet18", pipelines=(DN,), device="cpu", budget=BUDGET, max_batch=64)
runner = CliRunner()


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(M, "build_model", tiny_model)


def _ort_config(**overrides: Any) -> M.MaxBatchConfig:
    return M.MaxBatchConfig(**{**SMALL, "runtimes": ("onnxruntime",), **overrides})


# -- the search ----------------------------------------------------------------------------------


def test_onnxruntime_search_fits_in_process_and_confirms_in_torch_free_children(
    tiny: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    children: list[tuple[str, dict[str, Any]]] = []
    real = M.run_child

    def run_child(entry: str, argument: str, timeout_s: float) -> ChildResult:
        children.append((entry, json.loads(argument)))
        return real(entry, argument, timeout_s)

    monkeypatch.setattr(M, "run_child", run_child)
    calls: list[tuple[str, int, int]] = []
    report = M.run_maxbatch(_ort_config(), progress=lambda d, n, t: calls.append((d, n, t)))
    (r,) = report.maxbatch
    assert r.runtime == "onnxruntime" and r.pipeline == DN and r.mode == "infer"
    assert r.method == "predicted+confirmed"
    assert r.error is None and r.confirmed is True and r.confirmed_in == M.FRESH_PROCESS
    assert r.max_batch == 64 and r.capped  # a tiny model fits the cap under 1 GiB
    assert r.safe_batch == 60
    assert report.config["runtimes"] == ["onnxruntime"]
    # every fresh process opened the file in ort_batch (torch-free), none built a torch model
    assert [entry for entry, _ in children] == [ort_batch.ENTRY, ort_batch.ENTRY]
    assert [a["batch"] for _, a in children] == [0, 64]
    for _, argument in children:
        assert argument["input_size"] == 48 and argument["path"].endswith(".onnx")
        assert argument["intra_op_threads"] == torch.get_num_threads()
    base, confirm = r.probes[-2:]
    assert (
        base.batch_size == 0
        and base.message == "fresh process, model built (VmRSS after the session)"
    )
    assert r.child_base_bytes == base.peak_bytes and r.child_base_bytes is not None
    assert confirm.batch_size == 64 and confirm.message is not None
    assert confirm.message.startswith("confirmed in a child (VmHWM)")
    assert r.peak_bytes_at_max == confirm.peak_bytes and r.peak_bytes_at_max is not None
    assert r.confirm_margin_bytes == r.budget_bytes - r.peak_bytes_at_max
    assert r.fit is not None and [p[0] for p in r.fit.points] == [2, 4, 8, 16, 32, 64]
    assert (
        calls[0][0]
        == "resnet18/direct48 infer [onnxruntime]: exporting to ONNX and checking parity"
    )
    assert calls[-1] == ("done", 1, 1)
    assert not Path(children[0][1]["path"]).parent.exists()  # the run's export folder is gone


def test_ort_batch_in_a_fresh_interpreter_never_imports_torch(tmp_path: Path) -> None:
    """What maxbatch's children run: the probe, at batch 0 and at a batch, torch-free."""
    path = tmp_path / "tiny.onnx"
    model = tiny_model("resnet18", DN)
    O.export_model(model, torch.rand(2, 3, 48, 48), path)
    args = {"path": str(path), "input_size": 48, "intra_op_threads": 1}
    script = (
        "import json, sys\n"
        "from emobench.runtimes import ort_batch\n"
        "args = json.loads(sys.argv[1])\n"
        "out = [ort_batch.probe(args | {'batch': 0}), ort_batch.probe(args | {'batch': 4})]\n"
        "print(json.dumps([out, 'torch' in sys.modules]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, json.dumps(args)],
        cwd=tmp_path,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    (base, run), torch_imported = json.loads(proc.stdout.splitlines()[-1])
    assert torch_imported is False
    assert base["outcome"] == mb.OK and base["method"] == "VmRSS after the session"
    assert run["outcome"] == mb.OK and run["method"] == "VmHWM"
    assert 0 < base["peak_bytes"] <= run["peak_bytes"]


# -- ort_batch.probe's outcomes, on a fake session -----------------------------------------------


class FakeSession:
    """onnxruntime.InferenceSession's stand-in: records how it was opened and what it ran."""

    opened: ClassVar[list[FakeSession]] = []
    raises: ClassVar[Exception | None] = None

    def __init__(self, path: str, sess_options: Any = None, providers: Any = None) -> None:
        self.path, self.options, self.providers = path, sess_options, providers
        self.inputs: list[np.ndarray] = []
        FakeSession.opened.append(self)

    def get_inputs(self) -> list[Any]:
        return [types.SimpleNamespace(name="input")]

    def run(self, outputs: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.inputs.append(feeds["input"])
        if FakeSession.raises is not None:
            raise FakeSession.raises
        return [np.zeros((len(feeds["input"]), 7), dtype=np.float32)]


@pytest.fixture
def fake_ort(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> type[FakeSession]:
    FakeSession.opened, FakeSession.raises = [], None
    monkeypatch.setattr(onnxruntime, "InferenceSession", FakeSession)
    status = tmp_path / "status"
    status.write_text("Name:\tpython\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nThreads:\t3\n")
    monkeypatch.setattr(ort_child, "PROC_STATUS", str(status))
    return FakeSession


ARGS = {"path": "model.onnx", "input_size": 48, "intra_op_threads": 3}


def test_probe_at_batch_0_opens_the_session_and_reads_vmrss(fake_ort: type[FakeSession]) -> None:
    out = ort_batch.probe(ARGS | {"batch": 0})
    assert out == {
        "outcome": mb.OK,
        "peak_bytes": 102400 * 1024,
        "method": "VmRSS after the session",
    }
    (session,) = fake_ort.opened
    assert session.inputs == []  # nothing run
    assert session.path == "model.onnx" and session.providers == ["CPUExecutionProvider"]
    assert session.options.intra_op_num_threads == 3
    assert session.options.inter_op_num_threads == 1
    assert session.options.enable_cpu_mem_arena is True  # the arena on, as a deployment runs


def test_probe_at_a_batch_runs_it_and_reads_vmhwm(fake_ort: type[FakeSession]) -> None:
    out = ort_batch.probe(ARGS | {"batch": 5})
    assert out == {"outcome": mb.OK, "peak_bytes": 204800 * 1024, "method": "VmHWM"}
    (x,) = fake_ort.opened[0].inputs
    assert x.shape == (5, 3, 48, 48) and x.dtype == np.float32


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (  # the exception type onnxruntime raises (not a RuntimeError)
            RuntimeException(
                "[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Non-zero status code returned "
                "while running Conv node. Name:'/body/0/Conv' Status Message: bfc_arena.cc:376 "
                "AllocateRawInternal Failed to allocate memory for requested buffer of size "
                "8589934592"
            ),
            mb.OOM,
        ),
        (MemoryError("std::bad_alloc"), mb.OOM),
        (ValueError("Got invalid dimensions for input: input"), mb.ERROR),
    ],
    ids=["arena-allocation", "bad-alloc", "other"],
)
def test_probe_tells_the_runtimes_allocation_failure_from_other_errors(
    fake_ort: type[FakeSession], error: Exception, outcome: str
) -> None:
    fake_ort.raises = error
    out = ort_batch.probe(ARGS | {"batch": 4096})
    assert out["outcome"] == outcome
    assert out["message"].startswith(f"{type(error).__name__}: ")
    assert len(out["message"]) <= len(type(error).__name__) + 2 + 200
    assert "peak_bytes" not in out


def test_probe_without_proc_status_is_an_error_not_a_number(
    fake_ort: type[FakeSession], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(ort_child, "PROC_STATUS", str(tmp_path / "no-such-status"))
    for batch in (0, 2):
        out = ort_batch.probe(ARGS | {"batch": batch})
        assert out["outcome"] == mb.ERROR and "not readable here" in out["message"]
        assert "peak_bytes" not in out


def test_main_prints_one_json_line(
    fake_ort: type[FakeSession], capsys: pytest.CaptureFixture[str]
) -> None:
    ort_batch.main(json.dumps(ARGS | {"batch": 2}))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["method"] == "VmHWM"


def test_the_in_process_fit_runs_the_file_with_the_arena_off(fake_ort: type[FakeSession]) -> None:
    step = M.onnx_step({"path": "m.onnx", "input_size": 224, "intra_op_threads": 2})
    step(3)
    (session,) = fake_ort.opened
    assert session.options.enable_cpu_mem_arena is False
    assert session.options.intra_op_num_threads == 2
    assert [x.shape for x in session.inputs] == [(3, 3, 224, 224)]


# -- reading a child's answer --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("child", "outcome", "message"),
    [
        (
            ChildResult(0, json.dumps({"outcome": mb.OOM, "message": "bad_alloc"}), "", 0.5),
            mb.OOM,
            "bad_alloc",
        ),
        (
            ChildResult(
                0,
                json.dumps({"outcome": mb.OK, "peak_bytes": 2 * 2**30, "method": "VmHWM"}),
                "",
                0.5,
            ),
            mb.OVER_BUDGET,
            "peak RSS over the budget",
        ),
        (ChildResult(-9, "", "", 0.5), mb.OOM, "child killed (SIGKILL, out of memory)"),
        (ChildResult(None, "", "", 0.5), mb.ERROR, "child timed out"),
        (
            ChildResult(1, "", "Traceback\nImportError: onnxruntime", 0.5),
            mb.ERROR,
            "child failed: ImportError: onnxruntime",
        ),
    ],
    ids=["oom", "over-budget", "killed", "timed-out", "failed"],
)
def test_child_probe_of_the_file_reads_its_answer(
    monkeypatch: pytest.MonkeyPatch, child: ChildResult, outcome: str, message: str
) -> None:
    ran: list[tuple[str, dict[str, Any]]] = []

    def run_child(entry: str, argument: str, timeout_s: float) -> ChildResult:
        ran.append((entry, json.loads(argument)))
        return child

    monkeypatch.setattr(M, "run_child", run_child)
    onnx = {"path": "/x/m.onnx", "input_size": 48, "intra_op_threads": 2}
    probe = M._child_probe(_ort_config(), DN, 32, 2**30, onnx)
    assert ran == [(ort_batch.ENTRY, onnx | {"batch": 32})]
    assert probe.batch_size == 32 and probe.outcome == outcome and probe.message == message


# -- refusals ------------------------------------------------------------------------------------


def test_the_scenario_refuses_onnxruntime_on_cuda_and_in_training() -> None:
    with pytest.raises(UsageError, match="measures the CPU"):
        M.check_ort_maxbatch(torch.device("cuda"))
    with pytest.raises(UsageError, match="measures inference only"):
        _ort_config(mode="train").validate()
    with pytest.raises(UsageError, match="--runtime given twice: onnxruntime, onnxruntime"):
        _ort_config(runtimes=("onnxruntime", "onnxruntime")).validate()
    with pytest.raises(UsageError, match="unknown runtime 'tflite'"):
        _ort_config(runtimes=("tflite",)).validate()
    with pytest.raises(UsageError, match="at least one --runtime"):
        _ort_config(runtimes=()).validate()


def test_the_scenario_refuses_a_cuda_device_before_exporting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("exported for a device it refuses")

    monkeypatch.setattr(M, "resolve_device", lambda spec: torch.device("cuda"))
    monkeypatch.setattr(M, "_export_for_maxbatch", refuse)
    with pytest.raises(UsageError, match="maxbatch --runtime onnxruntime measures the CPU"):
        M.run_maxbatch(_ort_config(device="auto"))


REFUSED = [
    (["--runtime", "onnxruntime", "--mode", "train"], "measures inference only"),
    (
        ["--runtime", "onnxruntime", "--device", "cuda"],
        "maxbatch --runtime onnxruntime measures the CPU",
    ),
    (["--runtime", "onnxruntime", "--device", "cuda:1"], "use --device cpu"),
    (["--runtime", "torch", "--runtime", "torch"], "--runtime given twice: torch, torch"),
    (["--runtime", "tflite"], "unknown runtime 'tflite'"),
]


def test_the_command_refuses_them_in_one_line_before_importing_torch(tmp_path: Path) -> None:
    script = (
        "import json, sys\n"
        "from typer.testing import CliRunner\n"
        "from emobench.cli import app\n"
        "out = []\n"
        "for args in json.loads(sys.argv[1]):\n"
        "    r = CliRunner().invoke(app, ['maxbatch', *args])\n"
        "    out.append([r.exit_code, r.stderr.splitlines(), 'torch' in sys.modules])\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, json.dumps([args for args, _ in REFUSED])],
        cwd=tmp_path,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    answers = json.loads(proc.stdout.splitlines()[-1])
    for (args, message), (code, lines, torch_imported) in zip(REFUSED, answers, strict=True):
        assert code == 2, args
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
        assert torch_imported is False, args
    assert list(tmp_path.iterdir()) == []  # no report written


def test_a_failed_export_is_the_searchs_error_and_exit_1(
    tiny: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def export(model: Any, example: Any, path: Path) -> tuple[str, int]:
        raise O.ExportError("ONNX export failed: boom")

    def no_child(*args: Any) -> ChildResult:
        raise AssertionError("a fresh process for a file that was never written")

    monkeypatch.setattr(O, "export_model", export)
    monkeypatch.setattr(M, "run_child", no_child)
    out = tmp_path / "mb.json"
    args = ["maxbatch", "--backbone", "resnet18", "--pipeline", DN, "--device", "cpu"]
    args += ["--runtime", "onnxruntime", "--budget", BUDGET, "--max-batch", "64", "--out", str(out)]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 1, result.output
    assert "error: direct48: search stopped: ONNX export failed: boom" in result.stderr.splitlines()
    (r,) = load(out).maxbatch
    assert r.runtime == "onnxruntime"
    assert r.error == "ONNX export failed: boom" and r.max_batch == 0 and r.safe_batch == 0
    assert r.confirmed is None and r.peak_bytes_at_max is None
    assert [(p.batch_size, p.outcome) for p in r.probes] == [(1, mb.ERROR)]
    assert json.loads(result.stdout)["maxbatch"][0]["error"] == "ONNX export failed: boom"


def _two_runtimes() -> Any:
    import dataclasses

    from tests.factories import maxbatch_report

    torch_side = maxbatch_report(up=100, dn=2000)
    ort_side = maxbatch_report(up=300, dn=1500)
    ort = [dataclasses.replace(m, runtime="onnxruntime") for m in ort_side.maxbatch]
    return dataclasses.replace(torch_side, maxbatch=torch_side.maxbatch + ort)


def test_a_two_runtime_maxbatch_report_shows_each_runtimes_rows_and_ratio() -> None:
    from rich.console import Console

    from emobench.render.compare import render_maxbatch

    console = Console(record=True, width=200)
    render_maxbatch(_two_runtimes(), console)
    text = console.export_text()
    assert "max batch ratio (direct48 / upscale224, torch): 20.00x" in text
    assert "max batch ratio (direct48 / upscale224, onnxruntime): 5.00x" in text
    assert "┃ runtime" in text and "│ onnxruntime │ upscale224" in text


def test_the_batch_claim_reads_the_torch_search_of_a_two_runtime_report() -> None:
    from emobench.readout.claims import evaluate
    from tests.factories import make_report

    rows = evaluate(make_report(), [_two_runtimes()])
    (row,) = [r for r in rows if r.claim == "22x larger batches" and r.backbone == "vgg16"]
    assert row.measured == pytest.approx(20.0)  # torch's 2000 / 100, not onnxruntime's 5x
