"""`emobench finetune` across processes: the global batch must divide across torchrun's
processes (one error line, exit 2, before anything trains), and --nproc N replaces the process
with torchrun running the same command without --nproc."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from emobench.cli import app
from emobench.cli.finetune import without_nproc

cli = CliRunner()

ARGS = ["--device", "cpu", "--epochs", "1", "--workers", "0", "--no-pretrained"]


class _Exec(Exception):
    """What the fake os.execvp raises instead of replacing the process."""


@pytest.fixture
def execs(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    calls: list[list[str]] = []

    def fake(file: str, argv: list[str]) -> None:
        calls.append([file, *argv])
        raise _Exec

    monkeypatch.setattr(os, "execvp", fake)
    return calls


def test_a_batch_that_does_not_divide_across_torchruns_processes_is_refused(
    fer_csv: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    args = ["finetune", "--data", str(fer_csv), *ARGS, "--batch-size", "16"]
    result = cli.invoke(app, [*args, "--checkpoint-dir", str(tmp_path / "ck")])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        "error: --batch-size: the global batch 16 does not divide across 3 processes; "
        "use a multiple of 3"
    ]
    assert not (tmp_path / "ck").exists()


def test_nproc_execs_torchrun_with_the_same_command(
    fer_csv: Path, monkeypatch: pytest.MonkeyPatch, execs: list[list[str]]
) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    command = ["finetune", "--data", str(fer_csv), *ARGS, "--batch-size", "16", "--nproc", "2"]
    monkeypatch.setattr(sys, "argv", ["emobench", *command])
    result = cli.invoke(app, command)
    assert isinstance(result.exception, _Exec), result.output
    assert execs == [
        [
            sys.executable,
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "emobench",
            *command[:-2],
        ]
    ]


def test_nproc_refuses_a_batch_that_does_not_divide_before_torchrun(
    fer_csv: Path, monkeypatch: pytest.MonkeyPatch, execs: list[list[str]]
) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    command = ["finetune", "--data", str(fer_csv), *ARGS, "--batch-size", "15", "--nproc=2"]
    monkeypatch.setattr(sys, "argv", ["emobench", *command])
    result = cli.invoke(app, command)
    assert result.exit_code == 2, result.output
    assert "the global batch 15 does not divide across 2 processes" in result.output
    assert execs == []


@pytest.mark.parametrize(
    ("args", "kept"),
    [
        (["finetune", "--nproc", "2", "--epochs", "1"], ["finetune", "--epochs", "1"]),
        (["finetune", "--nproc=4"], ["finetune"]),
        (["finetune", "--data", "x.csv"], ["finetune", "--data", "x.csv"]),
    ],
)
def test_without_nproc(args: list[str], kept: list[str]) -> None:
    assert without_nproc(args) == kept
