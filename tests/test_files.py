"""Safe file I/O: atomic writes honour the umask, keep modes and symlinks, refuse special files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from emobench import results as R
from tests.factories import make_report


def test_write_atomic_keeps_old_file_on_failure(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text("old")

    class Boom:
        def __str__(self) -> str:
            raise RuntimeError("boom")

    with pytest.raises(TypeError):
        R.write_atomic(path, Boom())  # type: ignore[arg-type]
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_honour_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        R.write_atomic(tmp_path / "new.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.json").stat().st_mode) == 0o666 & ~umask


def test_replacing_keeps_the_mode_and_the_symlink(tmp_path: Path) -> None:
    target = tmp_path / "real.json"
    target.write_text("old")
    target.chmod(0o640)
    link = tmp_path / "link.json"
    link.symlink_to(target)
    R.write_atomic(link, "new")
    assert link.is_symlink() and target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


def test_special_files_are_never_replaced(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="FIFO"):
        R.write_atomic(fifo, "x")
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["pipe"]


def test_check_output_refuses_special_and_foreign_files(tmp_path: Path) -> None:
    from emobench.errors import UsageError
    from emobench.files import check_output

    with pytest.raises(UsageError, match="--out /dev/null: is a character device"):
        check_output(Path("/dev/null"), "--out", report=True)
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    with pytest.raises(UsageError, match=r"not an emobench report; .* or pass --force"):
        check_output(notes, "--out", report=True)
    check_output(notes, "--out", report=True, force=True)
    check_output(notes, "--markdown")  # only reports are protected this way
    with pytest.raises(UsageError, match=r"--markdown .*: is a folder"):
        check_output(tmp_path, "--markdown")


def test_check_outputs_refuses_inputs_and_two_options_naming_one_file(tmp_path: Path) -> None:
    from emobench.errors import UsageError
    from emobench.files import check_outputs

    report = tmp_path / "r.json"
    R.save(make_report(), report)
    with pytest.raises(UsageError, match=r"--csv .*r\.json: is one of this command's inputs"):
        check_outputs([(report, "--csv", "csv")], force=True, inputs=[report])
    out = tmp_path / "out.md"
    with pytest.raises(UsageError, match=r"--csv .*out\.md: --markdown names the same file"):
        check_outputs(
            [(out, "--markdown", "markdown"), (tmp_path / "." / "out.md", "--csv", "csv")]
        )
    check_outputs([(None, "--markdown", "markdown"), (out, "--csv", "csv")], inputs=[report])


@pytest.mark.parametrize(
    ("kind", "text", "ours"),
    [
        (
            "markdown",
            "<!-- written by emobench: a later run may replace this file -->\n| a |",
            True,
        ),
        ("markdown", "| backbone | pipeline | machine | report | x |\n", True),  # before markers
        ("markdown", "# my notes\n| backbone | pipeline | machine | report |\n", False),
        ("csv", "file,kind,created_utc,backbone,pipeline,metric\n", True),
        ("csv", "name,value\n", False),
        ("calibration", '{\n  "schema": "emobench.calibration",\n  "alpha": 0.05\n}', True),
        ("calibration", "[]", False),
    ],
)
def test_artefacts_are_recognised_by_their_marker(
    tmp_path: Path, kind: str, text: str, ours: bool
) -> None:
    from emobench.files import is_artefact

    path = tmp_path / "f"
    path.write_text(text)
    assert is_artefact(path, kind) is ours
