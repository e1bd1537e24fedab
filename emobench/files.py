"""Careful file I/O for every input and output: regular files only, bounded reads, atomic writes
that honour the umask, and no silent clobbering of files that are not ours.

Torch-free and typer-free, so the CLI can check paths before any heavy import.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO

from emobench.errors import EmobenchError, UsageError

REPORT_MARKER = '"schema": "emobench.report"'  # how report.to_json writes the schema key
REPORT_SNIFF_BYTES = 256 * 2**20  # a file larger than this is not one of our reports


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


def is_report_file(path: Path) -> bool:
    """Whether the regular file at `path` is an emobench report (its schema key is there)."""
    try:
        if path.stat().st_size > REPORT_SNIFF_BYTES:
            return False
        with path.open("rb") as fh:
            return REPORT_MARKER.encode() in fh.read()
    except OSError:
        return False


def check_output(path: Path, option: str, *, report: bool = False, force: bool = False) -> None:
    """Fail before any work when `path` could not, or should not, be written.

    Refused: a folder, a special file (device, FIFO, socket: a rename would replace it), a
    folder we cannot create a file in, and, for reports, an existing file that is not an
    emobench report (unless `force`).
    """
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
        if report and not force and not is_report_file(path):
            raise UsageError(
                f"{option} {path}: exists and is not an emobench report; choose another path "
                "or pass --force to overwrite it"
            )
    check_folder(path.parent, f"{option} {path}")


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


def unique_suffix() -> str:
    """Six hex digits: two runs started in the same second get different default names."""
    return secrets.token_hex(3)
