"""`export`'s answer on the terminal: the test split's scores per runtime, the int8 verdict, the
files written."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from emobench.render.format import ABSENT, fmt_value
from emobench.results.export import ExportReport, floor_percent, report_path


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
    """The MLPerf verdict (against torch fp32) and McNemar's test (against onnxruntime fp32),
    as sentences: counts, and a ratio floored, so a failing one never reads as 99.0%."""
    check = report.int8
    if check is None:
        return []
    counts = f"int8 {check.int8_correct}/{check.images} right"
    if check.acceptable is None or check.needed_correct is None:
        verdict = (
            f"int8 acceptable: cannot be decided ({check.rule}): {check.reference} got none of "
            f"the {check.images} test images right, so the rule has nothing to hold int8 to "
            f"({counts})"
        )
    else:
        ratio = floor_percent(check.int8_correct, check.fp32_correct)
        verdict = (
            f"int8 acceptable: {'yes' if check.acceptable else 'no'} ({check.rule}): {counts} "
            f"vs needed >= {check.needed_correct} ({check.threshold:.0%} of {check.reference}'s "
            f"{check.fp32_correct}); {ratio} of {check.reference}'s accuracy"
        )
    return [
        verdict,
        f"int8 vs {check.mcnemar_reference} (the same runtime: this isolates quantization), "
        f"McNemar exact test on the same {check.images} images: p = {check.mcnemar_p:.3g} "
        f"({check.only_fp32_right} right only in fp32, {check.only_int8_right} right only in "
        "int8)",
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
        f"written: {out} ({report.out_precision}, {fmt_value(report.out_file_bytes, 'bytes')}, "
        f"sha256 {report.out_sha256}) and its report {report_path_of(out)}"
    )
    if report.int8 is not None and report.int8.acceptable is False:
        line("the int8 file fails the MLPerf rule: export without --quantize for the fp32 file")
    for note in report.notes:
        line(f"note: {note}")


def report_path_of(out: str) -> str:
    return str(report_path(Path(out)))
