"""Bad-input cases for `sweep` and `sweep --gather`. Gathered by tests/bad_inputs.py.

Each is one error line and exit 2 from the torch-free checks (launchers/sweep.check_settings,
the suite files, --folder, --gather's folder), before submitit is given a job or anything is
written. --executor slurm without sbatch on PATH is only a refusal where there is none.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.bad_input_base import Case, _c

SURFACE = "sweep"
# a valid suite and a folder that does not exist: the case stops at what it names
SW = "sweep sw-ok.toml --folder sw-new"


def _w(command: str, message: str) -> Case:
    return _c(command, message, surface=SURFACE)


CASES: tuple[Case, ...] = (
    # the numbers
    _w(f"{SW} --timeout-min nan", "--timeout-min must be a finite number of minutes"),
    _w(f"{SW} --timeout-min -1", "in (0, 525600] (a year), got -1.0"),
    _w(f"{SW} --timeout-min 0", "in (0, 525600] (a year), got 0.0"),
    _w(f"{SW} --timeout-min inf", "in (0, 525600] (a year), got inf"),
    _w(f"{SW} --timeout-min 1e300", "in (0, 525600] (a year), got 1e+300"),
    _w(f"{SW} --array-parallelism 0", "--array-parallelism: 0 must be at least 1"),
    _w(f"{SW} --array-parallelism -3", "--array-parallelism: -3 must be at least 1"),
    _w(f"{SW} --gpus-per-job -1", "--gpus-per-job: -1 must be 0 or more"),
    # the executor and the targets
    _w(f"{SW} --executor bogus", "--executor: 'bogus' is not one of local, slurm"),
    _w(f"{SW} --targets a,a", "--targets: a target is named twice"),
    _w("sweep --folder sw-new", "give one or more suite files (or --gather FOLDER)"),
    # the suite files
    _w("sweep sw-fifo.toml --folder sw-new", "sw-fifo.toml: is a FIFO (named pipe)"),
    _w("sweep /dev/zero --folder sw-new", "/dev/zero: is a character device"),
    _w("sweep sw-folder.toml --folder sw-new", "sw-folder.toml: is a folder"),
    _w("sweep sw-empty.toml --folder sw-new", "sw-empty.toml: missing [suite] table"),
    _w("sweep sw-bad.toml --folder sw-new", "sw-bad.toml: invalid TOML"),
    _w("sweep sw-none.toml --folder sw-new", "sw-none.toml: no such suite file"),
    # --folder: new or empty
    _w("sweep sw-ok.toml --folder sw-file", "--folder: sw-file is not a folder"),
    _w("sweep sw-ok.toml --folder sw-fifo", "--folder: sw-fifo is not a folder"),
    _w("sweep sw-ok.toml --folder sw-full", "--folder: sw-full is not empty"),
    # --gather
    _w("sweep --gather sw-fifo", "--gather: sw-fifo is not a folder"),
    _w("sweep --gather sw-file", "--gather: sw-file is not a folder"),
    _w("sweep --gather sw-none", "--gather: sw-none is not a folder"),
    _w("sweep --gather sw-empty-dir", "--gather: nothing to gather in sw-empty-dir"),
    _w("sweep sw-ok.toml --gather sw-empty-dir", "--gather: give the folder alone"),
) + (
    # a Slurm login node has sbatch: there the command would submit
    (_w(f"{SW} --executor slurm", "--executor slurm: sbatch is not on PATH"),)
    if shutil.which("sbatch") is None
    else ()
)


def make_fixtures(folder: Path) -> None:
    """The files these cases name, under `folder` (the working folder they run in)."""
    (folder / "sw-ok.toml").write_text(
        '[suite]\nbackbones = ["vgg16"]\ndevice = "cpu"\nbatch_sizes = [2]\n'
    )
    os.mkfifo(folder / "sw-fifo.toml")
    (folder / "sw-folder.toml").mkdir()
    (folder / "sw-empty.toml").write_text("")
    (folder / "sw-bad.toml").write_text("[suite\nbackbones = ")
    (folder / "sw-file").write_text("a file, not a folder\n")
    os.mkfifo(folder / "sw-fifo")
    (folder / "sw-full").mkdir()
    (folder / "sw-full" / "mine.txt").write_text("not the sweep's\n")
    (folder / "sw-empty-dir").mkdir()
