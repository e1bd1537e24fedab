"""The sweep's plan, Slurm parameters, log tails and gathering (no job is run here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from emobench import results as R
from emobench.errors import UsageError
from emobench.launchers import sweep as sw
from tests.factories import make_report


def settings(tmp_path: Path, **kw: object) -> sw.SweepSettings:
    base = {"suites": (tmp_path / "ci.toml", tmp_path / "gpu.toml"), "folder": tmp_path / "out"}
    return sw.SweepSettings(**(base | kw))  # type: ignore[arg-type]


def test_plan_is_one_job_per_suite_and_target_with_its_report(tmp_path: Path) -> None:
    s = settings(tmp_path, executor="slurm", targets=("l4", "cpu-node"))
    sweep = sw.plan(s, ["cpu", "cuda:0"])
    assert [(j.name, j.gpus) for j in sweep.jobs] == [
        ("ci-l4", 0),
        ("ci-cpu-node", 0),
        ("gpu-l4", 1),  # a cuda suite gets one GPU unless --gpus-per-job says otherwise
        ("gpu-cpu-node", 1),
    ]
    job = sweep.jobs[0]
    assert job.report == str((tmp_path / "out" / "ci-l4.json").resolve())
    assert job.command[1:] == [
        "-m",
        "emobench",
        "run",
        str(tmp_path / "ci.toml"),
        "--out",
        job.report,
    ]
    assert sweep.exclusive_requested is True
    assert sw.plan(settings(tmp_path), ["cpu", "cpu"]).exclusive_requested is False


def test_slurm_parameters_exclusive_node_and_cpus_or_gpus(tmp_path: Path) -> None:
    default = sw.slurm_parameters(
        settings(tmp_path, executor="slurm", timeout_min=0.2), "default", 0
    )
    assert "partition" not in default  # the cluster's default partition
    assert default["exclusive"] is True and default["time"] == 1 and default["mem"] == "0"
    assert default["setup"] == ['export SRUN_CPUS_PER_TASK="${SLURM_CPUS_ON_NODE}"']
    gpu = sw.slurm_parameters(settings(tmp_path, executor="slurm", partition="a100"), "a100", 4)
    assert gpu["partition"] == "a100" and gpu["gpus_per_node"] == 4
    # a GPU job's step gets the node's CPUs too (a step defaults to one since Slurm 22.05)
    assert gpu["setup"] == default["setup"]
    assert sw.slurm_parameters(settings(tmp_path, timeout_min=30.4), "x", 0)["time"] == 31


def test_slurm_refuses_an_auto_suite(tmp_path: Path) -> None:
    s = settings(tmp_path, executor="slurm")
    with pytest.raises(UsageError, match="device auto on Slurm"):
        sw.check_settings(s, ["auto"] * len(s.suites), which=lambda _: "/usr/bin/sbatch")


def test_log_tail_keeps_the_jobs_lines_not_submitits_traceback(tmp_path: Path) -> None:
    job = sw.SweepJob("j", "s.toml", "local", str(tmp_path / "j.json"), [], job_id="7")
    lines = ["progress", "error: boom", "submitit ERROR (x) - Submitted job triggered"]
    lines += ["Traceback (most recent call last):", "  File x", "RuntimeError: exited with 1"]
    (tmp_path / "7_0_log.err").write_text("\n".join(lines) + "\n")
    assert sw.log_tail(tmp_path, job, 3) == [
        "progress",
        "error: boom",
        "RuntimeError: exited with 1",
    ]
    assert sw.log_tail(tmp_path, sw.SweepJob("k", "s", "t", "r", [], job_id="8")) == [
        f"(no log output in {tmp_path} for job 8)"
    ]


def test_gather_reads_reports_without_a_manifest_and_a_slurm_time_limit(tmp_path: Path) -> None:
    R.save(make_report(), tmp_path / "by-hand.json")
    (tmp_path / "notes.json").write_text("{}")  # not a report: left alone
    plain = sw.gather(tmp_path)
    assert plain.sweep is None and plain.reports == [tmp_path / "by-hand.json"]

    s = settings(tmp_path, suites=(tmp_path / "ci.toml",), folder=tmp_path)
    sweep = sw.plan(s, ["cpu"])
    sweep.jobs[0].job_id = "42_0"
    sw.write_manifest(sweep)
    slurm_line = "slurmstepd: error: *** JOB 42 ON n1 CANCELLED AT 2026 DUE TO TIME LIMIT ***"
    (tmp_path / "42_0_0_log.err").write_text(slurm_line + "\n")
    gathered = sw.gather(tmp_path)
    assert gathered.reports == [tmp_path / "by-hand.json"]
    assert [(j.name, j.state, j.log_tail) for j in gathered.missing] == [
        ("ci-local", sw.TIMED_OUT, [slurm_line])
    ]
