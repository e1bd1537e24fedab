"""Careful file I/O for every input and output: regular files only, bounded reads, atomic writes
that honour the umask, and no silent clobbering of files that are not ours.

Torch-free and typer-free, so the CLI can check paths before any heavy import.
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
import stat
import struct
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from emobench.errors import EmobenchError, UsageError

REPORT_SCHEMA = "emobench.report"  # results.schema.SCHEMA (files.py is torch-free, import-free)
CALIBRATION_SCHEMA = "emobench.calibration"  # what calibrate --out writes (cli/gate.py)
REPORT_SNIFF_BYTES = 256 * 2**20  # a file larger than this is not one of our reports
JSON_PARSE_BYTES = 64 * 2**20  # a JSON file up to this size is parsed to judge it


def file_kind(mode: int) -> str:
    """A short name for what a stat mode is: 'regular file', 'folder', 'FIFO', ..."""
    for test, name in (
        (stat.S_ISREG, "regular file"),
        (stat.S_ISDIR, "folder"),
        (stat.S_ISFIFO, "FIFO (named pipe)"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISSOCK, "socket"),
    ):
        if test(mode):
            return name
    return "special file"


def open_regular(
    path: Path, error: type[EmobenchError], prefix: str = "", noun: str = "file"
) -> BinaryIO:
    """Open `path` for binary reading only when it is a regular file (a symlink to one is fine).

    Errors are `error("{prefix}: ...")`, the prefix defaulting to the path itself.

    O_NONBLOCK keeps a FIFO from blocking the open; fstat on the opened descriptor decides, so a
    file swapped between a check and the open cannot slip through.
    """
    prefix = prefix or str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"{prefix}: no such {noun}") from None
    except OSError as exc:
        raise error(f"{prefix}: cannot open ({exc.strerror or exc})") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise error(f"{prefix}: is a {file_kind(mode)}, expected a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_text(path: Path, error: type[EmobenchError], noun: str, max_bytes: int) -> str:
    """The whole of a small regular UTF-8 text file (a BOM is dropped), at most `max_bytes`."""
    with open_regular(path, error, noun=noun) as fh:
        try:
            raw = fh.read(max_bytes + 1)
        except OSError as exc:
            raise error(f"{path}: cannot read {noun} ({exc.strerror or exc})") from None
    if len(raw) > max_bytes:
        raise error(f"{path}: larger than {max_bytes // 2**20} MiB, too large for a {noun}")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: cannot read {noun} (not UTF-8 text: {exc.reason})") from None


def _read_head(path: Path, head: int, tail: int = 0) -> tuple[bytes, bytes, int] | None:
    """The first `head` bytes of the regular file at `path`, its last `tail` bytes (those after
    the head only) and its size; None when it is not a regular file or cannot be read."""
    try:
        with open_regular(path, EmobenchError) as fh:
            size = os.fstat(fh.fileno()).st_size
            first = fh.read(head)
            last = b""
            if tail and size > head:
                fh.seek(max(size - tail, head))
                last = fh.read(tail)
    except (EmobenchError, OSError):
        return None
    return first, last, size


def _is_json_of(path: Path, schema: str) -> bool:
    """Whether the file at `path` is a JSON object whose "schema" is `schema`.

    Cheap first: the first non-blank byte must be `{`. A file of at most JSON_PARSE_BYTES is then
    parsed whole. A larger one (up to REPORT_SNIFF_BYTES; ours are a few MB) is not parsed, which
    would take gigabytes: it must end with `}` and hold the schema key as our writers put it,
    a top-level key of an indent-2 object on a line of its own (see `top_level_schema`).
    """
    got = _read_head(path, JSON_PARSE_BYTES + 1)
    if got is None:
        return False
    head, _, size = got
    if not head.lstrip(b" \t\r\n").removeprefix(b"\xef\xbb\xbf").lstrip().startswith(b"{"):
        return False
    if size <= JSON_PARSE_BYTES:
        try:
            data = json.loads(head.decode("utf-8-sig"))
        except (ValueError, RecursionError):
            return False
        return isinstance(data, dict) and data.get("schema") == schema
    if size > REPORT_SNIFF_BYTES:
        return False
    try:
        with path.open("rb") as fh:
            whole = fh.read(REPORT_SNIFF_BYTES + 1)
    except OSError:
        return False
    return whole.rstrip().endswith(b"}") and top_level_schema(schema) in whole


def top_level_schema(schema: str) -> bytes:
    """The schema key as json.dumps(indent=2) writes it at the top level of an object."""
    return f'\n  "schema": "{schema}",'.encode()


def is_report_file(path: Path) -> bool:
    """Whether the regular file at `path` is an emobench report: a JSON object whose "schema"
    is "emobench.report" (a file above JSON_PARSE_BYTES is judged as `_is_json_of` says)."""
    return _is_json_of(path, REPORT_SCHEMA)


# What makes an existing file "one of ours" of each kind: replacing it needs no --force.
# report/calibration: a JSON object with our "schema"; markdown: the `marker` line first;
# html: the generator meta tag in the head; plot: PNG tEXt Software, SVG dc:creator, or PDF
# /Creator naming emobench (what render/plot.PLOT_FORMATS asks matplotlib for); csv: a header.
ARTEFACT_KINDS = ("report", "markdown", "html", "plot", "calibration", "csv")
HEAD_BYTES = 4096  # where an HTML head's generator tag or an SVG's metadata must be
PDF_TAIL_BYTES = 64 * 1024  # matplotlib writes the PDF info dictionary near the end
MARKDOWN_MARKER = b"<!-- written by emobench"
HTML_GENERATOR = re.compile(rb'<meta name="generator" content="emobench[ "]', re.IGNORECASE)
SVG_CREATOR = re.compile(
    rb"<metadata>.*?<dc:creator>\s*<cc:Agent>\s*<dc:title>emobench</dc:title>", re.DOTALL
)
PDF_CREATOR = re.compile(rb"/(?:Creator|Producer) \(emobench")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Markdown emobench wrote before it had a marker line starts with one of its table headers.
LEGACY_MARKDOWN_HEADERS = (
    b"| backbone | pipeline | metric | kind | baseline | current |",  # check, ci
    b"| backbone | pipeline | machine | report |",  # report
    b"| backbone | claim | claimed | measured | verdict | why |",  # claims
    b"| backbone | pipeline | test accuracy |",  # report with a finetune report
)


def marker(kind: str) -> str:
    """The line a text artefact of `kind` carries so a later run may replace it (markdown)."""
    if kind == "markdown":
        return "<!-- written by emobench: a later run may replace this file -->\n"
    raise ValueError(f"no marker line for {kind!r}")


def _png_software_is_ours(path: Path) -> bool:
    """A PNG whose tEXt (or iTXt) chunk with keyword Software starts with emobench: the chunks
    are walked up to the image data, so the word elsewhere (pixels, other keys) does not count."""
    try:
        with open_regular(path, EmobenchError) as fh:
            if fh.read(8) != PNG_SIGNATURE:
                return False
            for _ in range(1000):
                header = fh.read(8)
                if len(header) < 8:
                    return False
                length, ctype = struct.unpack(">I4s", header)
                if ctype in (b"IDAT", b"IEND"):
                    return False
                if ctype in (b"tEXt", b"iTXt") and length <= 1 << 20:
                    data = fh.read(length)
                    key, _, value = data.partition(b"\0")
                    if ctype == b"iTXt":  # compression flag, method, language, translated key
                        value = value[2:].split(b"\0", 2)[-1] if value[:1] == b"\0" else b""
                    if key == b"Software" and value.startswith(b"emobench"):
                        return True
                    fh.seek(4, os.SEEK_CUR)  # the CRC
                else:
                    fh.seek(length + 4, os.SEEK_CUR)
    except (EmobenchError, OSError, struct.error):
        return False
    return False


def _plot_is_ours(path: Path) -> bool:
    got = _read_head(path, HEAD_BYTES, PDF_TAIL_BYTES)
    if got is None:
        return False
    head, tail, _ = got
    if head.startswith(PNG_SIGNATURE):
        return _png_software_is_ours(path)
    if head.startswith(b"%PDF-"):
        return PDF_CREATOR.search(head) is not None or PDF_CREATOR.search(tail) is not None
    start = head.lstrip()
    if start.startswith((b"<?xml", b"<svg", b"<!DOCTYPE svg")):
        return SVG_CREATOR.search(head) is not None
    return False


def is_artefact(path: Path, kind: str) -> bool:
    """Whether the regular file at `path` is an emobench artefact of `kind`, judged by where our
    writers put their mark (see ARTEFACT_KINDS), never by the text turning up anywhere."""
    if kind == "report":
        return is_report_file(path)
    if kind == "calibration":
        return _is_json_of(path, CALIBRATION_SCHEMA)
    if kind == "plot":
        return _plot_is_ours(path)
    if kind not in ARTEFACT_KINDS:
        raise ValueError(f"unknown artefact kind {kind!r}")
    got = _read_head(path, HEAD_BYTES)
    if got is None:
        return False
    head = got[0].removeprefix(b"\xef\xbb\xbf")
    if kind == "csv":
        first = [c.strip() for c in head.split(b"\n", 1)[0].split(b",")]
        return b"backbone" in first and b"pipeline" in first
    if kind == "markdown":
        return head.startswith((MARKDOWN_MARKER, *LEGACY_MARKDOWN_HEADERS))
    # html
    start = head.lstrip()
    if not start[:14].lower().startswith((b"<!doctype html", b"<html")):
        return False
    end = start.lower().find(b"</head>")
    return HTML_GENERATOR.search(start if end < 0 else start[:end]) is not None


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (links followed); False when either does not exist."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_output(
    path: Path,
    option: str,
    *,
    report: bool = False,
    kind: str | None = None,
    force: bool = False,
    inputs: Sequence[Path] = (),
) -> None:
    """Fail before any work when `path` could not, or should not, be written.

    The one output policy: refused are a folder, a special file (device, FIFO, socket: a
    rename would replace it), a folder we cannot create a file in, any of the command's own
    `inputs` (even with --force), and an existing file that is not an emobench artefact of
    `kind` (unless `force`). `report=True` is `kind="report"`.
    """
    kind = "report" if report else kind
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        st = None
    except OSError as exc:
        raise UsageError(f"{option} {path}: cannot check ({exc.strerror or exc})") from None
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            raise UsageError(f"{option} {path}: is a folder, expected a file path")
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(
                f"{option} {path}: is a {file_kind(st.st_mode)}; only regular files are written "
                "(they are replaced atomically)"
            )
        for source in inputs:
            if same_file(path, source):
                raise UsageError(
                    f"{option} {path}: is one of this command's inputs; write somewhere else"
                )
        if kind is not None and not force and not is_artefact(path, kind):
            noun = "an emobench report" if kind == "report" else f"an emobench {kind} file"
            raise UsageError(
                f"{option} {path}: exists and is not {noun}; choose another path "
                "or pass --force to overwrite it"
            )
    check_folder(path.parent, f"{option} {path}")


def check_outputs(
    outputs: Sequence[tuple[Path | None, str, str]],
    *,
    force: bool = False,
    inputs: Sequence[Path] = (),
) -> None:
    """`check_output` for every (path, option, kind) given (path not None), and no two options
    naming one file (the second write would replace the first)."""
    seen: dict[str, str] = {}
    for path, option, kind in outputs:
        if path is None:
            continue
        check_output(path, option, kind=kind, force=force, inputs=inputs)
        key = os.path.realpath(path)
        if key in seen:
            raise UsageError(
                f"{option} {path}: {seen[key]} names the same file; give each output its own"
            )
        seen[key] = option


def check_folder(folder: Path, label: str) -> None:
    """Fail when no file can be created in `folder` (or in the nearest existing folder above
    it, for a folder still to be made)."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise UsageError(f"{label}: {folder} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise UsageError(f"{label}: cannot write in {folder} ({exc.strerror})") from None


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder and rename: readers never see half a file.

    The file gets the permissions a plain `open(path, "w")` would give it (0666 less the umask,
    or the mode of the file it replaces), not mkstemp's 0600. A symlink is followed, so the link
    stays and the file it names is replaced. Special files are refused: a rename would turn
    /dev/null or a FIFO into a regular file.
    """
    target = Path(os.path.realpath(path))
    try:
        st = target.stat()
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise OSError(errno.EINVAL, f"is a {file_kind(st.st_mode)}, not a regular file")
    mode = stat.S_IMODE(st.st_mode) if st is not None else 0o666 & ~current_umask()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        tmp = None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` for a writer that wants a file name (savefig,
    torch.save): renamed over `path` when the block ends cleanly, removed when it does not
    (an exception, Ctrl-C, SIGTERM raised as an exception), so no `.tmp` is ever left."""
    target = Path(os.path.realpath(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        try:
            mode = stat.S_IMODE(target.stat().st_mode)
        except FileNotFoundError:
            mode = 0o666 & ~current_umask()
        yield tmp
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def unique_suffix() -> str:
    """Six hex digits: two runs started in the same second get different default names."""
    return secrets.token_hex(3)
