"""What `emobench export` records: plain dataclasses (no torch) written as a small versioned JSON
file beside the exported model (`<out>.json`), the MLPerf rule that judges an int8 file, and how
a file at --out is recognised as one `export` wrote (so --force replaces only our own files).

The int8 file is judged twice on the same test images, against two references: the MLPerf rule
against torch fp32 (MLPerf's reference is the framework's fp32 model), and McNemar's exact test
against onnxruntime fp32 (the same runtime and file format, so the two differ only by
quantization).

The report is its own schema ("emobench.export"), not a `Report` kind: it describes one file,
not a benchmark run, and gate/readout never read it.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from emobench import files
from emobench.errors import EmobenchError, ReportError
from emobench.results.measurements import Parity

SCHEMA = "emobench.export"
SCHEMA_VERSION = 1
MAX_EXPORT_REPORT_BYTES = 64 * 2**20  # test predictions of a FER-sized split are ~100 KB
# MLPerf's closed-division rule for a quantized model: at least 99% of the accuracy of the
# framework's fp32 model (here torch fp32), decided on counts: int8 x 100 >= fp32 x MLPERF_PERCENT
MLPERF_PERCENT = 99
MLPERF_FRACTION = MLPERF_PERCENT / 100
MLPERF_RULE = "MLPerf: int8 accuracy >= 99% of the framework's fp32 accuracy (torch fp32)"
# The metadata_props key every ONNX file `export` writes carries (ModelProto field 14)
ONNX_MARK = "emobench"
ONNX_METADATA_FIELD = 14
ONNX_MAX_FIELDS = 100_000  # top-level fields walked before giving up (a real model has < 100)
ONNX_MAX_ENTRY_BYTES = 2**20


@dataclass(frozen=True)
class ExportedFile:
    """One ONNX file the export made (in its private folder; one of them is moved to --out)."""

    precision: str  # "fp32" or "int8"
    exporter: str  # "dynamo" or "torchscript"
    opset: int
    file_bytes: int  # the file with its emobench metadata, as written
    parity: Parity  # its logits against torch fp32 on the probe batch (int8: compared only)
    quantization: dict[str, Any] | None = None  # method, calibration images and their source


@dataclass(frozen=True)
class VariantScore:
    """One way of running the checkpoint, scored on its test split."""

    label: str  # "torch fp32", "onnxruntime fp32", "onnxruntime int8"
    runtime: str
    precision: str
    images: int
    correct: int
    accuracy: float
    macro_f1: float
    # the fraction of test images it classifies as torch fp32 does; None for torch fp32 itself
    agreement_with_torch: float | None
    predictions: list[int]


@dataclass(frozen=True)
class Int8Check:
    """The int8 file on the test images: the MLPerf rule against `reference` (torch fp32), and
    McNemar's exact test against `mcnemar_reference` (onnxruntime fp32: only quantization
    differs)."""

    reference: str  # the MLPerf rule's fp32 variant: "torch fp32"
    images: int
    fp32_correct: int  # the reference's right answers
    int8_correct: int
    # the fewest right int8 answers the rule accepts; None when the reference got none right
    needed_correct: int | None
    fp32_accuracy: float
    int8_accuracy: float
    accuracy_ratio: float | None  # int8 / fp32 accuracy; None when fp32 classified nothing right
    threshold: float  # MLPERF_FRACTION
    acceptable: bool | None  # the MLPerf rule; None: cannot be decided (fp32 got nothing right)
    mcnemar_reference: str  # the variant McNemar's test compares with: "onnxruntime fp32"
    only_fp32_right: int  # discordant pairs against mcnemar_reference
    only_int8_right: int
    mcnemar_p: float  # two-sided exact McNemar (binomial) test
    rule: str = MLPERF_RULE


@dataclass(frozen=True)
class ExportReport:
    """What one `emobench export` did: the checkpoint and data it read, the files it made,
    the test split's scores in each runtime, and the int8 verdict."""

    created_utc: str
    wall_time_s: float
    out: str  # the deployable file as given by --out
    out_precision: str  # which of `files` it is
    out_file_bytes: int  # the file renamed to --out
    out_sha256: str  # ditto: what a deployment can check its copy against
    checkpoint: dict[str, Any]  # path, sha256, kind, epoch, backbone, pipeline, recipe, seed, ...
    data: dict[str, Any]  # path, sha256, classes, splits, the scored split, calibration
    settings: dict[str, Any]  # onnxruntime's settings in force (threads, providers, ...)
    inside_graph: str
    metadata: dict[str, str]  # the ONNX metadata_props the files carry
    versions: dict[str, str]  # torch, onnx, onnxruntime, emobench
    test_labels: list[int]
    files: list[ExportedFile]
    scores: list[VariantScore]
    int8: Int8Check | None
    notes: list[str]

    def score(self, label: str) -> VariantScore:
        return next(s for s in self.scores if s.label == label)

    def file(self, precision: str) -> ExportedFile:
        return next(f for f in self.files if f.precision == precision)


def mlperf_needed(fp32_correct: int) -> int | None:
    """The fewest right int8 answers the MLPerf rule accepts against `fp32_correct` right fp32
    answers on the same images (99%, rounded up: exact, no float), or None when fp32 got none
    right: 99% of nothing accepts any int8 file, so the rule decides nothing."""
    if fp32_correct <= 0:
        return None
    return -(-fp32_correct * MLPERF_PERCENT // 100)


def mlperf_acceptable(int8_correct: int, fp32_correct: int) -> bool | None:
    """int8 accuracy >= 99% of fp32's on the same images, decided on the counts; None (cannot
    be decided) when fp32 got none right."""
    needed = mlperf_needed(fp32_correct)
    return None if needed is None else int8_correct >= needed


def floor_percent(numerator: int, denominator: int) -> str:
    """numerator / denominator as a percentage floored to one decimal ("98.9%" for 1979/2000,
    never rounded up to 99.0%), from the integers; "n/a" for a zero denominator."""
    if denominator <= 0:
        return "n/a"
    tenths = numerator * 1000 // denominator
    return f"{tenths // 10}.{tenths % 10}%"


def unacceptable(report: ExportReport) -> str | None:
    """The error line for a written int8 file that fails the MLPerf rule; None when there is
    no int8 file, it passes, or the rule cannot decide."""
    check = report.int8
    if check is None or check.acceptable is not False:
        return None
    return (
        f"the int8 file {report.out} fails the MLPerf rule: {check.int8_correct}/{check.images} "
        f"right, needed >= {check.needed_correct} (99% of {check.reference}'s "
        f"{check.fp32_correct}); it is written, but deploy the fp32 file (export without "
        "--quantize), or pass --allow-unacceptable to accept it"
    )


def report_path(out: Path) -> Path:
    """Where the JSON report of an export to `out` goes: `<out>.json`."""
    return out.with_name(out.name + ".json")


def to_dict(report: ExportReport) -> dict[str, Any]:
    return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION} | dataclasses.asdict(report)


def to_json(report: ExportReport) -> str:
    return json.dumps(to_dict(report), indent=2, allow_nan=False) + "\n"


def from_dict(data: Any, source: str = "export report") -> ExportReport:
    """An export report from its JSON: the header first, then every field's type."""
    from emobench.results.io import _build

    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ReportError(f"{source}: not an emobench export report")
    version = data.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version != SCHEMA_VERSION:
        raise ReportError(
            f"{source}: export report schema version {version!r}; this emobench reads "
            f"{SCHEMA_VERSION}"
        )
    body = {k: v for k, v in data.items() if k not in ("schema", "schema_version")}
    try:
        report: ExportReport = _build(ExportReport, body)
    except (TypeError, ValueError, KeyError, OverflowError, RecursionError) as exc:
        raise ReportError(f"{source}: malformed export report ({exc})") from None
    return report


def load(path: Path) -> ExportReport:
    text = files.read_text(path, ReportError, "export report", MAX_EXPORT_REPORT_BYTES)
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ReportError(f"{path}: not valid JSON ({exc})") from None
    return from_dict(data, str(path))


def is_export_report(path: Path) -> bool:
    """Whether the regular file at `path` is a JSON object of schema "emobench.export"."""
    try:
        text = files.read_text(path, EmobenchError, "export report", MAX_EXPORT_REPORT_BYTES)
        data = json.loads(text)
    except (EmobenchError, ValueError, RecursionError):
        return False
    return isinstance(data, dict) and data.get("schema") == SCHEMA


# -- recognising our ONNX files without onnx: the protobuf's top-level fields -------------------


def _varint(fh: BinaryIO) -> int | None:
    """A protobuf varint; None at the end of the data."""
    value = 0
    for shift in range(0, 70, 7):
        byte = fh.read(1)
        if not byte:
            return None if shift == 0 else _bad("a varint cut short")
        value |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return value
    return _bad("a varint longer than 10 bytes")


def _bad(what: str) -> int:
    raise ValueError(what)


def _fields(fh: BinaryIO, size: int, limit: int) -> Any:
    """(field number, payload) of each top-level field: bytes for a length-delimited field
    of at most ONNX_MAX_ENTRY_BYTES, None for every other (skipped, not read)."""
    for _ in range(limit):
        tag = _varint(fh)
        if tag is None:
            return
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            _varint(fh)
            yield number, None
        elif wire in (1, 5):
            fh.seek(8 if wire == 1 else 4, os.SEEK_CUR)
            yield number, None
        elif wire == 2:
            length = _varint(fh)
            if length is None or fh.tell() + length > size:
                raise ValueError("a field longer than the file")
            if length <= ONNX_MAX_ENTRY_BYTES:
                yield number, fh.read(length)
            else:
                fh.seek(length, os.SEEK_CUR)
                yield number, None
        else:
            raise ValueError(f"wire type {wire}")


def _varint_bytes(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _length_delimited(number: int, payload: bytes) -> bytes:
    return _varint_bytes(number << 3 | 2) + _varint_bytes(len(payload)) + payload


def metadata_bytes(props: dict[str, str]) -> bytes:
    """`props` as ModelProto metadata_props entries, serialised. Appended to a serialised
    model they add to its metadata_props (a protobuf parser merges a repeated field found at
    the end), so a file is marked without loading it, or importing onnx."""
    return b"".join(
        _length_delimited(
            ONNX_METADATA_FIELD,
            _length_delimited(1, key.encode()) + _length_delimited(2, value.encode()),
        )
        for key, value in props.items()
    )


def onnx_is_ours(path: Path) -> bool:
    """Whether the regular file at `path` is an ONNX model whose metadata_props hold the key
    ONNX_MARK, as `export` writes it. Reads the protobuf's top-level fields (skipping the
    graph by seeking), so a large or foreign file costs next to nothing and nothing is
    imported; anything that is not such a protobuf is not ours."""
    try:
        with files.open_regular(path, EmobenchError) as fh:
            size = os.fstat(fh.fileno()).st_size
            for number, payload in _fields(fh, size, ONNX_MAX_FIELDS):
                if number != ONNX_METADATA_FIELD or payload is None:
                    continue
                entry = io.BytesIO(payload)
                for key_number, key in _fields(entry, len(payload), 16):
                    if key_number == 1 and key == ONNX_MARK.encode():
                        return True
    except (EmobenchError, OSError, ValueError):
        return False
    return False
