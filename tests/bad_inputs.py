"""The bad-input matrix (issue #13): commands an adversarial user tried, each of which must end
in one `error:` line and exit 2 before anything is measured or written.

Shared by tests/cli/test_bad_input.py (in-process, every case) and benchmarks/bad_input.py (one
real process per case, timed). `make_fixtures(folder)` creates the files the commands name;
the commands are run with `folder` as the working directory.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.bad_input_base import Case, _c, png_header

CASES: tuple[Case, ...] = (
    # click's own parsing (item 14)
    _c("compare --batch-size abc", "Invalid value for '--batch-size'"),
    _c("compare --nosuch", "No such option: --nosuch"),
    _c("check", "Missing argument"),
    # options (items 6, 7, 15)
    _c("compare --backbone alexnet", "unknown backbone 'alexnet'"),
    _c("compare --device tpu", "unknown device 'tpu'"),
    _c("compare --batch-size 0", "batch size must be a positive integer"),
    _c("compare --min-time nan", "min_time_s must be a finite number"),
    _c("compare --min-time inf", "min_time_s must be a finite number"),
    _c("compare --max-time -1", "max_time_s must be a finite number > 0"),
    _c("compare --target-ci nan", "target_ci must be a finite number"),
    _c("compare --time-budget inf", "time_budget_s must be a finite number"),
    _c("compare --seed -1", "seed must be >= 0"),
    _c("compare --threads 0", "--threads must be >= 1"),
    _c("compare --precision fp8", "unknown precision 'fp8'"),
    _c("compare --device cpu --precision fp16", "fp16 needs a CUDA device"),
    _c("compare --device cpu --tf32", "apply to CUDA devices only"),
    _c("compare --mode fly", "unknown mode 'fly'"),
    _c("compare --compile turbo", "unknown compile 'turbo'"),
    _c("compare --batch-size 100000000", "--batch-size 100000000 needs at least"),
    _c("compare --preprocess-images 100000000", "--preprocess-images 100000000 needs at least"),
    _c("compare --device cuda:7", "CUDA", needs_torch=True),
    # --data (items 5, 8, 11)
    _c("compare --data no/such.csv", "no such file or folder"),
    _c("compare --data /dev/zero", "is a character device"),
    _c("compare --data fifo.csv", "is a FIFO"),
    _c("compare --data one.png", "is a single image"),
    _c("compare --data bad.csv", "expected 2304"),
    _c("compare --data long.csv", "a line longer than"),
    _c("compare --data bomb", "refused before decoding"),
    _c("compare --data fifo-folder", "is a FIFO"),
    # outputs (items 3, 4, 11)
    _c("compare --out folder", "--out folder: is a folder"),
    _c("compare --out /dev/null", "is a character device"),
    _c("compare --out fifo.json", "is a FIFO"),
    _c("compare --out notes.txt", "exists and is not an emobench report"),
    _c("compare --out notes.txt/r.json", "is not a folder"),
    # maxbatch (items 6, 15)
    _c("maxbatch --margin nan", "--margin must be in [0, 1)"),
    _c("maxbatch --margin 1.5", "--margin must be in [0, 1)"),
    _c("maxbatch --budget lots", "--budget 'lots'"),
    _c("maxbatch --budget " + "9" * 400 + "GiB", "not a finite size"),
    _c("maxbatch --budget 0.5GiB --margin -0.1", "--margin must be in [0, 1)"),
    _c("maxbatch --mode fly", "unknown mode 'fly'"),
    _c("maxbatch --pipeline direct64", "unknown pipeline 'direct64'"),
    _c("maxbatch --max-batch 0", "--max-batch must be >= 1"),
    _c("maxbatch --out notes.txt", "exists and is not an emobench report"),
    _c("maxbatch --device cpu --budget 100000GiB", "larger than the available RAM", True),
    # suite files (items 6, 8)
    _c("run nan.toml", "key 'min_time_s' must be a finite number"),
    _c("run inf.toml", "key 'max_time_s' must be a finite number"),
    _c("run /dev/zero", "is a character device"),
    _c("run no-such.toml", "no such suite file"),
    _c("run data-dev-zero.toml", "--data /dev/zero: is a character device"),
    _c("ci nan.toml --baseline base.json", "must be a finite number"),
    _c("ci other-suite.toml --baseline base.json", "give a baseline of this suite", True),
    # reports (items 9, 10, 11)
    _c("check maxbatch.json --baseline base.json", "a maxbatch report; check compares"),
    _c("check empty.json --baseline base.json", "with no results"),
    _c("check v0.json --baseline base.json", "schema version 0"),
    _c("check weird.json --baseline base.json", "unknown report kind 'weird'"),
    _c("check deep.json --baseline base.json", "nested too deeply"),
    _c("check notjson.json --baseline base.json", "not valid JSON"),
    _c("check /dev/zero --baseline base.json", "is a character device"),
    _c("check good.json --baseline base.json --fail-on ", "names no kind"),
    _c("check good.json --baseline base.json --rule portable:30", "bare threshold"),
    _c("check good.json --baseline base.json --rule portable:1001%", "from 0% to 1000%"),
    _c("check good.json --baseline base.json --rule portable:nan%", "finite"),
    _c("check good.json --baseline base.json --markdown folder", "--markdown folder: is a"),
    _c("check good.json --baseline nightly", "no baseline of that name"),
    _c("check good.json --baseline base.json --rule nosuch:10%", "unknown metric", True),
    _c(
        "report maxbatch.json --markdown a.md --csv b.csv --plot c.png",
        "maxbatch reports have no curves",
    ),
    _c("report empty.json", "with no results"),
    _c("report good.json --csv folder", "--csv folder: is a folder"),
    _c("report good.json maxbatch.json", "cannot share a table"),
    _c("baseline save empty.json --name x", "with no results"),
    _c("baseline save good.json --name ../x", "use a plain file name"),
    _c("claims maxbatch.json", "claims need a compare or run report"),
    _c("claims good.json --maxbatch good.json", "--maxbatch needs a maxbatch report"),
    _c("env --device tpu", "unknown device 'tpu'"),
)
# "--fail-on " splits into a trailing empty string: the empty --fail-on ''
CORE_CASES = tuple(
    Case((*c.args, ""), c.message, c.needs_torch) if c.args[-1] == "--fail-on" else c for c in CASES
)

SUITE = """[suite]
backbones = ["vgg16"]
device = "cpu"
batch_sizes = [2]
{extra}
"""


def make_core_fixtures(folder: Path) -> None:
    """Every file the cases name, under `folder` (which then is the working directory)."""
    from emobench import results as R
    from tests.factories import make_report

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "folder").mkdir()
    os.mkfifo(folder / "fifo.csv")
    os.mkfifo(folder / "fifo.json")
    (folder / "fifo-folder").mkdir()
    os.mkfifo(folder / "fifo-folder" / "a.png")
    (folder / "bad.csv").write_text("pixels\n1 2 3\n")
    (folder / "long.csv").write_text("pixels\n" + "1 " * 50_000 + "\n")
    (folder / "one.png").write_bytes(png_header(48, 48))
    (folder / "bomb").mkdir()
    (folder / "bomb" / "big.png").write_bytes(png_header(20_000, 20_000))
    (folder / "notes.txt").write_text("my notes, not a report\n")
    (folder / "nan.toml").write_text(SUITE.format(extra="min_time_s = nan"))
    (folder / "inf.toml").write_text(SUITE.format(extra="max_time_s = inf"))
    (folder / "data-dev-zero.toml").write_text(SUITE.format(extra='data = "/dev/zero"'))
    (folder / "other-suite.toml").write_text(
        SUITE.format(extra="").replace('"vgg16"', '"resnet18"')
    )
    good = make_report()
    R.save(good, folder / "good.json")
    R.save(good, folder / "base.json")
    data = R.to_dict(good)
    for name, change in (
        ("empty.json", {"results": []}),
        ("v0.json", {"schema_version": 0}),
        ("weird.json", {"kind": "weird"}),
        ("maxbatch.json", {"kind": "maxbatch", "results": [], "maxbatch": [{}]}),
    ):
        (folder / name).write_text(json.dumps(data | change))
    (folder / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (folder / "notjson.json").write_text("{not json")


# The newer surfaces (issue #26), one module each; imported here so every user of the matrix
# (the in-process test, the benchmark) sees all of them.
from tests import (  # noqa: E402
    bad_inputs_export,
    bad_inputs_finetune,
    bad_inputs_outputs,
    bad_inputs_plugins,
    bad_inputs_runtimes,
    bad_inputs_stream,
    bad_inputs_sweep,
)

SURFACES = (
    bad_inputs_finetune,  # first: its fixtures (ft.csv) are used by export's cases
    bad_inputs_outputs,
    bad_inputs_plugins,
    bad_inputs_runtimes,
    bad_inputs_stream,
    bad_inputs_export,
    bad_inputs_sweep,
)
CASES = CORE_CASES + tuple(c for module in SURFACES for c in module.CASES)


def make_fixtures(folder: Path) -> None:
    """Every file the cases name, under `folder` (which then is the working directory)."""
    make_core_fixtures(folder)
    for module in SURFACES:
        module.make_fixtures(folder)
