"""The export scenario: a finetune checkpoint exported to ONNX (fp32, int8), its test split scored
in torch and onnxruntime, the int8 verdict, the files written, and every refusal before work.
Tiny models (tests.conftest.small_cnn), a few hundred synthetic images."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from rich.console import Console

from emobench.data.labeled import (
    load_labeled,
    synthetic_labeled,
    write_fer_csv,
    write_image_folder,
)
from emobench.errors import MeasurementError, UsageError
from emobench.render.export import int8_lines, render_export
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


def finetuned(folder: Path, data_path: Path, seed: int = 0, seeds: int = 1) -> tuple[Path, object]:
    """direct48 fine-tuned for 3 epochs on small_cnn: its (last seed's) best.pt and the
    finetune report."""
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
        seeds=seeds,
        checkpoint_dir=str(folder / "ck"),
        measure_memory=False,
    )
    data = load_labeled(data_path, seed=seed)
    report = run_finetune(config, data, CPU, build=small_cnn)
    assert report.finetune is not None
    return Path(report.finetune.runs[-1].checkpoint_best), report


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


def test_int8_verdict_is_mlperf_against_torch_and_mcnemar_against_ort(int8_export) -> None:  # type: ignore[no-untyped-def]
    report, _, _, _ = int8_export
    labels = np.asarray(report.test_labels)
    torch32 = report.score("torch fp32")
    fp32, int8 = report.score("onnxruntime fp32"), report.score("onnxruntime int8")
    right32 = np.asarray(fp32.predictions) == labels
    right8 = np.asarray(int8.predictions) == labels
    check = report.int8
    # MLPerf's reference is the framework's fp32 model; McNemar's is the same runtime's fp32
    assert check is not None and check.reference == "torch fp32"
    assert check.mcnemar_reference == "onnxruntime fp32"
    assert (check.images, check.fp32_correct, check.int8_correct) == (
        42,
        torch32.correct,
        int8.correct,
    )
    assert check.needed_correct == -(-torch32.correct * 99 // 100)
    assert check.only_fp32_right == int(np.sum(right32 & ~right8))
    assert check.only_int8_right == int(np.sum(right8 & ~right32))
    assert check.mcnemar_p == pytest.approx(
        mcnemar_exact(check.only_fp32_right, check.only_int8_right)
    )
    assert check.acceptable == (int8.correct >= 0.99 * torch32.correct)
    assert check.accuracy_ratio == pytest.approx(int8.correct / torch32.correct)
    assert check.fp32_accuracy == torch32.accuracy


def _scored(label: str, pred: list[int], labels: np.ndarray) -> rx.VariantScore:
    correct = int((np.asarray(pred) == labels).sum())
    runtime, precision = label.split()
    return rx.VariantScore(
        label, runtime, precision, len(labels), correct, correct / len(labels), 0.0, 1.0, pred
    )


def test_the_mlperf_rule_decides_on_counts_against_torch_fp32() -> None:
    assert rx.mlperf_acceptable(99, 100) and rx.mlperf_acceptable(100, 100)
    assert not rx.mlperf_acceptable(98, 100) and rx.mlperf_acceptable(5, 3)
    assert rx.mlperf_needed(2000) == 1980 and rx.mlperf_needed(101) == 100
    # fp32 got nothing right: 99% of nothing decides nothing (not "acceptable")
    assert rx.mlperf_acceptable(0, 0) is None and rx.mlperf_acceptable(3, 0) is None
    labels = np.array([0, 1, 1, 0])
    torch32 = _scored("torch fp32", [0, 1, 1, 1], labels)  # 3 right
    ort32 = _scored("onnxruntime fp32", [0, 1, 1, 0], labels)  # 4 right
    int8 = _scored("onnxruntime int8", [0, 1, 0, 0], labels)  # 3 right
    check = ex.int8_check(torch32, ort32, int8, labels)
    # judged against torch fp32's 3: acceptable (against onnxruntime fp32's 4 it would not be)
    assert check.acceptable is True and check.needed_correct == 3 and check.accuracy_ratio == 1.0
    assert (check.reference, check.mcnemar_reference) == ("torch fp32", "onnxruntime fp32")
    assert (check.only_fp32_right, check.only_int8_right) == (1, 0)  # against onnxruntime fp32
    assert check.mcnemar_p == pytest.approx(1.0)
    nothing = _scored("torch fp32", [1, 0, 0, 1], labels)
    undecided = ex.int8_check(nothing, ort32, int8, labels)
    assert undecided.acceptable is None and undecided.needed_correct is None
    assert undecided.accuracy_ratio is None


def _check(fp32_correct: int, int8_correct: int, images: int = 2000) -> rx.Int8Check:
    needed = rx.mlperf_needed(fp32_correct)
    return rx.Int8Check(
        reference="torch fp32",
        images=images,
        fp32_correct=fp32_correct,
        int8_correct=int8_correct,
        needed_correct=needed,
        fp32_accuracy=fp32_correct / images,
        int8_accuracy=int8_correct / images,
        accuracy_ratio=int8_correct / fp32_correct if fp32_correct else None,
        threshold=0.99,
        acceptable=rx.mlperf_acceptable(int8_correct, fp32_correct),
        mcnemar_reference="onnxruntime fp32",
        only_fp32_right=21,
        only_int8_right=0,
        mcnemar_p=9.5e-7,
    )


def test_the_verdict_shows_counts_and_never_rounds_a_failure_up_to_99(int8_export) -> None:  # type: ignore[no-untyped-def]
    report = int8_export[0]
    failing = dataclasses.replace(report, int8=_check(2000, 1979))
    verdict, mcnemar = int8_lines(failing)
    assert verdict.startswith("int8 acceptable: no (MLPerf: int8 accuracy >= 99% of the ")
    assert "int8 1979/2000 right vs needed >= 1980 (99% of torch fp32's 2000)" in verdict
    assert verdict.endswith("; 98.9% of torch fp32's accuracy")  # 98.95%: floored, not 99.0%
    assert "99.0%" not in verdict
    assert mcnemar.startswith("int8 vs onnxruntime fp32 (the same runtime: this isolates ")
    assert "McNemar exact test on the same 2000 images: p = 9.5e-07" in mcnemar
    assert rx.unacceptable(failing) is not None
    passing = int8_lines(dataclasses.replace(report, int8=_check(2000, 1980)))[0]
    assert passing.startswith("int8 acceptable: yes") and "; 99.0% of torch fp32's" in passing
    assert rx.unacceptable(dataclasses.replace(report, int8=_check(2000, 1980))) is None
    nothing = dataclasses.replace(report, int8=_check(0, 5))
    line = int8_lines(nothing)[0]
    assert line.startswith("int8 acceptable: cannot be decided (MLPerf")
    assert "torch fp32 got none of the 2000 test images right" in line and "yes" not in line
    assert rx.unacceptable(nothing) is None  # undecided is not a failure
    assert rx.floor_percent(1979, 2000) == "98.9%" and rx.floor_percent(2, 3) == "66.6%"
    assert rx.floor_percent(1, 0) == "n/a"


def test_the_int8_file_goes_to_out_with_its_report_and_runs_alone(int8_export) -> None:  # type: ignore[no-untyped-def]
    import onnx
    import onnxruntime

    report, config, _, _ = int8_export
    out = config.out
    assert sorted(p.name for p in out.parent.iterdir()) == ["model.onnx", "model.onnx.json"]
    assert report.out_precision == "int8"
    assert report.out_file_bytes == out.stat().st_size == report.file("int8").file_bytes
    assert report.out_sha256 == hashlib.sha256(out.read_bytes()).hexdigest()
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


def test_progress_names_each_step_then_each_scored_batch_and_ends_done(int8_export) -> None:  # type: ignore[no-untyped-def]
    _, _, calls, _ = int8_export
    steps = [c for c in calls if not c[0].endswith("(images)")]
    assert [c[1] for c in steps] == list(range(8)) and {c[2] for c in steps} == {7}
    assert steps[2][0].startswith("quantizing to int8") and steps[-1] == ("done", 7, 7)
    # each variant's 42 test images scored 32 at a time, each batch reported as it is done
    for label in ("torch fp32", "onnxruntime fp32", "onnxruntime int8"):
        name = f"scoring {label} on the test split"
        at = calls.index((name, steps.index(next(c for c in steps if c[0] == name)), 7))
        assert calls[at + 1 : at + 3] == [
            (f"{name} (images)", 32, 42),
            (f"{name} (images)", 42, 42),
        ]


def test_predict_scores_in_batches_of_32(checkpoint: tuple[Path, object]) -> None:
    from emobench.runtimes.torch import Pipeline

    model = small_cnn("resnet18", "direct48", num_classes=7, pretrained=False).eval()
    pipe = Pipeline("direct48", model, CPU)
    images, _ = synthetic_labeled(70, seed=1)
    seen: list[int] = []
    done: list[tuple[int, int]] = []

    def forward(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.shape[0])
        return model(x)

    pred = ex.predict(pipe, forward, images, lambda *a: done.append(a))
    assert seen == [32, 32, 6] and done == [(32, 70), (64, 70), (70, 70)]
    with torch.inference_mode():
        whole = model(pipe.preprocess_batched(torch.from_numpy(images))).argmax(1).numpy()
    assert pred.tolist() == whole.tolist()


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
    with pytest.raises(UsageError) as err:
        ex.load_data(ex.ExportConfig(ck, data, tmp_path / "m.onnx", seed=6), checkpoint)
    assert (
        "split with the first seed of finetune's --seed/--seeds (here --seed 6; pass --seed N)"
        in (str(err.value))
    )


def test_the_second_seeds_checkpoint_of_a_multi_seed_run_finds_the_runs_split(
    tmp_path: Path,
) -> None:
    """finetune --seed 3 --seeds 2 splits once, with seed 3, and stamps its second checkpoint
    with seed 4: export finds seed 3 below it, says so, and scores the run's test split."""
    images, labels = synthetic_labeled(140, seed=4)
    data = tmp_path / "plain.csv"
    write_fer_csv(data, images, labels)
    ck, ft_report = finetuned(tmp_path, data, seed=3, seeds=2)
    assert ck.name == "direct48-seed4-best.pt" and ex.read_checkpoint(ck).seed == 4
    tried: list[tuple[int, int]] = []
    config = ex.ExportConfig(ck, data, tmp_path / "out" / "m.onnx")
    loaded, seed = ex.load_data(config, ex.read_checkpoint(ck), lambda *a: tried.append(a))
    assert seed == 3 and loaded.split_seed == 3 and tried == [(0, 4)]  # 3 is the first below 4
    again = load_labeled(data, seed=3)
    for mine, theirs in zip(
        (loaded.train, loaded.val, loaded.test), (again.train, again.val, again.test), strict=True
    ):
        assert mine.source == theirs.source and np.array_equal(mine.images, theirs.images)
        assert np.array_equal(mine.labels, theirs.labels)
    calls: list[tuple[str, int, int]] = []
    report = ex.run_export(config, progress=lambda *a: calls.append(a), build=small_cnn)
    assert report.data["split_seed"] == 3 and report.data["requested_split_seed"] is None
    assert report.checkpoint["seed"] == 4
    assert any(
        "split with seed 3, the first seed of the fine-tune's --seed/--seeds" in n
        for n in report.notes
    )
    assert ("reading the checkpoint and --data (seeds below it tried)", 0, 4) in calls
    shown = io.StringIO()
    render_export(report, Console(file=shown, width=100))
    assert "note: --data split with seed 3, the first seed of the fine-tune's" in shown.getvalue()
    assert "test: stratified 10% (seed 3)" in shown.getvalue()
    # the fine-tune's own test score of that checkpoint is what export scores in torch fp32
    run = ft_report.finetune.runs[-1]  # type: ignore[attr-defined]
    assert report.score("torch fp32").predictions == run.test.predictions
    # --seed 4 (the checkpoint's own) is refused with the hint, not tried further
    with pytest.raises(UsageError, match=r"here --seed 4; pass --seed N"):
        ex.load_data(dataclasses.replace(config, seed=4), ex.read_checkpoint(ck))


def test_a_folders_split_seed_is_found_below_the_checkpoints(tmp_path: Path) -> None:
    """A folder of class folders read class by class: the seed a checkpoint of seed 6 was
    split with (2, as `--seed 2 --seeds 5` would) is found without reading the images again."""
    images, labels = synthetic_labeled(70, seed=2)
    names = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    write_image_folder(tmp_path / "faces", images, labels, names)
    data = tmp_path / "faces"
    split2 = load_labeled(data, seed=2)
    fingerprint = {"backbone": "resnet18", "pipeline": "direct48", "recipe": "r", "seed": 6}
    checkpoint = ex.Checkpoint(
        tmp_path / "direct48-seed6-best.pt",
        "0" * 64,
        "best",
        3,
        fingerprint | {"data": split2.content_sha256()},
        {},
        {},
    )
    tried: list[tuple[int, int]] = []
    config = ex.ExportConfig(checkpoint.path, data, tmp_path / "m.onnx")
    loaded, seed = ex.load_data(config, checkpoint, lambda *a: tried.append(a))
    assert seed == 2 and loaded.content_sha256() == split2.content_sha256()
    assert loaded.test.source == split2.test.source and tried == [(0, 6), (1, 6), (2, 6), (3, 6)]
    # data no seed splits this way: every seed from 6 down to 0 tried, then one error line
    other = dataclasses.replace(checkpoint, fingerprint=checkpoint.fingerprint | {"data": "0" * 64})
    with pytest.raises(UsageError) as err:
        ex.load_data(config, other)
    message = str(err.value)
    assert "split with the first seed of finetune's --seed/--seeds (no seed from the " in message
    assert "checkpoint's 6 down to 0 gives it; pass --seed N)" in message


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


def _old_pair(tmp_path: Path, int8_export) -> tuple[ex.ExportConfig, Path, rx.ExportReport]:  # type: ignore[no-untyped-def]
    """An earlier export's pair at tmp_path/m.onnx (+ .json), a new file to put in its place,
    and the config that replaces them (--force)."""
    report, config = int8_export[0], int8_export[1]
    out = tmp_path / "m.onnx"
    out.write_bytes(b"old model")
    rx.report_path(out).write_text('{"schema": "emobench.export", "old": true}\n')
    final = tmp_path / "made" / "new.onnx"
    final.parent.mkdir()
    final.write_bytes(b"new model, longer")
    return dataclasses.replace(config, out=out, force=True), final, report


def _failing_rename(monkeypatch: pytest.MonkeyPatch, onto: Path) -> None:
    """os.replace fails (disk full) when it renames a temporary file onto `onto`."""
    real = os.replace

    def replace(src, dst) -> None:  # type: ignore[no-untyped-def]
        if Path(dst) == onto and Path(src).name.endswith(".tmp"):
            raise OSError(28, "No space left on device")
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)


def test_written_outputs_record_the_files_sha256_and_size(tmp_path: Path, int8_export) -> None:  # type: ignore[no-untyped-def]
    config, final, report = _old_pair(tmp_path, int8_export)
    written = ex.write_outputs(config, final, report)
    data = final.read_bytes()
    assert config.out.read_bytes() == data
    assert written.out_sha256 == hashlib.sha256(data).hexdigest()
    assert written.out_file_bytes == len(data)
    assert rx.load(config.report) == written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.json", "made"]


def test_a_failed_report_rename_leaves_no_old_report_beside_the_new_file(
    tmp_path: Path, int8_export, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    config, final, report = _old_pair(tmp_path, int8_export)
    _failing_rename(monkeypatch, config.report)
    with pytest.raises(MeasurementError, match="No space left on device"):
        ex.write_outputs(config, final, report)
    # the new file is in place; the old report, which describes the old file, is gone
    assert config.out.read_bytes() == final.read_bytes()
    assert not config.report.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "made"]


def test_a_failed_file_rename_keeps_the_old_pair(
    tmp_path: Path, int8_export, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    config, final, report = _old_pair(tmp_path, int8_export)
    old_report = config.report.read_text()
    _failing_rename(monkeypatch, config.out)
    with pytest.raises(MeasurementError, match="No space left on device"):
        ex.write_outputs(config, final, report)
    assert config.out.read_bytes() == b"old model" and config.report.read_text() == old_report
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.json", "made"]


def test_export_refuses_at_once_without_onnx(
    tmp_path: Path,
    checkpoint: tuple[Path, object],
    fer_csv: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    def not_yet(path: Path) -> None:
        raise AssertionError("the checkpoint was read before onnx was checked")

    monkeypatch.setitem(sys.modules, "onnx", None)
    monkeypatch.setattr(ex, "read_checkpoint", not_yet)
    out = tmp_path / "m.onnx"
    with pytest.raises(UsageError, match="needs the onnxruntime package"):
        ex.run_export(ex.ExportConfig(checkpoint[0], fer_csv, out), build=small_cnn)
    assert list(tmp_path.iterdir()) == []


def test_a_checkpoint_of_another_model_is_refused(
    tmp_path: Path, checkpoint: tuple[Path, object]
) -> None:
    loaded = ex.read_checkpoint(checkpoint[0])
    other = dataclasses.replace(loaded, weights={"w": torch.zeros(1)})
    with pytest.raises(UsageError, match=r"does not fit the resnet18 direct48 model \(its tensors"):
        ex.build_model(other, 7, small_cnn)
