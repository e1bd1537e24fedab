"""Every option that more than one command takes, declared once, and the option parsing
they share (backbone names, --model references). Torch-free."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from emobench.errors import UsageError

DeviceOpt = Annotated[
    str, typer.Option("--device", help="auto, cpu, cuda or cuda:N (auto = cuda:0 when present).")
]


OutOpt = Annotated[
    Path | None,
    typer.Option(
        "--out",
        help="Report path (default: results/<UTC time>-<backbone>-<device>-<6 hex>.json). "
        "An existing file is replaced only when it is an emobench report (or with --force).",
    ),
]


JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print the JSON report to stdout instead of the table.")
]


ForceOpt = Annotated[
    bool,
    typer.Option("--force", help="Overwrite an existing --out file that is not a report."),
]


DEFAULT_BACKBONE = "vgg16"


ModelOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--model",
        help="Your own backbone as module:function (imported from the current folder or "
        "PYTHONPATH); function(pipeline, num_classes=7) returns the nn.Module. Repeatable.",
    ),
]


def check_model_refs(refs: list[str] | None) -> list[str]:
    """--model values: module:function syntax and a findable module, without importing torch."""
    import importlib.util
    import re

    out = []
    for ref in refs or []:
        module, sep, function = ref.partition(":")
        if (
            not sep
            or not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", module)
            or not (function.isidentifier())
        ):
            raise UsageError(f"--model {ref!r}: expected module:function, e.g. mymodels:build")
        if str(Path.cwd()) not in sys.path and "" not in sys.path:
            sys.path.append(str(Path.cwd()))
        try:
            found = importlib.util.find_spec(module)
        except ImportError as exc:
            raise UsageError(f"--model {ref}: {exc}") from None
        if found is None:
            raise UsageError(
                f"--model {ref}: no module named {module!r} in the current folder ({Path.cwd()}) "
                "or on PYTHONPATH"
            )
        out.append(ref)
    return out


def backbone_names(backbones: list[str] | None, models: list[str] | None) -> tuple[str, ...]:
    """--backbone (repeatable, `all` = every registered one) then --model; vgg16 if neither."""
    refs = check_model_refs(models)
    names = list(backbones or ([] if refs else [DEFAULT_BACKBONE]))
    if "all" in names:
        from emobench.models import expand_backbones

        return expand_backbones([*names, *refs])
    return tuple(dict.fromkeys([*names, *refs]))


def file_label(names: tuple[str, ...]) -> str:
    """A report file name's backbone part: one name, or how many; no ':' from a plugin."""
    label = names[0] if len(names) == 1 else f"{len(names)}backbones"
    return label.replace(":", "-").replace(".", "-")


def _positive_repeat(value: int) -> int:
    if value < 1:
        raise typer.BadParameter(f"must be >= 1, got {value}")
    return value


RepeatOpt = Annotated[
    int,
    typer.Option(
        "--repeat",
        help="Run the suite N times: the report keeps every run's ratios and the check compares "
        "their geometric mean with the baseline runs' (the run, not the sample, is the unit of "
        "noise; the N runs share the machine's state, so they damp one disturbed run but do not "
        "tighten the threshold).",
        callback=_positive_repeat,
    ),
]


BaselineDirOpt = Annotated[
    Path,
    typer.Option("--dir", help="Folder that holds the baselines, one subfolder per name."),
]


RuleOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--rule",
        help="METRIC:THRESHOLD, e.g. latency_b1_median_ms:15% or portable:30%. Repeatable.",
    ),
]


MarkdownOpt = Annotated[
    Path | None, typer.Option("--markdown", help="Also write the verdict table as Markdown.")
]


FailOnOpt = Annotated[
    str,
    typer.Option(
        "--fail-on",
        help="Comma-separated kinds whose failures set exit 1: exact, portable, machine, "
        "invariant.",
    ),
]


BaselineOpt = Annotated[
    str,
    typer.Option(
        "--baseline",
        help="A baseline name (ci), a folder of per-class baselines (results/baselines/ci), "
        "or one baseline file. A name or folder gives the file of the report's machine class.",
    ),
]


CandidateOpt = Annotated[
    Path | None,
    typer.Option(
        "--candidate-out",
        help="Where to write the report as its class's candidate baseline when no baseline of "
        "that class exists (default: results/baseline-candidate-<class>.json).",
    ),
]


DEFAULT_FAIL_ON = "exact,portable,machine,invariant"


THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
