"""`emobench sweep`: a suite on several machine classes through submitit (local or Slurm), and
`--gather` to merge what the jobs wrote. The work is in launchers/sweep.py; this is the skin."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from emobench.cli.shell import clean_errors
from emobench.errors import UsageError
from emobench.names import RESULTS_DIR
from emobench.render.console import stdout_console

SuitesArg = Annotated[
    list[Path] | None,
    typer.Argument(
        metavar="SUITE...", help="Suite files, e.g. configs/ci.toml: one job per suite and target."
    ),
]
ExecutorOpt = Annotated[
    str,
    typer.Option(
        "--executor",
        metavar="local|slurm",
        help="local: submitit's local executor, jobs one at a time on this machine; slurm: "
        "sbatch job arrays, each job on an exclusive node.",
    ),
]
PartitionOpt = Annotated[
    str | None, typer.Option("--partition", help="Slurm partition (one target).")
]
TargetsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--targets",
        metavar="NAME",
        help="Machine targets, repeatable or comma-separated: Slurm partitions (one job array "
        "each); locally, labels only (all run on this machine).",
    ),
]
GpusOpt = Annotated[
    int | None,
    typer.Option(
        "--gpus-per-job", help="GPUs per job for suites on cuda (default 1; CPU jobs get none)."
    ),
]
ParallelOpt = Annotated[
    int,
    typer.Option(
        "--array-parallelism",
        help="Jobs running at once (Slurm: per array; local: on this machine, so keep 1).",
    ),
]
TimeoutOpt = Annotated[
    float, typer.Option("--timeout-min", help="Each job's time limit in minutes.")
]
FolderOpt = Annotated[
    Path | None,
    typer.Option(
        "--folder",
        help="Where the jobs' reports, logs and the sweep.json manifest go: a new or empty "
        "folder (default results/sweep).",
    ),
]
GatherOpt = Annotated[
    Path | None,
    typer.Option(
        "--gather",
        metavar="FOLDER",
        help="Merge the reports a sweep left in FOLDER into one table, and list every job that "
        "failed or timed out with its log's last lines.",
    ),
]


@clean_errors
def sweep_cmd(
    suites: SuitesArg = None,
    executor: ExecutorOpt = "local",
    partition: PartitionOpt = None,
    gpus_per_job: GpusOpt = None,
    array_parallelism: ParallelOpt = 1,
    timeout_min: TimeoutOpt = 60.0,
    folder: FolderOpt = None,
    targets: TargetsOpt = None,
    gather_dir: GatherOpt = None,
) -> None:
    """Run suites on several machine classes: one job per (suite x target), each a fresh
    `emobench run SUITE --out FOLDER/JOB.json` on a machine of its own, then one merged table.

    Locally the jobs run one at a time and the table follows; on Slurm they are submitted as
    job arrays (exclusive nodes) and `--gather FOLDER` merges them once they have run. Jobs
    that failed or timed out are listed with their logs' last lines (exit 1).

    \b
    Examples:
      emobench sweep configs/ci.toml --executor local --folder results/sweep-ci
      emobench sweep configs/gpu.toml --executor slurm --targets l4 --targets a100 \\
          --gpus-per-job 1 --timeout-min 60 --folder results/sweep-gpu
      emobench sweep --gather results/sweep-gpu
    """
    from emobench.launchers import sweep as sw

    if gather_dir is not None:
        if suites:
            raise UsageError("--gather: give the folder alone, without suite files")
        gather_and_print(gather_dir)
        return
    names = tuple(n.strip() for t in targets or [] for n in t.split(",") if n.strip())
    settings = sw.SweepSettings(
        suites=tuple(suites or ()),
        executor=executor,
        folder=folder if folder is not None else RESULTS_DIR / "sweep",
        targets=names,
        partition=partition,
        gpus_per_job=gpus_per_job,
        array_parallelism=array_parallelism,
        timeout_min=timeout_min,
    )
    if executor not in sw.EXECUTORS:  # before the suites are read
        sw.check_settings(settings, [])
    from emobench.config import load_suite

    devices = [load_suite(path).device for path in settings.suites]
    sw.check_settings(settings, devices)
    _check_folder(settings.folder)
    sweep = sw.plan(settings, devices, command=sw.job_command)
    sw.submit(settings, sweep, echo=lambda line: typer.echo(line, err=True))
    if executor == "local":
        gather_and_print(settings.folder)
    else:
        typer.echo(
            f"{len(sweep.jobs)} jobs submitted; when they have run: "
            f"emobench sweep --gather {settings.folder}",
            err=True,
        )


def _check_folder(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--folder: {folder} is not a folder")
    if folder.is_dir() and any(folder.iterdir()):
        raise UsageError(f"--folder: {folder} is not empty; give a new folder for this sweep")


def gather_and_print(folder: Path) -> None:
    """The merged table (and ratios per machine class) of the folder's reports, then what was
    requested and every job without a report; exit 1 when there is one."""
    from emobench.launchers import sweep as sw
    from emobench.readout import merge as readout
    from emobench.render.readout import class_ratio_table, merged_table
    from emobench.render.sweep import sweep_lines

    gathered = sw.gather(folder)
    if gathered.reports:
        family = readout.check_reports(gathered.reports)
        loaded = readout.load_reports(gathered.reports)
        columns = readout.MAXBATCH_COLUMNS if family == "maxbatch" else readout.TIMING_COLUMNS
        stdout_console().print(merged_table(readout.merged_rows(loaded), columns))
        ratios = readout.class_ratios(loaded)  # None unless two or more machine classes
        if ratios is not None:
            stdout_console().print(class_ratio_table(ratios))
    for line in sweep_lines(gathered):
        typer.echo(line)
    if gathered.missing:
        total = len(gathered.sweep.jobs) if gathered.sweep is not None else len(gathered.missing)
        raise sw.SweepError(
            f"{len(gathered.missing)} of {total} sweep jobs left no report (listed above)"
        )
