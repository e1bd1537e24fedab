"""`export`: a fine-tune checkpoint written as a deployable ONNX file, its test split scored in
torch fp32, onnxruntime fp32 and (with --quantize int8) onnxruntime int8.

Every option, the checkpoint's kind, --data's kind and both outputs (--out and `<out>.json`)
are checked before torch is imported; that onnx and onnxruntime are installed next, then the
checkpoint's and the data's contents, before anything is exported or written.

An int8 file that fails the MLPerf rule is still written (with its report), but the command
then exits 1 with one `error:` line, unless --allow-unacceptable.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from emobench.cli import shell
from emobench.cli.options import JsonOpt, LabeledDataOpt, TestFractionOpt, ValFractionOpt
from emobench.cli.shell import clean_errors
from emobench.names import ORT_RUNTIME

if TYPE_CHECKING:
    from emobench.scenarios.export import ExportConfig

CheckpointArg = Annotated[
    Path,
    typer.Argument(
        help="A checkpoint `emobench finetune` wrote: <pipeline>-seed<N>-best.pt (or -last.pt)."
    ),
]
ExportRuntimeOpt = Annotated[
    str,
    typer.Option("--runtime", help=f"The runtime the file is for: {ORT_RUNTIME} (an ONNX file)."),
]
ExportQuantizeOpt = Annotated[
    str | None,
    typer.Option(
        "--quantize",
        help="int8: write the statically quantized file (calibrated on train-split images) and "
        "judge it on the test split: the MLPerf rule (int8 accuracy >= 99% of torch fp32's) "
        "and McNemar's test against onnxruntime fp32. A file failing the rule is still "
        "written, and the command exits 1.",
    ),
]
AllowUnacceptableOpt = Annotated[
    bool,
    typer.Option(
        "--allow-unacceptable",
        help="Exit 0 even when the int8 file fails the MLPerf 99% rule (it is written either way).",
    ),
]
ExportOutOpt = Annotated[
    Path,
    typer.Option(
        "--out",
        help="Where the ONNX file goes; its JSON report goes beside it as <out>.json. An "
        "existing file is refused (--force replaces one an earlier export wrote).",
    ),
]
ExportForceOpt = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Replace an existing --out and its .json, only when emobench export wrote them.",
    ),
]
SplitSeedOpt = Annotated[
    int | None,
    typer.Option(
        "--seed",
        help="The first seed of the finetune's --seed/--seeds, which drew its split when the "
        "data has none given (default: the checkpoint's seed, then the seeds below it: the "
        "first whose split is the checkpoint's data).",
    ),
]


@clean_errors
def export_cmd(
    checkpoint: CheckpointArg,
    data: LabeledDataOpt,
    out: ExportOutOpt,
    runtime: ExportRuntimeOpt = ORT_RUNTIME,
    quantize: ExportQuantizeOpt = None,
    seed: SplitSeedOpt = None,
    val_fraction: ValFractionOpt = 0.1,
    test_fraction: TestFractionOpt = 0.1,
    force: ExportForceOpt = False,
    allow_unacceptable: AllowUnacceptableOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Export a fine-tune checkpoint to ONNX and score its test split in each runtime.

    Example: emobench export results/finetune/run/direct48-seed0-best.pt --data fer2013.csv
    --runtime onnxruntime --quantize int8 --out direct48.int8.onnx
    """
    from emobench.scenarios.export import ExportConfig, check_inputs

    config = ExportConfig(
        checkpoint=checkpoint,
        data=data,
        out=out,
        runtime=runtime,
        quantize=quantize,
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        force=force,
    )
    check_inputs(config)  # no torch yet: a refusal is answered at once
    _export_and_show(config, json_out, allow_unacceptable)


def _export_and_show(config: ExportConfig, json_out: bool, allow_unacceptable: bool) -> None:
    """Import torch, export and score under a progress display, show the result; exit 1 when
    the int8 file written fails the MLPerf rule, unless allowed."""
    from emobench.device import cap_threads_to_usable_cores
    from emobench.errors import MeasurementError
    from emobench.render.console import stderr_console, stdout_console
    from emobench.render.export import render_export
    from emobench.render.progress import progress_display
    from emobench.results.export import to_json, unacceptable
    from emobench.scenarios.export import run_export

    cap_threads_to_usable_cores()
    with progress_display(stderr_console()) as progress:
        report = run_export(config, progress=progress)
    shell.written.extend([config.out, config.report])
    typer.echo(f"written {config.out} and {config.report} ({report.wall_time_s:.1f} s)", err=True)
    if json_out:
        sys.stdout.write(to_json(report))
    else:
        render_export(report, stdout_console())
    failing = unacceptable(report)
    if failing is not None and not allow_unacceptable:
        raise MeasurementError(failing)
