"""Reading results: `report`, `claims`, `models` and `env`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from emobench import files as fileio
from emobench.cli.options import (
    ClaimsReportFilesArg,
    CsvOpt,
    DeviceOpt,
    EnvJsonOpt,
    ForceOutputsOpt,
    HtmlOpt,
    MaxbatchReportsOpt,
    MobileBudgetOpt,
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
from emobench.render.console import stdout_console


@clean_errors
def report_cmd(
    files: ReportFilesToMergeArg,
    markdown: TableMarkdownOpt = None,
    csv_out: CsvOpt = None,
    plot: PlotOpt = None,
    html: HtmlOpt = None,
    force: ForceOutputsOpt = False,
) -> None:
    """Merge reports from several runs and machines into one side-by-side table.

    Reports of two or more machine classes also get their upscale224/direct48 ratios side by
    side, one column per class.

    With a finetune report among them, prints the speed/accuracy trade-off table instead
    (accuracy from the fine-tune; latency, throughput, memory, max batch from the others) and
    --plot draws accuracy against latency and time per epoch with the Pareto front.

    --html writes all of it as one self-contained page (styles and plots inline, nothing
    fetched): each run's settings and device limits, the comparison tables with their
    intervals, the write-up's claims with intervals and verdicts, the plots, and for reports of
    several machine classes their ratios side by side.

    An output replaces an existing file only when emobench wrote it (or with --force), and is
    never one of the reports read.

    \b
    Example:
      emobench report results/*.json --csv all.csv --plot curves.png --html report.html
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
        (html, "--html", "html"),
    )
    fileio.check_outputs(outputs, force=force, inputs=files)
    if readout.has_finetune(files):  # the speed/accuracy trade-off table
        _tradeoff_report(files, markdown, csv_out, plot)
        if html is not None:
            _html_report(readout.load_any_reports(files), html, finetune=True)
        return
    family = readout.check_reports(files)  # every header, before anything is written
    if plot is not None and family == "maxbatch":
        raise UsageError("--plot draws compare/run reports; maxbatch reports have no curves")
    loaded = readout.load_reports(files)
    _merged_report(loaded, family, markdown, csv_out, plot)
    if html is not None:
        _html_report(loaded, html, finetune=False)


def _html_report(loaded: list[Any], page: Path, finetune: bool) -> None:
    """`report --html`: the page of render.html, with the claims (readout.claims) and the
    plots (render.plot, where matplotlib is installed) inline."""
    import importlib.util
    from datetime import UTC, datetime

    from emobench.names import TIMING_KINDS
    from emobench.readout.claims import evaluate_reports
    from emobench.render.html import Plot, report_page

    tradeoff = None
    if finetune:
        from emobench.readout.tradeoff import build_tradeoff

        tradeoff = build_tradeoff(loaded)
    plots: list[Plot] = []
    timing = [(p, r) for p, r in loaded if r.kind in TIMING_KINDS]
    if importlib.util.find_spec("matplotlib") is None:
        plots.append(Plot("plots", None, "not drawn: matplotlib is not installed"))
    else:
        from emobench.render.plot import reports_png, tradeoff_png

        if tradeoff is not None:
            title = "test accuracy against batch-1 latency and time per epoch (Pareto front)"
            plots.append(Plot(title, tradeoff_png(tradeoff)))
        if timing:
            title = (
                "latency and throughput by batch size; upscale224 / direct48 ratios by machine "
                "class with their 95% intervals and the write-up's claims (dashed)"
            )
            plots.append(Plot(title, reports_png(timing)))
    text = report_page(
        loaded,
        claims=evaluate_reports(loaded),
        plots=plots,
        tradeoff=tradeoff,
        generated_utc=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )
    write_text(page, text)
    typer.echo(f"html written to {page}", err=True)


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
    report_files: ClaimsReportFilesArg,
    maxbatch_reports: MaxbatchReportsOpt = None,
    mobile_budget: MobileBudgetOpt = None,
    markdown: TableMarkdownOpt = None,
    force: ForceOutputsOpt = False,
) -> None:
    """Check every claim of the original write-up against reports, with intervals.

    The table's five claims (22x memory, 8.6x preprocessing, 29x parameters, 16x inference,
    22x batches), "8-16x faster processing and inference", and from finetune reports "training
    5-10x faster per epoch" and the accuracy trade-off. Each claim gets one row per backbone and
    machine class: the measured ratio, its 95% interval and a verdict read from the interval
    against the threshold (claimed x 0.9): holds (all of it at or above), does not hold (all of
    it below) or inconclusive (it straddles; the row says what would settle it). Reports of one
    machine class pool as runs; across classes a summary line per claim.

    \b
    Example:
      emobench claims results/vgg16-cpu.json results/vgg16-gpu.json --maxbatch results/mb.json
    """
    from emobench import results as report_mod
    from emobench.readout.claims import parse_mobile_budgets

    budgets = parse_mobile_budgets(mobile_budget or [])
    inputs = [*report_files, *(maxbatch_reports or [])]
    fileio.check_outputs([(markdown, "--markdown", "markdown")], force=force, inputs=inputs)
    kinds = [report_mod.load_header(path)[0] for path in report_files]
    if all(kind == "maxbatch" for kind in kinds):
        raise UsageError(
            f"{report_files[0]}: a maxbatch report; claims need a compare or run report (or a "
            "finetune report for the training and accuracy claims, a stream report for "
            "real-time ready), maxbatch reports beside it"
        )
    for path in maxbatch_reports or []:
        other, _data = report_mod.load_header(path)
        if other != "maxbatch":
            raise UsageError(f"{path}: --maxbatch needs a maxbatch report, got {other}")
    from emobench.readout.claims import evaluate_reports
    from emobench.render.readout import (
        claims_markdown,
        claims_summary_lines,
        claims_table,
        claims_why_lines,
    )

    claims = evaluate_reports([(path, report_mod.load(path)) for path in inputs], budgets)
    console = stdout_console()
    console.print(claims_table(claims))
    summary = claims_summary_lines(claims)
    for line in [*claims_why_lines(claims), *([""] if summary else []), *summary]:
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    if markdown is not None:
        write_text(markdown, claims_markdown(claims))


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
