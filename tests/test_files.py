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


# -- review: a marker counts only where our writers put it, never anywhere in the file ---------


def _written_artefacts(tmp_path: Path) -> dict[str, Path]:
    """One file of each kind, written through the real writers."""
    from emobench.cli.gate import _calibration_json
    from emobench.files import write_atomic
    from emobench.render.gate import verdicts_markdown
    from emobench.render.html import report_page
    from emobench.render.readout import merged_markdown

    out = {"report": tmp_path / "r.json"}
    R.save(make_report(), out["report"])
    for name, text in (
        ("markdown", merged_markdown([], ())),
        ("markdown-check", verdicts_markdown([])),
        ("html", report_page([(Path("r.json"), make_report())])),
        ("calibration", _calibration_json([], 0.05)),
    ):
        out[name] = tmp_path / name
        write_atomic(out[name], text)
    return out


def test_every_artefact_our_writers_write_is_recognised(tmp_path: Path) -> None:
    from emobench.files import is_artefact

    for name, path in _written_artefacts(tmp_path).items():
        assert is_artefact(path, name.split("-")[0]), name


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("markdown", "# my notes\nemobench writes `<!-- written by emobench -->` first.\n"),
        ("markdown", "# notes\n| backbone | pipeline | machine | report |\n"),
        ("report", 'REPORT_SCHEMA = "x"  # writes "schema": "emobench.report"\n'),
        ("report", '{"schema": "emobench.report"\n'),  # not JSON
        ("report", '[{"schema": "emobench.report"}]'),  # not an object
        ("report", '{"notes": {"schema": "emobench.report"}}'),  # not at the top level
        ("calibration", '{"a": 1}\n"schema": "emobench.calibration",\n'),
        (
            "html",
            "<!DOCTYPE html><html><head><title>mine</title></head><body>"
            '<meta name="generator" content="emobench"></body></html>',
        ),
        ("html", 'notes: <meta name="generator" content="emobench 1">'),
        ("plot", '<svg xmlns="http://www.w3.org/2000/svg"><text>made with emobench</text></svg>'),
        ("plot", "%PDF-1.4\n(emobench was here) /Title (emobench)\n%%EOF\n"),
    ],
)
def test_a_user_file_mentioning_our_marker_is_not_ours(
    tmp_path: Path, kind: str, text: str
) -> None:
    from emobench.errors import UsageError
    from emobench.files import check_output, is_artefact

    path = tmp_path / "mine"
    path.write_text(text)
    assert not is_artefact(path, kind)
    with pytest.raises(UsageError, match="pass --force"):
        check_output(path, "--out", kind=kind)


def test_a_copy_of_emobench_source_is_not_a_report(tmp_path: Path) -> None:
    import emobench.files
    from emobench.files import is_artefact

    copy = tmp_path / "files.py"
    copy.write_bytes(Path(emobench.files.__file__).read_bytes())
    assert not is_artefact(copy, "report") and not is_artefact(copy, "calibration")


def _png(chunks: list[tuple[bytes, bytes]]) -> bytes:
    import struct
    import zlib

    body = b"".join(
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        for kind, data in chunks
    )
    return b"\x89PNG\r\n\x1a\n" + body


def test_a_png_is_ours_only_by_its_software_text_chunk(tmp_path: Path) -> None:
    from emobench.files import is_artefact

    ihdr = (b"IHDR", bytes(13))
    cases = {
        "ours.png": (_png([ihdr, (b"tEXt", b"Software\0emobench"), (b"IEND", b"")]), True),
        "title.png": (_png([ihdr, (b"tEXt", b"Title\0emobench"), (b"IEND", b"")]), False),
        "pixels.png": (_png([ihdr, (b"IDAT", b"emobench"), (b"IEND", b"")]), False),
        "late.png": (  # after the image data: not where matplotlib writes it
            _png([ihdr, (b"IDAT", b"x"), (b"tEXt", b"Software\0emobench"), (b"IEND", b"")]),
            False,
        ),
        "cut.png": (_png([ihdr])[:20], False),
    }
    for name, (data, ours) in cases.items():
        (tmp_path / name).write_bytes(data)
        assert is_artefact(tmp_path / name, "plot") is ours, name


@pytest.mark.skipif(
    __import__("importlib.util").util.find_spec("matplotlib") is None, reason="needs matplotlib"
)
@pytest.mark.parametrize("suffix", [".png", ".svg", ".pdf"])
def test_plots_written_by_plot_save_are_ours(tmp_path: Path, suffix: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from emobench.files import is_artefact
    from emobench.render.plot import _save

    fig, ax = plt.subplots()
    ax.plot([1, 2], label="emobench")
    out = tmp_path / f"p{suffix}"
    _save(fig, out)
    plt.close(fig)
    assert is_artefact(out, "plot")
    assert not is_artefact(out, "report") and not is_artefact(out, "html")
