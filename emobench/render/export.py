"""`export`'s answer on the terminal: the test split's scores per runtime, the int8 verdict, the
files written."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from emobench.render.format import ABSENT, fmt_value
from emobench.results.export import ExportReport, report_path


def export_table(report: ExportReport) -> Table:
    ck = report.checkpoint
    table = Table(
        title=f"{ck.get('backbone')} {ck.get('pipeline')}: test split "
        f"({report.data.get('score_split')}, {report.data.get('test_images')} images)"
    )
    for col in ("variant", "file", "accuracy", "macro-F1", "agreement with torch"):
        table.add_column(col, justify="left" if col == "variant" else "right")
    sizes = {f.precision: f.file_bytes for f in report.files}
    for s in report.scores:
        size = sizes.get(s.precision) if s.runtime != "torch" else None
        agreement = (
            "reference" if s.agreement_with_torch is None else f"{s.agreement_with_torch:.1%}"
        )
        table.add_row(
            s.label,
            fmt_value(size, "bytes") if size is not None else ABSENT,
            f"{s.accuracy:.1%} ({s.correct}/{s.images})",
            f"{s.macro_f1:.3f}",
            agreement,
        )
    return table


def int8_lines(report: ExportReport) -> list[str]:
    """McNemar's test and the MLPerf verdict, as sentences."""
    check = report.int8
    if check is None:
        return []
    ratio = ABSENT if check.accuracy_ratio is None else f"{check.accuracy_ratio:.1%}"
    return [
        f"int8 vs fp32 ({check.reference}), McNemar exact test on the same images: p = "
        f"{check.mcnemar_p:.3g} ({check.only_fp32_right} right only in fp32, "
        f"{check.only_int8_right} right only in int8)",
        f"int8 acceptable: {'yes' if check.acceptable else 'no'} ({check.rule}: int8 "
        f"{check.int8_accuracy:.1%} is {ratio} of fp32 {check.fp32_accuracy:.1%}, needed "
        f"{check.threshold:.0%})",
    ]


def render_export(report: ExportReport, console: Console) -> None:
    def line(text: str) -> None:
        console.print(text, markup=False, highlight=False, soft_wrap=True)

    console.print(export_table(report))
    for text in int8_lines(report):
        line(text)
    calibration = report.data.get("calibration")
    if isinstance(calibration, dict):
        line(f"int8 calibration: {calibration.get('source')}")
    parity = report.file("fp32").parity
    line(
        f"fp32 parity with torch on {parity.batch_size} test images: max |logit difference| "
        f"{parity.max_abs_diff:.3g}, top-1 agreement {parity.top1_agreement:.0%}"
    )
    out = report.out
    line(
        f"written: {out} ({report.out_precision}, {fmt_value(report.out_file_bytes, 'bytes')}) "
        f"and its report {report_path_of(out)}"
    )
    if report.int8 is not None and not report.int8.acceptable:
        line("the int8 file fails the MLPerf rule: export without --quantize for the fp32 file")
    for note in report.notes:
        line(f"note: {note}")


def report_path_of(out: str) -> str:
    return str(report_path(Path(out)))
