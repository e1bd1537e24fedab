"""`emobench export`: the command writes the deployable file and its report and states the int8
verdict (an int8 file that fails the MLPerf rule is written, but exits 1 unless
--allow-unacceptable); every bad input is one `error:` line, exit 2, nothing written (and, before
the checkpoint's contents are read, no torch imported)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from emobench.cli import app
from emobench.data.labeled import load_labeled, synthetic_labeled, write_fer_csv
from emobench.results import export as rx
from emobench.scenarios.finetune import FinetuneConfig, run_finetune
from tests.conftest import small_cnn
from tests.paths import ROOT

cli = CliRunner()


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> object:
    """One intra-op thread: on a shared 2-core machine more only adds contention."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def small_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """The checkpoints here are small_cnn's: export builds through emobench.models."""
    import emobench.models

    monkeypatch.setattr(emobench.models, "build_model", small_cnn)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory, fer_csv: Path) -> Path:
    """A working folder: fer.csv, a direct48 checkpoint fine-tuned on it, the inputs the bad
    cases name (text, empty and truncated checkpoints, other data, a foreign file, a FIFO)."""
    root = tmp_path_factory.mktemp("export-cli")
    data = root / "fer.csv"
    data.write_bytes(fer_csv.read_bytes())
    config = FinetuneConfig(
        data=str(data),
        device="cpu",
        pipelines=("direct48",),
        epochs=3,
        batch_size=16,
        workers=0,
        optimizer="adamw",
        lr=0.01,
        pretrained=False,
        checkpoint_dir=str(root / "ck"),
        measure_memory=False,
    )
    run_finetune(config, load_labeled(data), torch.device("cpu"), build=small_cnn)
    best = root / "ck" / "direct48-seed0-best.pt"
    (root / "notes.pt").write_text("not a checkpoint\n")
    (root / "empty.pt").write_bytes(b"")
    (root / "half.pt").write_bytes(best.read_bytes()[: best.stat().st_size // 2])
    images, labels = synthetic_labeled(280, seed=3)
    labels[-1] = (labels[-1] + 1) % 7
    usage = ["Training"] * 196 + ["PublicTest"] * 42 + ["PrivateTest"] * 42
    write_fer_csv(root / "other.csv", images, labels, usage)
    (root / "theirs.onnx").write_bytes(b"\x08\x07someone else's model")
    (root / "taken.onnx").write_bytes(b"\x08\x07someone else's model")
    os.mkfifo(root / "pipe.onnx")
    (root / "outdir").mkdir()
    return root


CK = "ck/direct48-seed0-best.pt"
GOOD = ["export", CK, "--data", "fer.csv", "--runtime", "onnxruntime"]


def _listing(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.lstat().st_mode, p.lstat().st_size) for p in root.rglob("*")
    }


@pytest.fixture(scope="module")
def int8_run(folder: Path) -> object:
    """`export --quantize int8 --out deploy/model.onnx`, run once for the tests that read it."""
    import emobench.models

    mp = pytest.MonkeyPatch()
    mp.setattr(emobench.models, "build_model", small_cnn)
    mp.chdir(folder)
    try:
        return cli.invoke(app, [*GOOD, "--quantize", "int8", "--out", "deploy/model.onnx"])
    finally:
        mp.undo()


def test_export_int8_writes_the_file_and_states_the_verdict(folder: Path, int8_run) -> None:  # type: ignore[no-untyped-def]
    result = int8_run
    out, report_file = folder / "deploy" / "model.onnx", folder / "deploy" / "model.onnx.json"
    assert rx.onnx_is_ours(out) and rx.is_export_report(report_file)
    report = rx.load(report_file)
    assert report.out_precision == "int8" and report.int8 is not None
    check = report.int8
    # a failing int8 file is written but exits 1 (see the test below); this one's verdict is
    # whatever the quantizer made of it on this machine
    assert result.exit_code == (1 if check.acceptable is False else 0), result.output
    verdict = {True: "yes", False: "no", None: "cannot be decided"}[check.acceptable]
    assert (
        f"int8 acceptable: {verdict} (MLPerf: int8 accuracy >= 99% of the framework's fp32 "
        "accuracy (torch fp32))"
    ) in result.stdout
    assert (
        f"int8 {check.int8_correct}/42 right vs needed >= {check.needed_correct} (99% of torch "
        f"fp32's {check.fp32_correct})"
    ) in result.stdout
    assert (
        "int8 vs onnxruntime fp32 (the same runtime: this isolates quantization)" in result.stdout
    )
    assert "McNemar exact test on the same 42 images: p = " in result.stdout
    assert f"sha256 {hashlib.sha256(out.read_bytes()).hexdigest()}" in result.stdout
    for label in ("torch fp32", "onnxruntime fp32", "onnxruntime int8"):
        assert label in result.stdout
    assert "int8 calibration: 64 of the 196 train-split images" in result.stdout
    assert "written deploy/model.onnx and deploy/model.onnx.json" in result.stderr
    assert "6/7 writing deploy/model.onnx" in result.stderr  # plain progress: not a terminal
    assert "7/7 done" in result.stderr
    # each scored batch of 32 images is a progress line
    assert "32/42 scoring onnxruntime int8 on the test split (images)" in result.stderr
    assert "42/42 scoring torch fp32 on the test split (images)" in result.stderr


def test_an_int8_file_failing_the_mlperf_rule_is_written_and_exits_1(
    folder: Path, small_models: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rule made unreachable (one more right answer than torch fp32 had): the file and its
    report are written, the verdict says no, and the command exits 1 with one error line;
    --allow-unacceptable accepts it (exit 0)."""
    from emobench.scenarios import export as ex

    monkeypatch.chdir(folder)
    monkeypatch.setattr(ex, "mlperf_needed", lambda fp32_correct: fp32_correct + 43)
    args = [*GOOD, "--quantize", "int8", "--out", "failing/model.onnx"]
    result = cli.invoke(app, args)
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and errors[0].startswith(
        "error: the int8 file failing/model.onnx fails the MLPerf rule: "
    )
    assert "pass --allow-unacceptable to accept it" in errors[0]
    assert "int8 acceptable: no (MLPerf" in result.stdout
    out = folder / "failing" / "model.onnx"
    report = rx.load(folder / "failing" / "model.onnx.json")
    assert rx.onnx_is_ours(out) and report.int8 is not None and report.int8.acceptable is False
    allowed = cli.invoke(app, [*args, "--force", "--allow-unacceptable"])
    assert allowed.exit_code == 0, allowed.output
    assert "int8 acceptable: no (MLPerf" in allowed.stdout and "error" not in allowed.stderr


def test_missing_onnx_is_one_error_line_before_the_checkpoint_is_read(
    folder: Path, small_models: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from emobench.scenarios import export as ex

    def not_yet(path: Path) -> None:
        raise AssertionError("the checkpoint was read before onnx was checked")

    monkeypatch.chdir(folder)
    monkeypatch.setitem(sys.modules, "onnx", None)
    monkeypatch.setattr(ex, "read_checkpoint", not_yet)
    before = _listing(folder)
    result = cli.invoke(app, [*GOOD, "--out", "m.onnx"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert len(lines) == 1 and "needs the onnxruntime package" in lines[0]
    assert "pip install onnxruntime onnx onnxscript" in lines[0]
    assert _listing(folder) == before


def test_force_replaces_an_earlier_export_and_json_prints_the_report(
    folder: Path, int8_run, small_models: None, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(folder)
    out = folder / "deploy" / "model.onnx"
    before = rx.load(folder / "deploy" / "model.onnx.json")
    refused = cli.invoke(app, [*GOOD, "--out", str(out)])
    assert refused.exit_code == 2 and "exists; pass --force" in refused.stderr
    again = cli.invoke(app, [*GOOD, "--out", str(out), "--force", "--json"])
    assert again.exit_code == 0, again.output
    data = json.loads(again.stdout)
    assert data["schema"] == "emobench.export" and data["out_precision"] == "fp32"
    assert data["int8"] is None and [s["label"] for s in data["scores"]] == [
        "torch fp32",
        "onnxruntime fp32",
    ]
    # the fp32 file replaced the int8 one, and scores as the int8 run's fp32 row did
    assert rx.load(folder / "deploy" / "model.onnx.json").out_precision == "fp32"
    assert out.stat().st_size == data["out_file_bytes"] == before.file("fp32").file_bytes
    assert data["scores"][1]["predictions"] == before.score("onnxruntime fp32").predictions


# (arguments after `export`, the error line's text, whether torch is needed to find it)
BAD: list[tuple[list[str], str, bool]] = [
    (["notes.pt", "--data", "fer.csv", "--out", "m.onnx"], "not a torch.save file", False),
    (["empty.pt", "--data", "fer.csv", "--out", "m.onnx"], "empty.pt: is empty", False),
    (["ck", "--data", "fer.csv", "--out", "m.onnx"], "checkpoint ck: is a folder", False),
    (["half.pt", "--data", "fer.csv", "--out", "m.onnx"], "not an emobench checkpoint", True),
    (
        [CK.replace("best", "state"), "--data", "fer.csv", "--out", "m.onnx"],
        "holds the training state",
        True,
    ),
    ([CK, "--data", "other.csv", "--out", "m.onnx"], "is not the data checkpoint", True),
    ([CK, "--data", "fer.csv", "--out", "theirs.onnx"], "theirs.onnx: exists; pass --force", False),
    (
        [CK, "--data", "fer.csv", "--out", "taken.onnx", "--force"],
        "is not an ONNX file emobench export wrote",
        False,
    ),
    ([CK, "--data", "fer.csv", "--out", "outdir"], "--out outdir: is a folder", False),
    ([CK, "--data", "fer.csv", "--out", "pipe.onnx"], "--out pipe.onnx: is a FIFO", False),
    ([CK, "--data", "fer.csv", "--out", CK, "--force"], "is one of this command's inputs", False),
    ([CK, "--data", "fer.csv", "--out", "fer.csv"], "is one of this command's inputs", False),
    (
        [CK, "--data", "fer.csv", "--out", "m.onnx", "--runtime", "torch"],
        "--runtime torch: torch makes no deployable file",
        False,
    ),
    (
        [CK, "--data", "fer.csv", "--out", "m.onnx", "--runtime", "tflite"],
        "--runtime tflite: choose onnxruntime",
        False,
    ),
    (
        [CK, "--data", "fer.csv", "--out", "m.onnx", "--quantize", "int4"],
        "--quantize int4: choose int8",
        False,
    ),
    ([CK, "--data", "fer.csv"], "Missing option '--out'", False),
    ([CK, "--data", "nope.csv", "--out", "m.onnx"], "--data nope.csv: no such file", False),
]


@pytest.mark.parametrize(("args", "needle", "needs_torch"), BAD, ids=[b[1][:40] for b in BAD])
def test_bad_input_is_one_error_line_exit_2_nothing_written(
    folder: Path,
    small_models: None,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    needle: str,
    needs_torch: bool,
) -> None:
    monkeypatch.chdir(folder)
    before = _listing(folder)
    result = cli.invoke(app, ["export", *args])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert len(lines) == 1 and needle in lines[0], result.stderr
    assert "Traceback" not in result.output and result.stdout == ""
    assert _listing(folder) == before  # nothing written, nothing replaced


def test_refusals_before_the_checkpoint_is_read_import_no_torch(folder: Path) -> None:
    cases = [["export", *args] for args, _, needs_torch in BAD if not needs_torch]
    script = (
        "import json, sys\n"
        "from typer.testing import CliRunner\n"
        "from emobench.cli import app\n"
        "bad = []\n"
        "for args in json.loads(sys.argv[1]):\n"
        "    r = CliRunner().invoke(app, args)\n"
        "    if r.exit_code != 2 or 'torch' in sys.modules:\n"
        "        bad.append([args, r.exit_code, 'torch' in sys.modules])\n"
        "        break\n"
        "print(json.dumps(bad))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, json.dumps(cases)],
        cwd=folder,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == []
