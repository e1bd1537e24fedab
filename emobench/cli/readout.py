"""Reading results: `report`, `claims`, `models` and `env`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from emobench import files as fileio
from emobench.cli.options import (
    ClaimsReportFileArg,
    CsvOpt,
    DeviceOpt,
    EnvJsonOpt,
    ForceOutputsOpt,
    MaxbatchReportsOpt,
    ModelOpt,
    ModelsJsonOpt,
    PlotOpt,
    ReportFilesToMergeArg,
    TableMarkdownOpt,
    check_model_refs,
)
from emobench.cli.shell import (
    clean_errors,
    write_text,
    written,
)
from emobench.errors import UsageError
from emobench.names import TIMING_KINDS
from emobench.render.console import stdout_console


@clean_errors
def report_cmd(
    files: ReportFilesToMergeArg,
    markdown: TableMarkdownOpt = None,
    csv_out: CsvOpt = None,
    plot: PlotOpt = None,
    force: ForceOutputsOpt = False,
) -> None:
    """Merge reports from several runs and machines into one side-by-side table.

    Reports of two or more machine classes also get their upscale224/direct48 ratios side by
    side, one column per class.

    With a finetune report among them, prints the speed/accuracy trade-off table instead
    (accuracy from the fine-tune; latency, throughput, memory, max batch from the others) and
    --plot draws accuracy against latency and time per epoch with the Pareto front.

    An output replaces an existing file only when emobench wrote it (or with --force), and is
    never one of the reports read.

    \b
    Example:
      emobench report results/*.json --csv all.csv --plot curves.png
    """
    from emobench.readout import merge as readout

    if plot is not None:
        from emobench.render.plot import check_plot_path, require_matplotlib

        check_plot_path(plot)
        require_matplotlib()
    outputs = (
        (markdown, "--markdown", "markdown"),
        (csv_out, "--csv", "csv"),
        (plot, "--plot", "plot"),
    )
    fileio.check_outputs(outputs, force=force, inputs=files)
    if readout.has_finetune(files):  # the speed/accuracy trade-off table
        _tradeoff_report(files, markdown, csv_out, plot)
        return
    family = readout.check_reports(files)  # every header, before anything is written
    if plot is not None and family == "maxbatch":
        raise UsageError("--plot draws compare/run reports; maxbatch reports have no curves")
    _merged_report(readout.load_reports(files), family, markdown, csv_out, plot)


def _merged_report(
    loaded: list[Any], family: str, markdown: Path | None, csv_out: Path | None, plot: Path | None
) -> None:
    """`emobench report` without a finetune report: the merged table (and the ratios per
    machine class when there are two or more), Markdown, CSV, plot."""
    from emobench.readout import merge as readout
    from emobench.render.readout import (
        class_ratio_markdown,
        class_ratio_table,
        merged_markdown,
        merged_table,
    )

    rows = readout.merged_rows(loaded)
    columns = readout.MAXBATCH_COLUMNS if family == "maxbatch" else readout.TIMING_COLUMNS
    ratios = readout.class_ratios(loaded)  # None unless two or more machine classes
    stdout_console().print(merged_table(rows, columns))
    if ratios is not None:
        stdout_console().print(class_ratio_table(ratios))
    if markdown is not None:
        text = merged_markdown(rows, columns)
        if ratios is not None:
            text += "\n" + class_ratio_markdown(ratios)
        write_text(markdown, text)
        typer.echo(f"markdown written to {markdown}", err=True)
    if csv_out is not None:
        write_text(csv_out, readout.to_csv(readout.flat_rows(loaded)))
        typer.echo(f"csv written to {csv_out}", err=True)
    if plot is not None:
        from emobench.render.plot import plot_reports

        plot_reports(loaded, plot)
        written.append(plot)
        typer.echo(f"plot written to {plot}", err=True)


def _tradeoff_report(
    files: list[Path], markdown: Path | None, csv_out: Path | None, plot: Path | None
) -> None:
    """`emobench report` with a finetune report: the trade-off table, Markdown, CSV, plot."""
    from emobench.readout import merge as readout
    from emobench.readout.tradeoff import build_tradeoff
    from emobench.render.readout import tradeoff_lines, tradeoff_markdown, tradeoff_table

    loaded = readout.load_any_reports(files)
    tradeoff = build_tradeoff(loaded)
    console = stdout_console()
    console.print(tradeoff_table(tradeoff))
    for line in tradeoff_lines(tradeoff):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    if markdown is not None:
        write_text(markdown, tradeoff_markdown(tradeoff))
        typer.echo(f"markdown written to {markdown}", err=True)
    if csv_out is not None:
        write_text(csv_out, readout.to_csv(readout.tradeoff_csv_rows(tradeoff)))
        typer.echo(f"csv written to {csv_out}", err=True)
    if plot is not None:
        from emobench.render.plot import plot_tradeoff

        plot_tradeoff(tradeoff, plot)
        written.append(plot)
        typer.echo(f"plot written to {plot}", err=True)


@clean_errors
def claims_cmd(
    report_file: ClaimsReportFileArg,
    maxbatch_reports: MaxbatchReportsOpt = None,
    markdown: TableMarkdownOpt = None,
    force: ForceOutputsOpt = False,
) -> None:
    """Check the original write-up's claims (22x memory, 8.6x, 29x, 16x, 22x) against a report.

    \b
    Example:
      emobench claims results/vgg16-cpu.json --maxbatch results/maxbatch-infer.json
    """
    from emobench import results as report_mod

    inputs = [report_file, *(maxbatch_reports or [])]
    fileio.check_outputs([(markdown, "--markdown", "markdown")], force=force, inputs=inputs)
    kind, _data = report_mod.load_header(report_file)
    if kind not in (*TIMING_KINDS, "finetune"):
        raise UsageError(
            f"{report_file}: a {kind} report; claims need a compare or run report "
            "(or a finetune report for the training claim)"
        )
    for path in maxbatch_reports or []:
        other, _data = report_mod.load_header(path)
        if other != "maxbatch":
            raise UsageError(f"{path}: --maxbatch needs a maxbatch report, got {other}")
    from emobench.readout.claims import evaluate
    from emobench.render.readout import claims_markdown, claims_table

    timing = report_mod.load(report_file)
    extra = [report_mod.load(path) for path in maxbatch_reports or []]
    if timing.kind == "finetune":  # the training-speed claim
        from emobench.readout.claims import evaluate_training

        verdicts = evaluate_training(timing)
    else:
        verdicts = evaluate(timing, extra)
    stdout_console().print(claims_table(verdicts))
    if markdown is not None:
        write_text(markdown, claims_markdown(verdicts))


@clean_errors
def models_cmd(
    model: ModelOpt = None,
    json_out: ModelsJsonOpt = False,
) -> None:
    """List every backbone (registered, installed plugins, --model): parameters, FLOPs per image
    and final feature map of both pipelines, built on the meta device.

    \b
    Example:
      emobench models --json
    """
    import dataclasses
    import json

    from emobench.render.readout import models_table
    from emobench.scenarios.catalogue import model_catalogue

    infos = model_catalogue(tuple(check_model_refs(model)))
    if json_out:
        sys.stdout.write(json.dumps([dataclasses.asdict(i) for i in infos], indent=2) + "\n")
    else:
        stdout_console().print(models_table(infos))


@clean_errors
def env_cmd(
    device: DeviceOpt = "auto",
    json_out: EnvJsonOpt = False,
) -> None:
    """Print the environment fingerprint that reports record (torch, CUDA, GPU, CPU, threads).

    \b
    Example:
      emobench env --device cuda --json
    """
    import json

    from emobench.device import parse_device_spec, resolve_device

    parse_device_spec(device)  # a misspelt device fails before torch is imported
    from emobench.measure.env import fingerprint
    from emobench.render.readout import env_class_line, env_table

    env = fingerprint(resolve_device(device))
    if json_out:
        sys.stdout.write(json.dumps(env, indent=2) + "\n")
    else:
        console = stdout_console()
        console.print(env_table(env))
        console.print(env_class_line(env), markup=False, highlight=False, soft_wrap=True)
