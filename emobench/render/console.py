"""The two consoles every command draws on: stdout for tables, stderr for progress and notes.

rich is imported when a console is made, not when the CLI starts: `--help` and usage errors
answer without it."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

PIPED_WIDTH = 160  # wide enough for the tables when piped to a file or a CI log


def stderr_console() -> Console:
    from rich.console import Console

    return Console(stderr=True)


def stdout_console() -> Console:
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=PIPED_WIDTH)
