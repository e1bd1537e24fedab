"""`emobench compare` and `run`: reports written and shown, JSON on stdout, bad input exit 2 before
any work, --out that is not a report kept, the quick preset, speed options."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import typer
from typer.testing import CliRunner

from emobench import config as config_mod
from emobench import device as device_mod
from emobench.cli import app
from emobench.scenarios import compare as runner_mod
from tests.conftest import TINY_ARGS
from tests.factories import TINY_SUITE

runner = CliRunner()


def _commands(group, prefix: list[str]):
    for name, command in group.commands.items():
        yield [*prefix, name], command
        if hasattr(command, "commands"):
            yield from _commands(command, [*prefix, name])


def test_every_command_has_help() -> None:
    found = list(_commands(typer.main.get_command(app), []))
    assert {" ".join(p) for p, _ in found} >= {
        "compare",
        "maxbatch",
        "run",
        "check",
        "ci",
        "baseline",
        "baseline save",
        "report",
        "claims",
        "models",
        "env",
    }
    for path, command in found:
        assert command.help, f"{path} has no help"
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, path
        assert "Example" in result.output, path


def test_compare_writes_report_and_prints_table(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    result = runner.invoke(app, ["compare", *TINY_ARGS, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "upscale224" in result.stdout and "direct48" in result.stdout
    assert "FLOPs per image" in result.stdout
    data = json.loads(out.read_text())
    assert data["kind"] == "compare"
    assert data["config"]["batch_sizes"] == [2]
    assert {r["pipeline"] for r in data["results"]} == {"upscale224", "direct48"}


def test_compare_json_to_stdout(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    result = runner.invoke(app, ["compare", *TINY_ARGS, "--json", "--out", str(out)])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data == json.loads(out.read_text())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--device", "cuda"], "CUDA is not available"),
        (["--device", "tpu"], "unknown device"),
        (["--backbone", "alexnet"], "unknown backbone 'alexnet'"),
        (["--batch-size", "0"], "batch size must be a positive integer"),
        (["--batch-size", "-3"], "batch size must be a positive integer"),
        (["--data", "/no/such.csv"], "no such file"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["compare", *args])
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert not (tmp_path / "results").exists()  # nothing written


def test_bad_data_file_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "fer.csv"
    bad.write_text("pixels\n1 2 3\n")
    out = tmp_path / "r.json"
    result = runner.invoke(app, ["compare", *TINY_ARGS, "--data", str(bad), "--out", str(out)])
    assert result.exit_code == 2
    assert "expected 2304" in result.stderr
    assert not out.exists()


def test_unwritable_out_fails_before_work(tmp_path: Path) -> None:
    result = runner.invoke(app, ["compare", *TINY_ARGS, "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "is a folder" in result.stderr


def test_real_data_csv_runs(tmp_path: Path) -> None:
    csv = tmp_path / "fer.csv"
    row = " ".join(str(i % 256) for i in range(2304))
    csv.write_text("emotion,pixels\n" + f"3,{row}\n" * 2)
    out = tmp_path / "r.json"
    result = runner.invoke(app, ["compare", *TINY_ARGS, "--data", str(csv), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["config"]["data"] == str(csv)


def test_out_replaces_reports_but_not_other_files_without_force(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    refused = runner.invoke(app, ["compare", *TINY_ARGS, "--out", str(notes)])
    assert refused.exit_code == 2
    assert "exists and is not an emobench report" in refused.stderr
    assert notes.read_text() == "my notes"
    forced = runner.invoke(app, ["compare", *TINY_ARGS, "--out", str(notes), "--force"])
    assert forced.exit_code == 0, forced.output
    assert json.loads(notes.read_text())["kind"] == "compare"
    again = runner.invoke(app, ["compare", *TINY_ARGS, "--out", str(notes)])  # now a report
    assert again.exit_code == 0, again.output


def test_allow_emulated_runs_and_says_so(tmp_path: Path, no_native_bf16: None) -> None:
    out = tmp_path / "r.json"
    args = ["compare", *TINY_ARGS, "--precision", "bf16", "--allow-emulated", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "precision bf16 (EMULATED" in result.stdout
    data = json.loads(out.read_text())
    assert data["config"]["allow_emulated"] is True
    assert data["config"]["precision_emulated"] is True
    assert any("EMULATED" in note for note in data["notes"])


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_non_finite_or_negative_times_are_refused(tmp_path: Path, value: str) -> None:
    out = tmp_path / "r.json"
    result = runner.invoke(app, ["compare", *TINY_ARGS, "--min-time", value, "--out", str(out)])
    assert result.exit_code == 2 and "min_time_s must be a finite number" in result.stderr
    result = runner.invoke(app, ["compare", *TINY_ARGS, "--time-budget", value])
    assert result.exit_code == 2 and "time_budget_s must be a finite number" in result.stderr
    assert not out.exists()


def test_quick_preset_fills_what_was_not_given(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    result = runner.invoke(app, ["compare", *TINY_ARGS, "--quick", "--out", str(out)])
    assert result.exit_code == 0, result.output
    config = json.loads(out.read_text())["config"]
    assert config["quick"] is True
    # TINY_ARGS win over the preset; the rest comes from it
    assert config["max_time_s"] == 0.001 and config["preprocess_images"] == 4
    assert config["target_ci"] == config_mod.QUICK["target_ci"]
    assert "stopping rule (--quick)" in result.stdout


@pytest.mark.parametrize("command", ["run", "compare"])
def test_unreadable_data_is_one_error_line_from_a_suite_or_the_flag(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One validation path for --data and a suite's `data` (a suite's gave a traceback)."""

    data = tmp_path / "fer.csv"
    data.write_text("pixels\n" + " ".join(["1"] * 2304) + "\n")
    suite = tmp_path / "tiny.toml"
    suite.write_text(TINY_SUITE + f'data = "{data}"\n')
    real_open = os.open

    def denied(file, flags, *args, **kwargs):
        if Path(file) == data:
            raise PermissionError(13, "Permission denied")
        return real_open(file, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", denied)
    monkeypatch.chdir(tmp_path)
    args = ["run", str(suite)] if command == "run" else ["compare", "--data", str(data)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [f"error: --data {data}: cannot open (Permission denied)"]
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--precision", "fp16"], "fp16 needs a CUDA device"),
        (["--precision", "fp8"], "unknown precision 'fp8'"),
        (["--threads", "0"], "--threads must be >= 1"),
        (["--tf32"], "apply to CUDA devices only"),
        (["--cudnn-benchmark"], "apply to CUDA devices only"),
        (["--mode", "fly"], "unknown mode 'fly'"),
        (["--compile", "turbo"], "unknown compile 'turbo'"),
    ],
)
def test_incompatible_options_exit_2_before_building(
    args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    built: list[str] = []
    monkeypatch.setattr(runner_mod, "build_model", lambda *a, **k: built.append("x"))
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["compare", "--device", "cpu", *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert built == [] and not (tmp_path / "results").exists()


def test_compile_unavailable_is_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device_mod, "compile_unavailable", lambda device: "no C++ compiler")
    result = runner.invoke(
        app, ["compare", *TINY_ARGS, "--compile", "default", "--out", str(tmp_path / "r.json")]
    )
    assert result.exit_code == 2
    assert "--compile default: no C++ compiler" in result.stderr
    assert not (tmp_path / "r.json").exists()


def test_compare_cli_with_speed_options(tmp_path: Path, native_bf16: None) -> None:
    out = tmp_path / "r.json"
    args = [
        "compare",
        *TINY_ARGS,
        "--mode",
        "both",
        "--precision",
        "bf16",
        "--channels-last",
        "--out",
        str(out),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "train b2" in result.stdout and "matmul" in result.stdout
    assert "not applicable (host only" in result.stdout
    data = json.loads(out.read_text())
    assert data["config"]["precision"] == "bf16" and data["limits"]["matmul_dtype"] == "bf16"
    assert data["results"][0]["train"][0]["batch_size"] == 2


def test_out_of_memory_in_compare_is_one_error_line_naming_the_batch_and_maxbatch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch.OutOfMemoryError is a RuntimeError: it escaped the shell's MemoryError handler
    as a traceback."""
    from tests.scenarios.test_compare_cuda import oom_at_batch

    monkeypatch.setattr(runner_mod, "build_model", oom_at_batch(2))
    result = runner.invoke(app, ["compare", *TINY_ARGS, "--out", str(tmp_path / "r.json")])
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()[-1:]
    assert line.startswith("error: out of memory at batch 2 during 'resnet18/")
    assert "emobench maxbatch --backbone resnet18 --device cpu --mode infer" in line
    assert "Traceback" not in result.output and not (tmp_path / "r.json").exists()


def test_a_cuda_out_of_memory_error_anywhere_is_one_line_exit_1() -> None:
    from emobench.cli.shell import clean_errors

    @clean_errors
    def command() -> None:
        exc = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB. More")
        exc.batch_size = 512  # type: ignore[attr-defined]
        raise exc

    with pytest.raises(typer.Exit) as caught:
        command()
    assert caught.value.exit_code == 1

    @clean_errors
    def other() -> None:
        raise RuntimeError("not memory")

    with pytest.raises(RuntimeError, match="not memory"):
        other()


def test_the_cuda_out_of_memory_line() -> None:
    from emobench.cli.shell import out_of_memory_line

    exc = torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB. More")
    exc.batch_size = 512  # type: ignore[attr-defined]
    assert out_of_memory_line(exc) == (
        "out of GPU memory at batch 512 (CUDA out of memory. Tried to allocate 2.00 GiB); use a "
        "smaller batch: "
        "`emobench maxbatch` finds the largest that fits"
    )
