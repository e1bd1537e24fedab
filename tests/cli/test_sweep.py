"""`emobench sweep`: jobs through submitit's local executor one at a time, gathered into one
table with a failed job's log; Slurm submissions recorded by a fake executor; bad input."""

from __future__ import annotations

import json
import shlex
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import pytest
from typer.testing import CliRunner

from emobench import results as R
from emobench.cli import app
from emobench.launchers import sweep as sw
from tests.factories import make_report, other_class

runner = CliRunner()
SUITE = '[suite]\nbackbones = ["resnet18"]\ndevice = "{device}"\nbatch_sizes = [1]\n'


def suite(folder: Path, name: str, device: str = "cpu") -> Path:
    path = folder / f"{name}.toml"
    path.write_text(SUITE.format(device=device))
    return path


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


def test_local_sweep_runs_one_job_at_a_time_and_gathers_with_the_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two jobs copy a factory report each (two machine classes), a third fails: the table
    merges both, the failure is listed with its log's last line, and nothing overlapped."""
    sources = {"a": tmp_path / "a-src.json", "b": tmp_path / "b-src.json"}
    R.save(make_report(), sources["a"])
    R.save(other_class(make_report()), sources["b"])
    trace = tmp_path / "trace.txt"

    def command(suite_path: Path, report: Path) -> list[str]:
        if suite_path.stem == "bad":
            body = "echo starting; echo 'boom: no such backbone' >&2; exit 3"
        else:
            body = f"cp {shlex.quote(str(sources[suite_path.stem]))} {shlex.quote(str(report))}"
        log = shlex.quote(str(trace))
        return [
            "sh",
            "-c",
            f"echo start >> {log}; sleep 0.1; ({body}); rc=$?; echo end >> {log}; exit $rc",
        ]

    monkeypatch.setattr(sw, "job_command", command)
    folder = tmp_path / "sweep"
    suites = [str(suite(tmp_path, n)) for n in ("a", "b", "bad")]
    result = runner.invoke(app, ["sweep", *suites, "--executor", "local", "--folder", str(folder)])
    assert result.exit_code == 1, result.output
    assert trace.read_text().split() == ["start", "end"] * 3  # one at a time, never overlapping
    out = result.output
    assert "a-local.json" in out and "b-local.json" in out  # both reports merged
    assert "ratios by machine class" in out  # two classes side by side
    assert "no exclusive allocation (local executor); jobs ran one at a time" in out
    assert "2 of 3 jobs wrote a report" in out
    assert "bad-local (local, job " in out and "): failed; last log lines:" in out
    assert "    boom: no such backbone" in out
    assert error_lines(out) == ["error: 1 of 3 sweep jobs left no report (listed above)"]
    manifest = json.loads((folder / "sweep.json").read_text())
    assert [j["state"] for j in manifest["jobs"]] == ["done", "done", "failed"]
    assert manifest["exclusive_requested"] is False

    again = runner.invoke(app, ["sweep", "--gather", str(folder)])  # later, another process
    assert again.exit_code == 1, again.output
    assert "a-local.json" in again.output and "    boom: no such backbone" in again.output


class FakeSlurm:
    """Records what a SlurmExecutor would be asked; submits nothing, runs nothing."""

    arrays: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.parameters: dict[str, Any] = {}
        self.in_batch = False

    def update_parameters(self, **kwargs: Any) -> None:
        self.parameters.update(kwargs)

    @contextmanager
    def batch(self) -> Any:
        self.in_batch = True
        FakeSlurm.arrays.append({"parameters": dict(self.parameters), "commands": []})
        yield
        self.in_batch = False

    def submit(self, fn: sw.RunCommand) -> Any:
        assert self.in_batch  # one job array per target
        FakeSlurm.arrays[-1]["commands"].append(fn.command)
        index = len(FakeSlurm.arrays[-1]["commands"]) - 1
        return type("Job", (), {"job_id": f"{100 + len(FakeSlurm.arrays)}_{index}"})()


def test_slurm_sweep_records_exclusive_arrays_and_runs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    FakeSlurm.arrays = []
    monkeypatch.setattr(sw, "slurm_executor", FakeSlurm)
    monkeypatch.setattr(sw.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(sw, "slurm_partitions", lambda: {"l4", "cpu", "a100"})
    gpu, cpu = suite(tmp_path, "gpu", "cuda"), suite(tmp_path, "cpu")
    folder = tmp_path / "sweep"
    args = ["sweep", str(gpu), str(cpu), "--executor", "slurm", "--targets", "l4,a100"]
    args += ["--gpus-per-job", "2", "--array-parallelism", "3", "--timeout-min", "30"]
    result = runner.invoke(app, [*args, "--folder", str(folder)])
    assert result.exit_code == 0, result.output
    assert "4 jobs submitted; when they have run: emobench sweep --gather" in result.output
    params = [a["parameters"] for a in FakeSlurm.arrays]
    assert [(p["partition"], p.get("gpus_per_node")) for p in params] == [
        ("l4", 2),
        ("a100", 2),
        ("l4", None),
        ("a100", None),
    ]
    for p in params:
        assert p["exclusive"] is True and p["array_parallelism"] == 3 and p["time"] == 30
    assert params[2]["setup"] == ['export SRUN_CPUS_PER_TASK="${SLURM_CPUS_ON_NODE}"']
    first = FakeSlurm.arrays[0]["commands"][0]
    assert first[1:5] == ["-m", "emobench", "run", str(gpu.resolve())]
    assert first[-1] == str((folder / "gpu-l4.json").resolve())
    manifest = json.loads((folder / "sweep.json").read_text())
    assert manifest["exclusive_requested"] is True
    assert [j["job_id"] for j in manifest["jobs"]][:2] == ["101_0", "102_0"]
    gathered = runner.invoke(app, ["sweep", "--gather", str(folder)])  # nothing ran yet
    assert gathered.exit_code == 1
    assert "exclusive nodes requested (--exclusive); 0 of 4 jobs wrote a report" in gathered.output
    assert "gpu-l4 (l4, job 101_0): no report; last log lines:" in gathered.output


def _no_submission(folder: Path) -> Any:
    raise AssertionError("nothing may be submitted on bad input")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--executor", "slurm"], "error: --executor slurm: sbatch is not on PATH"),
        (["--executor", "pbs"], "error: --executor: 'pbs' is not one of local, slurm"),
        (["--gpus-per-job", "1"], "error: --gpus-per-job: no suite runs on cuda"),
        (["--partition", "a100"], "error: --partition: only with --executor slurm"),
        (["BROKEN"], "broken.toml: "),
    ],
)
def test_bad_input_is_one_line_exit_2_before_submitting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.setattr(sw, "slurm_executor", _no_submission)
    monkeypatch.setattr(sw, "local_executor", _no_submission)
    monkeypatch.setattr(sw.shutil, "which", lambda name: None)
    broken = tmp_path / "broken.toml"
    broken.write_text("[suite]\nbackbones = 3\n")
    args = [str(broken) if a == "BROKEN" else a for a in args]
    if str(broken) not in args:
        args = [str(suite(tmp_path, "s")), *args]
    result = runner.invoke(app, ["sweep", *args, "--folder", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    lines = error_lines(result.output)
    assert len(lines) == 1 and message in lines[0], result.output
    assert not (tmp_path / "out").exists()


def test_gather_of_an_empty_folder_is_exit_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["sweep", "--gather", str(tmp_path)])
    assert result.exit_code == 2
    assert error_lines(result.output) == [
        f"error: --gather: nothing to gather in {tmp_path} (no sweep.json, no reports)"
    ]
