"""The CLI reference (docs/commands.md), generated from the Typer app: every command's help as
`emobench <command> --help` prints it, so the docs cannot drift from the code (a test checks).

`python -m emobench.cli.reference > docs/commands.md` (or `make docs`) rewrites it.
"""

from __future__ import annotations

from typing import Any

import typer

from emobench.cli.app import app

HELP_WIDTH = 100  # the app's max_content_width: the width every --help is laid out at
HEADER = """# Command reference

Every command's `emobench <command> --help`, as a terminal 100 or more columns wide shows it,
generated from the command line itself by `python -m emobench.cli.reference` (`make docs`); a
test fails when the two differ. How each figure is measured: [metrics.md](metrics.md); the
landing page: [README](../README.md).
"""


def _commands(group: Any, path: list[str]) -> list[tuple[list[str], Any]]:
    """Every command under `group`, depth first, in the order `--help` lists them."""
    out: list[tuple[list[str], Any]] = []
    for name in group.list_commands(None):
        command = group.get_command(None, name)
        out.append(([*path, name], command))
        if hasattr(command, "list_commands"):
            out += _commands(command, [*path, name])
    return out


def _help(command: Any, path: list[str]) -> str:
    try:  # the click the app's commands are built on: typer vendors it from 0.20 on
        from typer._click import Context
    except ImportError:  # pragma: no cover - older typer with click installed
        from click import Context  # type: ignore[assignment]

    ctx = Context(command, info_name=" ".join(path), terminal_width=HELP_WIDTH)
    ctx.max_content_width = HELP_WIDTH
    return command.get_help(ctx)


def markdown() -> str:
    """The whole reference page."""
    root = typer.main.get_command(app)
    parts = [HEADER]
    for path, command in [(["emobench"], root), *_commands(root, ["emobench"])]:
        title = " ".join(path)
        parts.append(f"## {title}\n\n```text\n{_help(command, path)}\n```\n")
    return "\n".join(parts)


if __name__ == "__main__":
    print(markdown(), end="")
