"""The shell around every command: one `error:` line and an exit code for each failure (typed
errors, click's usage errors, Ctrl-C, SIGTERM, running out of memory), the consoles, and the
report and text files a command writes (tracked, so an interruption can say what was written).

Nothing heavy is imported at module level, and each command checks its options, paths and
input files before it imports torch (about 4 s and 800 MB): a usage error is answered in a
fraction of a second. Errors are one `error:` line on stderr and an exit code (2 for bad
input, 1 for a failed run, 130 for Ctrl-C, 143 for SIGTERM), click's own usage errors included.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import typer
from typer.core import TyperGroup

from emobench import files as fileio
from emobench.errors import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    EXIT_USAGE,
    EmobenchError,
    Terminated,
)
from emobench.names import RESULTS_DIR

try:  # typer vendors click from 0.20 on
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - older typer with click installed
    from click import exceptions as click_exceptions  # type: ignore[no-redef]


def _one_line(message: str) -> str:
    """Error text on one line, however many lines the underlying message had."""
    return "; ".join(part.strip() for part in message.splitlines() if part.strip())


def _usage_message(exc: Any) -> str:
    message = exc.format_message()
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        message += f" (see '{ctx.command_path} --help')"
    return _one_line(message)


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """While inside, SIGTERM raises Terminated in the main thread, so it unwinds like Ctrl-C:
    `finally` blocks remove temporary files and subprocess.run kills a running child."""

    def handler(_signum: int, _frame: FrameType | None) -> None:
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals to whoever owns it
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class HouseGroup(TyperGroup):
    """Typer's group in the house style: click's own usage errors (`--batch-size abc`, an
    unknown option) are one `error:` line and exit 2, not a boxed panel; SIGTERM unwinds like
    Ctrl-C and exits 143."""

    def main(  # type: ignore[override]
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        with sigterm_raises():
            try:
                code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            except click_exceptions.NoArgsIsHelpError as exc:
                exc.show()
                sys.exit(exc.exit_code)
            except click_exceptions.ClickException as exc:
                typer.echo(f"error: {_usage_message(exc)}", err=True)
                usage = isinstance(exc, click_exceptions.UsageError)
                sys.exit(EXIT_USAGE if usage else exc.exit_code)
            except typer.Abort:
                typer.echo("error: aborted", err=True)
                sys.exit(EXIT_FAILURE)
            except Terminated:
                typer.echo("error: terminated (SIGTERM)", err=True)
                sys.exit(EXIT_TERMINATED)
        sys.exit(code if isinstance(code, int) else 0)


F = TypeVar("F", bound=Callable[..., Any])
written: list[Path] = []  # files this command has written, for the interruption message


def fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {_one_line(message)}", err=True)
    return typer.Exit(code)


def written_note() -> str:
    if not written:
        return "no report was written"
    return "written before that: " + ", ".join(str(p) for p in written)


def clean_errors(fn: F) -> F:
    """Turn EmobenchError into one line on stderr and its exit code; Ctrl-C into exit 130,
    SIGTERM into 143, running out of memory into exit 1: one line each, no traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        written.clear()
        try:
            return fn(*args, **kwargs)
        except EmobenchError as exc:
            raise fail(str(exc), exc.exit_code) from None
        except Terminated:
            raise fail(f"terminated (SIGTERM); {written_note()}", EXIT_TERMINATED) from None
        except KeyboardInterrupt:
            raise fail(f"interrupted; {written_note()}", EXIT_INTERRUPTED) from None
        except MemoryError:
            raise fail("out of memory; use a smaller batch", EXIT_FAILURE) from None
        except RuntimeError as exc:
            if not _is_out_of_memory(exc):
                raise
            raise fail(out_of_memory_line(exc), EXIT_FAILURE) from None

    return wrapper  # type: ignore[return-value]


def _is_out_of_memory(exc: BaseException) -> bool:
    """torch.OutOfMemoryError (a RuntimeError: torch.cuda.OutOfMemoryError is the same class),
    told by its class name: the shell never imports torch."""
    return any(cls.__name__ == "OutOfMemoryError" for cls in type(exc).__mro__)


def out_of_memory_line(exc: BaseException) -> str:
    """A CUDA out-of-memory error that escaped a command (compare names the step and batch
    itself): the batch size where the model call recorded it, and what to do."""
    batch = getattr(exc, "batch_size", None)
    at = f" at batch {batch}" if batch is not None else ""
    first = ". ".join((str(exc).strip().splitlines() or [""])[0].split(". ")[:2])[:160]
    return (
        f"out of GPU memory{at} ({first}); use a smaller batch: `emobench maxbatch` finds the "
        "largest that fits"
    )


def default_report_path(backbone: str, device: str, kind: str = "") -> Path:
    """results/<UTC time>-[kind-]<backbone>-<device>-<6 hex>.json: the random suffix keeps two
    runs started in the same second from writing the same file."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    safe_device = device.replace(":", "")
    parts = [stamp, kind, backbone, safe_device] if kind else [stamp, backbone, safe_device]
    return RESULTS_DIR / ("-".join([*parts, fileio.unique_suffix()]) + ".json")


def check_report_out(out: Path | None, force: bool) -> None:
    """--out (or the results/ folder when it is not given) before any work."""
    if out is not None:
        fileio.check_output(out, "--out", report=True, force=force)
    else:
        fileio.check_folder(RESULTS_DIR, "--out (default results/)")


def save_report(report: Any, path: Path) -> None:
    from emobench import results as report_mod

    report_mod.save(report, path)
    written.append(path)


def write_text(path: Path, text: str) -> None:
    from emobench.errors import ReportError

    try:
        fileio.write_atomic(path, text)
    except OSError as exc:
        raise ReportError(f"{path}: cannot write ({exc.strerror or exc})") from None
    written.append(path)
