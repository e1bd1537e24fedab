"""Devices: precision the hardware really has (emulated bf16/fp16 refused or flagged), device specs,
threads capped at the usable cores, torch.compile's prerequisites. Capabilities are faked: nothing
here depends on the real CPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from emobench import device as device_mod
from emobench.cli import app
from emobench.config import RunConfig
from emobench.device import parse_device_spec
from emobench.errors import UsageError
from emobench.scenarios.compare import run_benchmark
from tests.conftest import TINY, TINY_ARGS

runner = CliRunner()


# -- precision the hardware really has ---------------------------------------------------------


def test_bf16_on_a_cpu_without_native_bf16_is_refused(tmp_path: Path, no_native_bf16: None) -> None:
    out = tmp_path / "r.json"
    result = runner.invoke(app, ["compare", *TINY_ARGS, "--precision", "bf16", "--out", str(out)])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: --precision bf16")
    assert "no native bf16" in result.stderr and "--allow-emulated" in result.stderr
    assert not out.exists()


def test_native_bf16_is_not_marked_emulated(native_bf16: None) -> None:
    config = RunConfig(backbones=("resnet18",), device="cpu", precision="bf16", **TINY)  # type: ignore[arg-type]
    report = run_benchmark(config)
    assert report.config["precision_emulated"] is False
    assert not any("EMULATED" in note for note in report.notes)


@pytest.mark.parametrize(
    ("capability", "precision", "emulated"),
    [((7, 5), "bf16", True), ((8, 0), "bf16", False), ((9, 0), "fp16", False)],
)
def test_cuda_precision_needs_the_right_compute_capability(
    monkeypatch: pytest.MonkeyPatch, capability: tuple[int, int], precision: str, emulated: bool
) -> None:
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    why = device_mod.emulated_precision(precision, torch.device("cuda", 0))
    assert (why is not None) == emulated
    if emulated:
        assert why == "Tesla T4 is sm_75; native bf16 needs sm_80 or newer"
        config = RunConfig(device="cuda", precision="bf16")
        with pytest.raises(UsageError, match="--allow-emulated"):
            device_mod.check_device_options(config, torch.device("cuda", 0))


# -- bounded cost ------------------------------------------------------------------------------


def test_threads_default_to_the_cores_this_process_may_use(
    monkeypatch: pytest.MonkeyPatch, restore_threads: None
) -> None:
    torch.set_num_threads(2)
    monkeypatch.setattr(device_mod, "usable_cores", lambda: 1)
    in_force = device_mod.apply_backend_settings(RunConfig(device="cpu"))
    assert torch.get_num_threads() == 1 and in_force["num_threads"] == 1
    assert in_force["usable_cores"] == 1


def test_device_specs() -> None:
    assert parse_device_spec("cuda:1") == ("cuda", 1)
    assert parse_device_spec("auto") == ("auto", None)
    for bad in ("gpu", "cuda:x", "cuda:-1", ""):
        with pytest.raises(UsageError):
            parse_device_spec(bad)


def test_compile_unavailable_without_compiler(monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert "C++ compiler" in (device_mod.compile_unavailable(torch.device("cpu")) or "")
