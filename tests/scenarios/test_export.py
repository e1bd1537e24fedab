"""The export scenario: a finetune checkpoint exported to ONNX (fp32, int8), its test split scored
in torch and onnxruntime, the int8 verdict, the files written, and every refusal before work.
Tiny models (tests.conftest.small_cnn), a few hundred synthetic images."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from emobench.data.labeled import load_labeled, synthetic_labeled, write_fer_csv
from emobench.errors import UsageError
from emobench.results import export as rx
from emobench.results.measurements import Parity
from emobench.runtimes import onnx as ort_rt
from emobench.runtimes.onnx import ExportError
from emobench.scenarios import export as ex
from emobench.scenarios.finetune import FinetuneConfig, run_finetune
from emobench.stats.classification import confusion_matrix, macro_f1, mcnemar_exact
from tests.conftest import small_cnn

CPU = torch.device("cpu")


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> object:
    """One intra-op thread: on a shared 2-core machine more only adds contention."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def finetuned(folder: Path, data_path: Path, seed: int = 0) -> tuple[Path, object]:
    """direct48 fine-tuned for 3 epochs on small_cnn: its best.pt and the finetune report."""
    config = FinetuneConfig(
        data=str(data_path),
        device="cpu",
        pipelines=("direct48",),
        epochs=3,
        batch_size=16,
        workers=0,
        optimizer="adamw",
        lr=0.01,
        pretrained=False,
        seed=seed,
        checkpoint_dir=str(folder / "ck"),
        measure_memory=False,
    )
    data = load_labeled(data_path, seed=seed)
    report = run_finetune(config, data, CPU, build=small_cnn)
    assert report.finetune is not None
    return Path(report.finetune.runs[0].checkpoint_best), report


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, fer_csv: Path) -> tuple[Path, object]:
    return finetuned(tmp_path_factory.mktemp("export-ck"), fer_csv)


@pytest.fixture(scope="module")
def int8_export(
    tmp_path_factory: pytest.TempPathFactory, checkpoint: tuple[Path, object], fer_csv: Path
) -> tuple[rx.ExportReport, ex.ExportConfig, list[tuple[str, int, int]], object]:
    ck, ft_report = checkpoint
    out = tmp_path_factory.mktemp("export-out") / "model.onnx"
    config = ex.ExportConfig(ck, fer_csv, out, quantize="int8")
    calls: list[tuple[str, int, int]] = []
    report = ex.run_export(
        config, progress=lambda *a: calls.append(a), build=small_cnn
    )  # fmt: skip
    return report, config, calls, ft_report


def test_int8_export_scores_the_finetunes_test_split_three_ways(int8_export) -> None:  # type: ignore[no-untyped-def]
    report, _, _, ft_report = int8_export
    labels = np.asarray(report.test_labels)
    assert len(labels) == 42 and report.data["score_split"] == "Usage=PrivateTest"
    assert [s.label for s in report.scores] == [
        "torch fp32",
        "onnxruntime fp32",
        "onnxruntime int8",
    ]
    # the same weights on the same split: torch fp32 scores what the fine-tune scored
    run = ft_report.finetune.runs[0]
    torch_score = report.score("torch fp32")
    assert torch_score.predictions == run.test.predictions
    assert torch_score.accuracy == pytest.approx(run.test.accuracy)
    assert torch_score.accuracy > 2 / 7  # it learnt something
    for s in report.scores:
        pred = np.asarray(s.predictions)
        assert s.images == 42 and s.correct == int((pred == labels).sum())
        assert s.accuracy == pytest.approx(s.correct / 42)
        assert s.macro_f1 == pytest.approx(macro_f1(confusion_matrix(labels, pred, 7)))
        if s.label == "torch fp32":
            assert s.agreement_with_torch is None
        else:
            agree = float((pred == np.asarray(torch_score.predictions)).mean())
            assert s.agreement_with_torch == pytest.approx(agree)
    assert report.score("onnxruntime fp32").agreement_with_torch == 1.0
    # parity on the probe batch: fp32 held to the tolerance, int8 compared only
    fp32_file, int8_file = report.file("fp32"), report.file("int8")
    assert fp32_file.parity.passed is True and fp32_file.parity.max_abs_diff < 1e-4
    assert int8_file.parity.passed is None and int8_file.quantization is not None
    assert int8_file.quantization["calibration_images"] == 64
    assert (
        "64 of the 196 train-split images (Usage=Training)"
        in (int8_file.quantization["calibration_source"])
    )
    assert report.data["calibration"]["images"] == 64
    assert any("calibrated on --data's own train images" in n for n in report.notes)


def test_int8_verdict_is_mcnemar_and_the_mlperf_rule(int8_export) -> None:  # type: ignore[no-untyped-def]
    report, _, _, _ = int8_export
    labels = np.asarray(report.test_labels)
    fp32, int8 = report.score("onnxruntime fp32"), report.score("onnxruntime int8")
    right32 = np.asarray(fp32.predictions) == labels
    right8 = np.asarray(int8.predictions) == labels
    check = report.int8
    assert check is not None and check.reference == "onnxruntime fp32"
    assert check.only_fp32_right == int(np.sum(right32 & ~right8))
    assert check.only_int8_right == int(np.sum(right8 & ~right32))
    assert check.mcnemar_p == pytest.approx(
        mcnemar_exact(check.only_fp32_right, check.only_int8_right)
    )
    assert check.acceptable == (int8.correct >= 0.99 * fp32.correct)
    assert check.accuracy_ratio == pytest.approx(int8.accuracy / fp32.accuracy)


def test_the_mlperf_rule_decides_on_counts() -> None:
    assert rx.mlperf_acceptable(99, 100) and rx.mlperf_acceptable(100, 100)
    assert not rx.mlperf_acceptable(98, 100)
    assert rx.mlperf_acceptable(0, 0) and rx.mlperf_acceptable(5, 3)
    labels = np.array([0, 1, 1, 0])

    def score(label: str, pred: list[int]) -> rx.VariantScore:
        correct = int((np.asarray(pred) == labels).sum())
        return rx.VariantScore(label, "onnxruntime", label, 4, correct, correct / 4, 0.0, 1.0, pred)

    check = ex.int8_check(score("fp32", [0, 1, 1, 0]), score("int8", [0, 0, 1, 1]), labels)
    assert (check.only_fp32_right, check.only_int8_right) == (2, 0)
    assert not check.acceptable and check.accuracy_ratio == 0.5
    assert check.mcnemar_p == pytest.approx(0.5)  # two discordant pairs, both one way


def test_the_int8_file_goes_to_out_with_its_report_and_runs_alone(int8_export) -> None:  # type: ignore[no-untyped-def]
    import onnx
    import onnxruntime

    report, config, _, _ = int8_export
    out = config.out
    assert sorted(p.name for p in out.parent.iterdir()) == ["model.onnx", "model.onnx.json"]
    assert report.out_precision == "int8"
    assert report.out_file_bytes == out.stat().st_size == report.file("int8").file_bytes
    model = onnx.load(str(out))
    onnx.checker.check_model(model)  # duplicate metadata keys, among others, would fail it
    props = {p.key: p.value for p in model.metadata_props}
    assert len(props) == len(model.metadata_props)
    assert props["emobench"].startswith("emobench ") and props["emobench.precision"] == "int8"
    assert json.loads(props["emobench.classes"])[3] == "happy"
    assert props["emobench.pipeline"] == "direct48" and "48x48 grayscale" in props["emobench.input"]
    assert rx.onnx_is_ours(out) and not rx.onnx_is_ours(config.report)
    # the written file, opened on its own, predicts what the int8 row scored
    data = load_labeled(config.data)
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = data.test.images.astype(np.float32)[:, None] / 255.0
    mean = np.asarray([0.485, 0.456, 0.406], dtype=np.float32)[None, :, None, None]
    std = np.asarray([0.229, 0.224, 0.225], dtype=np.float32)[None, :, None, None]
    logits = session.run(None, {"input": ((x - mean) / std).astype(np.float32)})[0]
    assert logits.argmax(1).tolist() == report.score("onnxruntime int8").predictions
    # the JSON report beside it reads back as the report returned
    again = rx.load(config.report)
    assert again == report
    head = json.loads(config.report.read_text())
    assert (head["schema"], head["schema_version"]) == ("emobench.export", 1)
    assert rx.is_export_report(config.report) and not rx.is_export_report(out)


def test_progress_names_each_step_and_ends_done(int8_export) -> None:  # type: ignore[no-untyped-def]
    _, _, calls, _ = int8_export
    assert [c[1] for c in calls] == list(range(8)) and {c[2] for c in calls} == {7}
    assert calls[2][0].startswith("quantizing to int8") and calls[-1] == ("done", 7, 7)


# -- refusals: nothing read in full, nothing written --------------------------------------------


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"runtime": "torch"}, "--runtime torch: torch makes no deployable file"),
        ({"runtime": "tflite"}, "--runtime tflite: choose onnxruntime"),
        ({"quantize": "fp16"}, "--quantize fp16: choose int8"),
        ({"seed": -1}, "--seed must be 0 to 4294967295"),
        ({"test_fraction": float("nan")}, "--val-fraction and --test-fraction must be finite"),
        ({"val_fraction": 0.5, "test_fraction": 0.5}, "sum to less than 1"),
    ],
)
def test_bad_options_are_refused(tmp_path: Path, kw: dict[str, object], needle: str) -> None:
    with pytest.raises(UsageError, match=needle.replace("(", r"\(")):
        ex.ExportConfig(tmp_path / "c.pt", tmp_path / "d.csv", tmp_path / "m.onnx", **kw)  # type: ignore[arg-type]


def _truncated(path: Path, source: Path) -> Path:
    data = source.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda d, ck: (d / "t.pt").write_text("weights\n") and d / "t.pt", "not a torch.save"),
        (lambda d, ck: (d / "e.pt").write_bytes(b"") or d / "e.pt", "is empty"),
        (lambda d, ck: d, "is a folder, expected a regular file"),
        (lambda d, ck: d / "none.pt", "no such checkpoint"),
        (lambda d, ck: _truncated(d / "half.pt", ck), "not an emobench checkpoint"),
        (
            lambda d, ck: ck.with_name(ck.name.replace("best", "state")),
            "holds the training state, not the weights",
        ),
        (
            lambda d, ck: torch.save({"weights": {}}, d / "bare.pt") or d / "bare.pt",
            "carries no fingerprint",
        ),
        (
            lambda d, ck: (
                torch.save({"format": 1, "fingerprint": {}}, d / "old.pt") or d / "old.pt"
            ),
            "format 1; this emobench reads format 2",
        ),
    ],
    ids=["text", "empty", "folder", "missing", "truncated", "state", "bare", "old-format"],
)
def test_a_file_that_is_not_an_emobench_checkpoint_is_refused(
    tmp_path: Path, checkpoint: tuple[Path, object], make, needle: str
) -> None:  # type: ignore[no-untyped-def]
    path = make(tmp_path, checkpoint[0])
    with pytest.raises(UsageError, match=needle) as err:
        ex.read_checkpoint(path)
    assert str(err.value).startswith(f"checkpoint {path}")


def test_other_data_is_refused_before_anything_is_written(
    tmp_path: Path, checkpoint: tuple[Path, object], fer_csv: Path
) -> None:
    images, labels = synthetic_labeled(280, seed=3)
    labels[0] = (labels[0] + 1) % 7  # one label differs
    other = tmp_path / "other.csv"
    write_fer_csv(
        other, images, labels, ["Training"] * 196 + ["PublicTest"] * 42 + ["PrivateTest"] * 42
    )
    out = tmp_path / "out" / "m.onnx"
    config = ex.ExportConfig(checkpoint[0], other, out)
    with pytest.raises(UsageError, match=r"is not the data checkpoint .* was fine-tuned on"):
        ex.run_export(config, build=small_cnn)
    assert not out.parent.exists()


def test_a_stratified_split_needs_the_finetunes_seed(tmp_path: Path) -> None:
    images, labels = synthetic_labeled(140, seed=4)
    data = tmp_path / "plain.csv"
    write_fer_csv(data, images, labels)  # no Usage column: split by the seed
    ck, _ = finetuned(tmp_path, data, seed=5)
    checkpoint = ex.read_checkpoint(ck)
    assert checkpoint.seed == 5 and checkpoint.kind == "best"
    loaded, seed = ex.load_data(ex.ExportConfig(ck, data, tmp_path / "m.onnx"), checkpoint)
    assert seed == 5 and loaded.split_seed == 5
    with pytest.raises(UsageError, match=r"split with the finetune's --seed \(here 6\)"):
        ex.load_data(ex.ExportConfig(ck, data, tmp_path / "m.onnx", seed=6), checkpoint)


def test_output_policy(
    tmp_path: Path, checkpoint: tuple[Path, object], fer_csv: Path, int8_export
) -> None:  # type: ignore[no-untyped-def]
    ck = checkpoint[0]
    ours = int8_export[1].out

    def check(out: Path, force: bool = False) -> None:
        ex.check_outputs(ex.ExportConfig(ck, fer_csv, out, force=force))

    foreign = tmp_path / "foreign.onnx"
    foreign.write_bytes(b"\x08\x07" + b"someone else's model")
    with pytest.raises(UsageError, match="exists; pass --force to replace it"):
        check(foreign)
    with pytest.raises(UsageError, match="is not an ONNX file emobench export wrote"):
        check(foreign, force=True)
    with pytest.raises(UsageError, match="exists; pass --force"):
        check(ours)  # even our own file needs --force
    check(ours, force=True)
    # a report beside a new --out that is not ours
    (tmp_path / "fresh.onnx.json").write_text('{"schema": "something else"}')
    with pytest.raises(UsageError, match=r"its report .* is not an export report"):
        check(tmp_path / "fresh.onnx", force=True)
    with pytest.raises(UsageError, match="is a folder"):
        check(tmp_path)
    fifo = tmp_path / "pipe.onnx"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match="is a FIFO"):
        check(fifo, force=True)
    for own_input in (ck, fer_csv):
        with pytest.raises(UsageError, match="is one of this command's inputs"):
            check(own_input, force=True)
    check(tmp_path / "new" / "model.onnx")  # a folder still to be made is fine


def test_a_failure_after_the_export_writes_nothing(
    tmp_path: Path,
    checkpoint: tuple[Path, object],
    fer_csv: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def disagrees(reference, candidate, held=True, tolerance=1e-4):  # type: ignore[no-untyped-def]
        return Parity(8, 1.0, 1.0, 0.5, tolerance, False if held else None)

    monkeypatch.setattr(ort_rt, "parity", disagrees)
    out = tmp_path / "m.onnx"
    with pytest.raises(ExportError, match="disagrees with torch"):
        ex.run_export(ex.ExportConfig(checkpoint[0], fer_csv, out), build=small_cnn)
    assert list(tmp_path.iterdir()) == []


def test_a_checkpoint_of_another_model_is_refused(
    tmp_path: Path, checkpoint: tuple[Path, object]
) -> None:
    loaded = ex.read_checkpoint(checkpoint[0])
    other = dataclasses.replace(loaded, weights={"w": torch.zeros(1)})
    with pytest.raises(UsageError, match=r"does not fit the resnet18 direct48 model \(its tensors"):
        ex.build_model(other, 7, small_cnn)
