"""Bad-input cases for finetune: options, data, checkpoints, resume (issue #26). Gathered by tests/bad_inputs.py."""

from __future__ import annotations

from pathlib import Path

from tests.bad_input_base import Case, _c  # noqa: F401

CASES: tuple[Case, ...] = ()


def make_fixtures(folder: Path) -> None:
    """The files these cases name, under `folder` (the core fixtures are already there)."""
