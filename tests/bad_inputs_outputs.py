"""Bad-input cases for report outputs, report validation, check/claims/calibrate/baseline
(issue #26). Gathered by tests/bad_inputs.py."""

from __future__ import annotations

import json
from pathlib import Path

from tests.bad_input_base import Case, _c

SURFACE = "outputs"  # the benchmark's grouping for every case here


def _o(command: str, message: str) -> Case:
    return _c(command, message, surface=SURFACE)


LATENCY = "results[0].latency.stats.median must be a finite number > 0"

CASES: tuple[Case, ...] = (
    # numbers outside their domain, refused on load by every reader, with the field's path
    _o("check nan-latency.json --baseline base.json", f"nan-latency.json: {LATENCY}, got nan"),
    _o("check inf-latency.json --baseline base.json", f"{LATENCY}, got inf"),
    _o("check negative-latency.json --baseline base.json", f"{LATENCY}, got -0.222"),
    _o("check good.json --baseline nan-latency.json", f"nan-latency.json: {LATENCY}, got nan"),
    _o("check good.json --baseline inf-latency.json", f"{LATENCY}, got inf"),
    _o(
        "check zero-batch.json --baseline base.json",
        "results[0].throughput[0].batch_size must be an integer >= 1, got 0",
    ),
    _o("check string-ratios.json --baseline base.json", "malformed report (expected a list"),
    _o("check nan-config.json --baseline base.json", "config.min_time_s must be a finite number"),
    _o("report nan-latency.json", f"{LATENCY}, got nan"),
    _o("report negative-latency.json --plot p.png", f"{LATENCY}, got -0.222"),
    _o("report zero-latency.json --plot p.png", f"{LATENCY}, got 0.0"),
    _o("report string-ratios.json", "malformed report (expected a list, got str)"),
    _o("report ft-no-runs.json", "finetune.runs must not be empty"),
    _o("report ft-no-epochs.json", "finetune.runs[0].epochs must not be empty"),
    _o("claims negative-latency.json", f"{LATENCY}, got -0.222"),
    _o("claims nan-latency.json", f"{LATENCY}, got nan"),
    _o("claims string-ratios.json", "malformed report (expected a list, got str)"),
    _o("claims zero-batch.json", "batch_size must be an integer >= 1, got 0"),
    _o("claims ft-no-runs.json", "finetune.runs must not be empty"),
    _o("baseline save negative-latency.json --name x", f"{LATENCY}, got -0.222"),
    _o("baseline save zero-batch.json --name x", "batch_size must be an integer >= 1, got 0"),
    _o("baseline save inf-latency.json --name x", f"{LATENCY}, got inf"),
    _o("baseline save string-ratios.json --name x", "malformed report (expected a list"),
    _o(
        "calibrate --from run1.json --from run2.json --from nan-latency.json",
        f"{LATENCY}, got nan",
    ),
    _o("calibrate --from negative-latency.json --from run1.json", f"{LATENCY}, got -0.222"),
    _o("calibrate --from run1.json --from zero-batch.json", "must be an integer >= 1, got 0"),
    _o("calibrate --from string-ratios.json", "malformed report (expected a list, got str)"),
    _o("check good.json --baseline /dev/zero", "/dev/zero: is a character device"),
    # an output naming one of the command's own inputs, --force or not
    _o("report good.json --csv good.json --force", "--csv good.json: is one of this command's"),
    _o("report good.json --markdown good.json", "--markdown good.json: is one of this command's"),
    _o("report report.png --plot report.png --force", "--plot report.png: is one of this command"),
    _o("claims good.json --markdown good.json --force", "is one of this command's inputs"),
    _o(
        "check good.json --baseline base.json --markdown base.json --force",
        "--markdown base.json: is one of this command's inputs",
    ),
    _o(
        "check good.json --baseline base.json --candidate-out good.json",
        "--candidate-out good.json: is one of this command's inputs",
    ),
    _o(
        "ci other-suite.toml --baseline base.json --markdown other-suite.toml",
        "--markdown other-suite.toml: is one of this command's inputs",
    ),
    _o(
        "ci other-suite.toml --baseline base.json --out base.json --force",
        "--out base.json: is one of this command's inputs",
    ),
    _o(
        "calibrate --from run1.json --from run2.json --from run3.json --out run2.json --force",
        "--out run2.json: is one of this command's inputs",
    ),
    # an existing file that is not ours, without --force
    _o("report good.json --markdown notes.txt", "exists and is not an emobench markdown file"),
    _o("report good.json --csv notes.txt", "--csv notes.txt: exists and is not an emobench csv"),
    _o("report good.json --plot foreign.png", "exists and is not an emobench plot file"),
    _o("claims good.json --markdown notes.txt", "exists and is not an emobench markdown file"),
    _o(
        "check good.json --baseline base.json --candidate-out notes.txt",
        "--candidate-out notes.txt: exists and is not an emobench report",
    ),
    _o(
        "check good.json --baseline base.json --markdown notes.txt",
        "exists and is not an emobench markdown file",
    ),
    _o(
        "calibrate --from run1.json --from run2.json --from run3.json --out notes.txt",
        "--out notes.txt: exists and is not an emobench calibration file",
    ),
    # report --html (#22): the same policy as every other output
    _o("report good.json --html good.json --force", "--html good.json: is one of this command's"),
    _o("report good.json --html notes.txt", "--html notes.txt: exists and is not an emobench html"),
    _o("report good.json --html folder", "--html folder: is a folder"),
    _o("report good.json --html fifo.json", "--html fifo.json: is a FIFO"),
    _o("report good.json --html /dev/null", "--html /dev/null: is a character device"),
    _o("report good.json --html same.html --markdown same.html", "names the same file"),
    _o("report nan-latency.json --html page.html", f"{LATENCY}, got nan"),
    # a user's file that merely mentions our marker is not ours
    _o("report good.json --markdown mentions-marker.md", "exists and is not an emobench markdown"),
    _o("report good.json --html mentions-marker.html", "exists and is not an emobench html"),
    # claims over several reports (#22): every input checked as report's are
    _o("claims good.json /dev/zero", "/dev/zero: is a character device"),
    _o("claims good.json fifo.json", "fifo.json: is a FIFO"),
    _o("claims good.json nan-latency.json", f"{LATENCY}, got nan"),
    _o("report good.json --markdown same.md --csv same.md", "--markdown names the same file"),
    _o("report good.json --plot out.txt", "--plot out.txt: extension '.txt'"),
    _o("report good.json --plot out", "--plot out: no extension"),
    # calibrate --from: at least 3 distinct runs, each counted once
    _o("calibrate --from good.json", "--from: 1 distinct run; calibration needs at least 3"),
    _o(
        "calibrate --from good.json --from good.json --from good.json",
        "1 distinct run (good.json given 3 times: counted once)",
    ),
    _o(
        "calibrate --from good.json --from base.json --from run2.json",
        "2 distinct runs (base.json holds the same run as good.json: counted once)",
    ),
    _o(
        "calibrate --from run1.json --from run2.json --from run3.json --save-baseline stored "
        "--dir stored-baselines",
        "already exists; pass --force to overwrite it",
    ),
)


def _latency(value: float):
    def edit(d: dict) -> None:
        d["results"][0]["latency"]["stats"]["median"] = value

    return edit


def make_fixtures(folder: Path) -> None:
    """The files these cases name, under `folder` (the core fixtures are already there)."""
    from emobench import results as R
    from emobench.gate.store import machine_class
    from tests.factories import drifting_runs, make_report
    from tests.paths import REPORTS

    (folder / "mentions-marker.md").write_text(
        "# my notes\n\nemobench writes <!-- written by emobench ... --> at the top.\n"
    )
    (folder / "mentions-marker.html").write_text(
        '<p>not a page: <meta name="generator" content="emobench"></p>\n'
    )

    def edited(name: str, data: dict, edit) -> None:
        edit(data)
        (folder / name).write_text(json.dumps(data))  # NaN and Infinity as Python reads them

    good = R.to_dict(make_report())
    for name, edit in (
        ("nan-latency.json", _latency(float("nan"))),
        ("inf-latency.json", _latency(float("inf"))),
        ("negative-latency.json", _latency(-0.222)),
        ("zero-latency.json", _latency(0)),
        ("zero-batch.json", lambda d: d["results"][0]["throughput"][0].update(batch_size=0)),
        ("string-ratios.json", lambda d: d.update(run_ratios={"vgg16/latency_b1_median_ms": "x"})),
        ("nan-config.json", lambda d: d["config"].update(min_time_s=float("nan"))),
    ):
        edited(name, json.loads(json.dumps(good)), edit)
    finetune = json.loads((REPORTS / "finetune-v1.json").read_text())
    edited(
        "ft-no-runs.json", json.loads(json.dumps(finetune)), lambda d: d["finetune"].update(runs=[])
    )
    edited(
        "ft-no-epochs.json",
        json.loads(json.dumps(finetune)),
        lambda d: d["finetune"]["runs"][0].update(epochs=[]),
    )
    runs = drifting_runs()[:3]
    for i, report in enumerate(runs, 1):
        R.save(report, folder / f"run{i}.json")
    stored = folder / "stored-baselines" / "stored"
    stored.mkdir(parents=True)
    R.save(runs[-1], stored / f"{machine_class(runs[-1])}.json")
    R.save(make_report(), folder / "report.png")  # a report, whatever its name
    (folder / "foreign.png").write_bytes(b"\x89PNG\r\n\x1a\nsomebody else's picture")
