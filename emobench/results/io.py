"""Reports as versioned JSON: written atomically, read back with the header checked first and
every field's type checked on the way in. No torch: every result type is a plain dataclass."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any

from emobench import files
from emobench.errors import ReportError
from emobench.results.metrics import metric_rows
from emobench.results.schema import (
    KINDS,
    MAX_REPORT_BYTES,
    MIN_SCHEMA_VERSION,
    SCHEMA,
    SCHEMA_VERSION,
    Report,
)


def to_dict(report: Report) -> dict[str, Any]:
    data = dataclasses.asdict(report)
    data["metrics"] = [dataclasses.asdict(row) for row in metric_rows(report)]
    return data


def to_json(report: Report) -> str:
    return json.dumps(to_dict(report), indent=2, allow_nan=False) + "\n"


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder and rename (see files.write_atomic)."""
    files.write_atomic(path, text)


def save(report: Report, path: Path) -> None:
    try:
        write_atomic(path, to_json(report))
    except OSError as exc:
        raise ReportError(f"{path}: cannot write report ({exc.strerror or exc})") from None


def check_header(data: Any, source: str = "report") -> str:
    """The checks that need no rebuilding (and no torch): a JSON object of our schema, a
    version this emobench reads, a known kind and at least one result. Returns the kind."""
    if not isinstance(data, dict):
        raise ReportError(f"{source}: not an emobench report (expected a JSON object)")
    if data.get("schema") != SCHEMA:
        raise ReportError(f"{source}: not an emobench report (schema is {data.get('schema')!r})")
    version = data.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ReportError(f"{source}: report has no integer schema_version")
    if version > SCHEMA_VERSION:
        raise ReportError(
            f"{source}: report schema version {version} is newer than this emobench "
            f"understands ({SCHEMA_VERSION}); upgrade emobench"
        )
    if version < MIN_SCHEMA_VERSION:
        raise ReportError(
            f"{source}: report schema version {version} is not one this emobench reads "
            f"({MIN_SCHEMA_VERSION} to {SCHEMA_VERSION})"
        )
    kind = data.get("kind")
    if kind not in KINDS:
        raise ReportError(
            f"{source}: unknown report kind {kind!r}; expected one of: {', '.join(KINDS)}"
        )
    if kind == "finetune":
        if not isinstance(data.get("finetune"), dict):
            raise ReportError(f"{source}: a finetune report with no finetune results")
        return str(kind)
    key = "maxbatch" if kind == "maxbatch" else "results"
    entries = data.get(key)
    if not isinstance(entries, list) or not entries:
        raise ReportError(f"{source}: a {kind} report with no {key}: nothing was measured")
    return str(kind)


def from_dict(data: Any, source: str = "report") -> Report:
    check_header(data, source)
    try:
        return _build(Report, {k: v for k, v in data.items() if k != "metrics"})
    except (TypeError, ValueError, KeyError) as exc:
        raise ReportError(f"{source}: malformed report ({exc})") from None
    except RecursionError:
        raise ReportError(f"{source}: malformed report (nested too deeply)") from None


def read_json(path: Path) -> Any:
    """A report file's JSON, from a regular file of at most MAX_REPORT_BYTES."""
    text = files.read_text(path, ReportError, "report file", MAX_REPORT_BYTES)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path}: not valid JSON ({exc})") from None
    except RecursionError:
        raise ReportError(f"{path}: not a report (JSON nested too deeply)") from None


def load_header(path: Path) -> tuple[str, Any]:
    """Read and check a report file without rebuilding it: (kind, JSON data)."""
    data = read_json(path)
    return check_header(data, str(path)), data


def load(path: Path) -> Report:
    return from_dict(read_json(path), str(path))


def _build(tp: Any, value: Any) -> Any:
    """Rebuild a (nested) dataclass value from JSON data, checking the types on the way."""
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _build(inner[0], value)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, dict):
            raise TypeError(f"{tp.__name__} must be an object, got {type(value).__name__}")
        hints = typing.get_type_hints(tp)
        kwargs = {}
        for f in dataclasses.fields(tp):
            if f.name in value:
                kwargs[f.name] = _build(hints[f.name], value[f.name])
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise KeyError(f"{tp.__name__}.{f.name} is missing")
        return tp(**kwargs)
    if origin is list:
        if not isinstance(value, list):
            raise TypeError(f"expected a list, got {type(value).__name__}")
        (item,) = typing.get_args(tp)
        return [_build(item, v) for v in value]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise TypeError(f"expected an object, got {type(value).__name__}")
        return dict(value)
    if tp is Any:
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"expected a number, got {value!r}")
        return float(value)
    if tp is int or tp is bool or tp is str:
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            raise TypeError(f"expected {tp.__name__}, got {value!r}")
        return value
    raise TypeError(f"unsupported type {tp!r}")
