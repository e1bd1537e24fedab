"""The CLI reference docs/commands.md is generated from the app and cannot drift from it."""

from __future__ import annotations

import typer

from emobench.cli import app
from emobench.cli.reference import HELP_WIDTH, markdown
from tests.paths import DOCS

PAGE = DOCS / "commands.md"


def test_commands_page_is_the_generated_reference() -> None:
    assert PAGE.read_text(encoding="utf-8") == markdown(), "run: make docs"


def test_every_command_and_option_is_documented() -> None:
    page = PAGE.read_text(encoding="utf-8")
    root = typer.main.get_command(app)
    groups = [(["emobench"], root)]
    seen = 0
    while groups:
        path, group = groups.pop()
        for name in group.list_commands(None):  # type: ignore[attr-defined]
            command = group.get_command(None, name)  # type: ignore[attr-defined]
            title = " ".join([*path, name])
            assert f"## {title}\n" in page, title
            section = page.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
            for param in command.params:
                for opt in param.opts if param.param_type_name == "option" else []:
                    assert opt in section, f"{title}: {opt}"
            if hasattr(command, "list_commands"):
                groups.append(([*path, name], command))
            seen += 1
    assert seen >= 14  # 12 commands, the baseline group's two


def test_the_page_is_what_help_prints() -> None:
    """The generated sections equal `emobench <command> --help` at the app's 100 columns."""
    from typer.testing import CliRunner

    page = PAGE.read_text(encoding="utf-8")
    runner = CliRunner()
    for command in (["compare"], ["finetune"], ["baseline", "save"], []):
        result = runner.invoke(
            app, [*command, "--help"], prog_name="emobench", terminal_width=HELP_WIDTH
        )
        assert result.exit_code == 0, result.output
        title = " ".join(["emobench", *command])
        section = page.split(f"## {title}\n\n```text\n", 1)[1].split("\n```\n", 1)[0]
        assert result.stdout.rstrip("\n") == section.rstrip("\n"), title
