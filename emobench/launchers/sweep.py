"""A fleet sweep: one job per (suite file x machine target) through submitit, each a fresh
`emobench run SUITE --out FOLDER/JOB.json`, and the gathering of what they left in the folder.

Locally (submitit's LocalExecutor) the jobs run `array_parallelism` at a time, one by default:
two benchmarks on one machine would share its cores and memory bandwidth and time each other.
On Slurm (SlurmExecutor) each target is a partition and gets one job array; every job asks for
an exclusive node (`--exclusive`), and a CPU job's step is given all of the node's CPUs
(SRUN_CPUS_PER_TASK set from SLURM_CPUS_ON_NODE), a GPU job `gpus_per_job` GPUs.

The folder keeps a manifest (`sweep.json`: the jobs, their reports and submitit ids, what was
requested, exclusivity included) so `gather` can run later, in another process, and list every
job: a report, or why there is none (failed, timed out, not finished) with its log's last lines.

Torch-free and typer/rich-free; submitit is imported only when jobs are submitted or logs read.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from emobench.errors import EXIT_FAILURE, EmobenchError, UsageError
from emobench.files import write_atomic

EXECUTORS = ("local", "slurm")
MANIFEST = "sweep.json"
MANIFEST_SCHEMA = "emobench-sweep/1"
LOG_TAIL_LINES = 5
DEFAULT_TIMEOUT_MIN = 60.0
POLL_S = 0.1
LOCAL_TARGET = "local"
SUBMITIT_ERROR = "submitit ERROR"  # the banner submitit logs before a job's traceback
TIME_LIMIT_MARKS = ("DUE TO TIME LIMIT", "TIMEOUT", "timed-out")

# job states written to the manifest and shown by gather
DONE, FAILED, TIMED_OUT, NO_REPORT = "done", "failed", "timed out", "no report"


class SweepError(EmobenchError):
    """Some jobs of a sweep left no report (bad input is a UsageError instead)."""

    exit_code = EXIT_FAILURE


@dataclass(frozen=True)
class SweepSettings:
    """What `emobench sweep` was asked for; checked by `check_settings` before any submission."""

    suites: tuple[Path, ...]
    executor: str = "local"
    folder: Path = Path("sweep")
    targets: tuple[str, ...] = ()
    partition: str | None = None
    gpus_per_job: int | None = None
    array_parallelism: int = 1
    timeout_min: float = DEFAULT_TIMEOUT_MIN

    @property
    def target_names(self) -> tuple[str, ...]:
        """Locally: labels (default "local"). On Slurm: partitions (--targets, else --partition,
        else the cluster's default partition, named "default")."""
        if self.targets:
            return self.targets
        if self.partition:
            return (self.partition,)
        return (LOCAL_TARGET,) if self.executor == "local" else ("default",)


@dataclass
class SweepJob:
    """One job of a sweep: which suite on which target, where its report goes, how it ended."""

    name: str
    suite: str
    target: str
    report: str
    command: list[str]
    gpus: int = 0
    job_id: str | None = None
    state: str | None = None  # None until known (a local job that ended, or gather)
    seconds: float | None = None
    log_tail: list[str] = field(default_factory=list)


@dataclass
class Sweep:
    """The manifest: the jobs and what was requested for them."""

    executor: str
    folder: str
    exclusive_requested: bool
    parameters: dict[str, Any]
    jobs: list[SweepJob]

    def to_json(self) -> str:
        return json.dumps({"schema": MANIFEST_SCHEMA} | asdict(self), indent=2) + "\n"


class RunCommand:
    """The callable submitit pickles and runs in the job: the job's command as a fresh process,
    its output going to submitit's log files; a non-zero exit raises (submitit records it)."""

    def __init__(self, command: Sequence[str]) -> None:
        self.command = list(command)

    def __call__(self) -> str:
        sys.stdout.flush()
        proc = subprocess.run(self.command, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"the job's command exited with {proc.returncode}")
        return self.command[-1]


def emobench_run_command(suite: Path, report: Path) -> list[str]:
    """The default job: a fresh `python -m emobench run SUITE --out REPORT`."""
    return [sys.executable, "-m", "emobench", "run", str(suite), "--out", str(report)]


CommandFactory = Callable[[Path, Path], list[str]]
job_command: CommandFactory = emobench_run_command  # the CLI's seam: tests run a tiny job


MAX_TIMEOUT_MIN = 525_600  # a year: any real job limit is under it


def is_gpu_device(device: str) -> bool:
    return device.startswith("cuda")


def check_settings(
    settings: SweepSettings,
    suite_devices: Sequence[str],
    which: Callable[[str], str | None] | None = None,
    partitions: Callable[[], set[str] | None] | None = None,
) -> None:
    """Bad input, before anything is submitted: a UsageError (exit 2) naming the option.
    `which` and `partitions` default to shutil.which and `slurm_partitions` (sinfo)."""
    s = settings
    if s.executor not in EXECUTORS:
        raise UsageError(f"--executor: {s.executor!r} is not one of {', '.join(EXECUTORS)}")
    if not s.suites:
        raise UsageError("give one or more suite files (or --gather FOLDER)")
    if s.array_parallelism < 1:
        raise UsageError(f"--array-parallelism: {s.array_parallelism} must be at least 1")
    if not (math.isfinite(s.timeout_min) and 0 < s.timeout_min <= MAX_TIMEOUT_MIN):
        raise UsageError(
            f"--timeout-min must be a finite number of minutes in (0, {MAX_TIMEOUT_MIN}] "
            f"(a year), got {s.timeout_min}"
        )
    if s.gpus_per_job is not None and s.gpus_per_job < 0:
        raise UsageError(f"--gpus-per-job: {s.gpus_per_job} must be 0 or more")
    if s.gpus_per_job and not any(is_gpu_device(d) for d in suite_devices):
        raise UsageError("--gpus-per-job: no suite runs on cuda (their device is cpu or auto)")
    if len(set(s.target_names)) != len(s.target_names):
        raise UsageError("--targets: a target is named twice")
    for name in s.target_names:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
            raise UsageError(f"--targets: {name!r} is not a plain name (letters, digits, _.-)")
    if s.executor == "local":
        if s.partition is not None:
            raise UsageError("--partition: only with --executor slurm")
        return
    auto = [str(suite) for suite, d in zip(s.suites, suite_devices, strict=True) if d == "auto"]
    if auto:
        raise UsageError(
            f"{auto[0]}: device auto on Slurm: a job gets a GPU only when its suite says cuda "
            '(else it would quietly measure the CPU); set device = "cuda" or "cpu" in '
            "the suite"
        )
    if s.targets and s.partition is not None:
        raise UsageError("give --partition or --targets (partitions), not both")
    if (which or shutil.which)("sbatch") is None:
        raise UsageError("--executor slurm: sbatch is not on PATH (is this a Slurm login node?)")
    known = (partitions or slurm_partitions)()
    if known is not None and (s.targets or s.partition):
        for name in s.target_names:
            if name not in known:
                raise UsageError(
                    f"--partition: {name!r} is not a partition here ({', '.join(sorted(known))})"
                )


def slurm_partitions() -> set[str] | None:
    """The partitions `sinfo` lists, or None when it cannot say (no sinfo, or it failed)."""
    if shutil.which("sinfo") is None:
        return None
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {line.strip().rstrip("*") for line in out.splitlines() if line.strip()}


def _job_name(suite: Path, target: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{suite.stem}-{target}")
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    taken.add(name)
    return name


def plan(
    settings: SweepSettings,
    suite_devices: Sequence[str],
    command: CommandFactory = emobench_run_command,
) -> Sweep:
    """One job per (suite x target), in that order, with its report path in the folder."""
    folder = settings.folder.resolve()
    taken: set[str] = set()
    jobs = []
    for suite, device in zip(settings.suites, suite_devices, strict=True):
        gpus = 0
        if is_gpu_device(device):
            gpus = 1 if settings.gpus_per_job is None else settings.gpus_per_job
        for target in settings.target_names:
            name = _job_name(suite, target, taken)
            report = folder / f"{name}.json"
            jobs.append(
                SweepJob(
                    name,
                    str(suite.resolve()),
                    target,
                    str(report),
                    command(suite.resolve(), report),
                    gpus,
                )
            )
    parameters = {
        "array_parallelism": settings.array_parallelism,
        "timeout_min": settings.timeout_min,
        "targets": list(settings.target_names),
    }
    if settings.executor == "slurm":
        parameters["cpu_jobs"] = "exclusive node, all of its CPUs (SRUN_CPUS_PER_TASK)"
    return Sweep(
        executor=settings.executor,
        folder=str(folder),
        exclusive_requested=settings.executor == "slurm",
        parameters=parameters,
        jobs=jobs,
    )


def write_manifest(sweep: Sweep) -> Path:
    path = Path(sweep.folder) / MANIFEST
    write_atomic(path, sweep.to_json())
    return path


def read_manifest(folder: Path) -> Sweep | None:
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        if data.pop("schema", None) != MANIFEST_SCHEMA:
            raise ValueError("not a sweep manifest")
        jobs = [SweepJob(**j) for j in data.pop("jobs")]
        return Sweep(jobs=jobs, **data)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise UsageError(f"{path}: cannot read the sweep manifest ({exc})") from None


# ---------------------------------------------------------------- submission


# seams: tests replace these with fakes that record the parameters and run nothing
def local_executor(folder: Path) -> Any:
    import submitit

    return submitit.LocalExecutor(folder=folder)


def slurm_executor(folder: Path) -> Any:
    import submitit

    return submitit.SlurmExecutor(folder=folder)


def slurm_parameters(settings: SweepSettings, target: str, gpus: int) -> dict[str, Any]:
    """SlurmExecutor.update_parameters for one target's array: exclusive node; a GPU job asks
    for `gpus` GPUs, a CPU job's step gets every CPU of the node."""
    params: dict[str, Any] = {
        "job_name": f"emobench-sweep-{target}",
        "time": max(1, math.ceil(settings.timeout_min)),  # whole minutes, never shorter
        "exclusive": True,
        "array_parallelism": settings.array_parallelism,
        "nodes": 1,
        "ntasks_per_node": 1,
        "mem": "0",  # all of the node's memory
    }
    if target != "default" or settings.partition or settings.targets:
        params["partition"] = target
    if gpus:
        params["gpus_per_node"] = gpus
    # the job step is given every CPU of the (exclusive) node: a GPU job's preprocessing and
    # data loading too (since Slurm 22.05 a step defaults to one CPU)
    params["setup"] = ['export SRUN_CPUS_PER_TASK="${SLURM_CPUS_ON_NODE}"']
    return params


def submit(
    settings: SweepSettings,
    sweep: Sweep,
    echo: Callable[[str], None] = lambda _line: None,
) -> Sweep:
    """Submit every job. Locally: run them `array_parallelism` at a time, wait for each wave, and
    record how each ended. On Slurm: one job array per (target, GPU count); return at once."""
    folder = Path(sweep.folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_manifest(sweep)
    if settings.executor == "local":
        _run_local(settings, sweep, folder, echo)
    else:
        _submit_slurm(settings, sweep, folder, echo)
    write_manifest(sweep)
    return sweep


def _run_local(
    settings: SweepSettings, sweep: Sweep, folder: Path, echo: Callable[[str], None]
) -> None:
    executor = local_executor(folder)
    executor.update_parameters(timeout_min=settings.timeout_min)
    k = settings.array_parallelism
    total = len(sweep.jobs)
    for start in range(0, total, k):
        wave = sweep.jobs[start : start + k]
        running = []
        for i, job in enumerate(wave, start + 1):
            echo(f"job {i} of {total}: {job.name} ({job.target})")
            if job.gpus:  # submitit's local executor hides every GPU from a job given 0
                executor.update_parameters(gpus_per_node=job.gpus)
            submitted = executor.submit(RunCommand(job.command))
            job.job_id = str(submitted.job_id)
            running.append((job, submitted, time.perf_counter()))
        write_manifest(sweep)
        for job, submitted, started in running:
            while not submitted.done():
                time.sleep(POLL_S)
            job.seconds = round(time.perf_counter() - started, 3)
            job.state = _local_outcome(submitted, job, settings.timeout_min)
            if job.state != DONE:
                job.log_tail = log_tail(folder, job)
            echo(f"  {job.name}: {job.state} ({job.seconds:.1f} s)")


def _local_outcome(submitted: Any, job: SweepJob, timeout_min: float) -> str:
    try:
        submitted.result()
    except Exception:  # submitit's FailedJobError / UncompletedJobError: logs say why
        if job.seconds is not None and job.seconds >= timeout_min * 60:
            return TIMED_OUT
        return FAILED
    return DONE if Path(job.report).is_file() else NO_REPORT


def _submit_slurm(
    settings: SweepSettings, sweep: Sweep, folder: Path, echo: Callable[[str], None]
) -> None:
    groups: dict[tuple[str, int], list[SweepJob]] = {}
    for job in sweep.jobs:
        groups.setdefault((job.target, job.gpus), []).append(job)
    for (target, gpus), jobs in groups.items():
        executor = slurm_executor(folder)
        executor.update_parameters(**slurm_parameters(settings, target, gpus))
        with executor.batch():  # one job array
            submitted = [executor.submit(RunCommand(job.command)) for job in jobs]
        for job, sub in zip(jobs, submitted, strict=True):
            job.job_id = str(sub.job_id)
            echo(f"submitted {job.name} to {target} as Slurm job {job.job_id}")


# ---------------------------------------------------------------- gathering


@dataclass(frozen=True)
class Gathered:
    """What a folder holds: the reports to merge, and every job that left none (with why)."""

    folder: Path
    sweep: Sweep | None
    reports: list[Path]
    missing: list[SweepJob]


def log_paths(folder: Path, job_id: str) -> tuple[Path, Path]:
    """submitit's stdout and stderr files of task 0 of `job_id`."""
    from submitit.core.utils import JobPaths

    paths = JobPaths(folder, job_id=job_id, task_id=0)
    return paths.stdout, paths.stderr


def log_tail(folder: Path, job: SweepJob, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last lines of the job's stderr (else stdout) log; a note when there is none."""
    if job.job_id is None:
        return ["(never submitted)"]
    for path in reversed(log_paths(folder, job.job_id)):
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        kept = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
        if kept:
            return _job_lines(kept, lines)
    return [f"(no log output in {folder} for job {job.job_id})"]


def _job_lines(kept: list[str], lines: int) -> list[str]:
    """The job's own last lines, not submitit's traceback of the exception it raised: the lines
    before submitit's error banner, then the exception's last line (its message)."""
    for i, line in enumerate(kept):
        if line.startswith(SUBMITIT_ERROR):
            return [*kept[:i][-(lines - 1) :], kept[-1]] if i else [kept[-1]]
    return kept[-lines:]


def _gathered_state(folder: Path, job: SweepJob) -> str:
    if Path(job.report).is_file():
        return DONE
    if job.state in (FAILED, TIMED_OUT):
        return job.state
    tail = "\n".join(log_tail(folder, job, 50))
    if any(mark in tail for mark in TIME_LIMIT_MARKS):
        return TIMED_OUT
    if job.job_id is not None:
        result = log_paths(folder, job.job_id)[0].parent / f"{job.job_id}_0_result.pkl"
        if result.is_file():
            return FAILED
    return job.state or NO_REPORT


def gather(folder: Path) -> Gathered:
    """Every report in `folder` (the manifest's jobs first, then any other report there) and the
    manifest's jobs that left none. A folder with nothing to gather is a UsageError."""
    from emobench.files import is_report_file

    if not folder.is_dir():
        raise UsageError(f"--gather: {folder} is not a folder")
    sweep = read_manifest(folder)
    reports: list[Path] = []
    missing: list[SweepJob] = []
    if sweep is not None:
        for job in sweep.jobs:
            state = _gathered_state(folder, job)
            if state == DONE:
                reports.append(Path(job.report))
            else:
                tail = job.log_tail or log_tail(folder, job)
                missing.append(replace(job, state=state, log_tail=tail))
    seen = {p.resolve() for p in reports}
    for path in sorted(folder.glob("*.json")):
        if path.name != MANIFEST and path.resolve() not in seen and is_report_file(path):
            reports.append(path)
    if not reports and not missing:
        raise UsageError(f"--gather: nothing to gather in {folder} (no {MANIFEST}, no reports)")
    return Gathered(folder, sweep, reports, missing)
