"""Fine-tuning: labelled data and splits, the training loop, paired statistics, checkpoints,
the `finetune` command and the trade-off report. Tiny models, a few hundred images."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from emobench.data.labeled import (
    FER2013_CLASSES,
    load_labeled,
    synthetic_labeled,
    write_fer_csv,
    write_image_folder,
)
from emobench.errors import DataError, UsageError


@pytest.fixture(scope="module")
def synthetic() -> tuple[np.ndarray, np.ndarray]:
    return synthetic_labeled(280, seed=3)


@pytest.fixture(scope="module")
def fer_csv(
    tmp_path_factory: pytest.TempPathFactory, synthetic: tuple[np.ndarray, np.ndarray]
) -> Path:
    images, labels = synthetic
    path = tmp_path_factory.mktemp("fer") / "fer.csv"
    usage = ["Training"] * 196 + ["PublicTest"] * 42 + ["PrivateTest"] * 42
    write_fer_csv(path, images, labels, usage)
    return path


# -- data -------------------------------------------------------------------------------------


def test_fer_csv_usage_names_the_splits(fer_csv: Path) -> None:
    data = load_labeled(fer_csv)
    assert data.class_names == list(FER2013_CLASSES)
    assert (len(data.train.labels), len(data.val.labels), len(data.test.labels)) == (196, 42, 42)
    assert data.val.source == "Usage=PublicTest" and data.test.source == "Usage=PrivateTest"
    assert data.split_method == "given" and data.split_seed is None
    _, labels = synthetic_labeled(280, seed=3)
    assert data.test.labels.tolist() == labels[238:].tolist()


def test_folder_without_splits_is_split_stratified_and_seeded(tmp_path: Path) -> None:
    images, labels = synthetic_labeled(140, seed=4)  # 20 per class
    names = ["a", "b", "c", "d", "e", "f", "g"]
    write_image_folder(tmp_path, images, labels, names)
    data = load_labeled(tmp_path, seed=5)
    assert data.class_names == names and data.split_method == "stratified"
    assert data.split_seed == 5
    counts = data.summary()["counts"]
    assert counts["test"] == counts["val"] == [2] * 7  # type: ignore[index]
    assert counts["train"] == [16] * 7  # type: ignore[index]
    again = load_labeled(tmp_path, seed=5)
    assert np.array_equal(again.test.images, data.test.images)


def test_folder_with_given_splits(tmp_path: Path, synthetic: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = synthetic
    names = list(FER2013_CLASSES)
    for split, sl in (
        ("train", slice(0, 140)),
        ("val", slice(140, 210)),
        ("test", slice(210, 280)),
    ):
        write_image_folder(tmp_path / split, images[sl], labels[sl], names)
    data = load_labeled(tmp_path)
    assert data.split_method == "given" and data.test.source == "test/"
    assert len(data.test.labels) == 70
    assert data.class_names == sorted(names)


def _csv(path: Path, rows: list[str], header: str = "emotion,pixels") -> Path:
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


PIX = " ".join(["7"] * 2304)


@pytest.mark.parametrize(
    ("rows", "header", "needle"),
    [
        ([f"9,{PIX}"], "emotion,pixels", "line 2 has emotion '9'"),
        ([f"x,{PIX}"], "emotion,pixels", "line 2 has emotion 'x'"),
        ([f"0,{' '.join(['7'] * 100)}"], "emotion,pixels", "line 2 has 100 pixel values"),
        ([f"0,{PIX},Training"], "emotion,pixels,Usage", "the val split (Usage=PublicTest)"),
        ([f"0,{PIX},Bogus"], "emotion,pixels,Usage", "line 2 has Usage 'Bogus'"),
        ([f"{i % 6},{PIX}" for i in range(60)], "emotion,pixels", "class 'neutral'"),
        ([PIX], "pixels", "no 'emotion' column"),
    ],
)
def test_bad_csv_is_one_data_error_naming_the_row(
    tmp_path: Path, rows: list[str], header: str, needle: str
) -> None:
    with pytest.raises(DataError) as err:
        load_labeled(_csv(tmp_path / "bad.csv", rows, header))
    assert needle in str(err.value) and "bad.csv" in str(err.value)


def test_wrong_size_image_and_empty_class_name_the_file(tmp_path: Path) -> None:
    from PIL import Image

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        Image.new("L", (48, 48)).save(tmp_path / name / "ok.png")
    Image.new("L", (64, 48)).save(tmp_path / "b" / "big.png")
    with pytest.raises(DataError, match=r"big\.png: image is 64x48, expected 48x48"):
        load_labeled(tmp_path)
    (tmp_path / "b" / "big.png").unlink()
    (tmp_path / "c").mkdir()
    with pytest.raises(DataError, match="class 'c' has no images"):
        load_labeled(tmp_path)


# -- training -----------------------------------------------------------------------------------

import torch  # noqa: E402
from torch import nn  # noqa: E402

from emobench.models import PIPELINES, EmotionNet  # noqa: E402
from emobench.results.finetune import verdict_sentence  # noqa: E402
from emobench.scenarios.finetune import (  # noqa: E402
    FinetuneConfig,
    confusion_matrix,
    macro_f1,
    mcnemar_exact,
    paired_comparison,
    run_finetune,
)
from tests.conftest import as_emotion_net  # noqa: E402

CPU = torch.device("cpu")


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> object:
    """One intra-op thread: on a shared 2-core machine more only adds contention."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def small_cnn(
    backbone: str,
    pipeline: str,
    num_classes: int = 7,
    pretrained: bool = False,
    freeze_backbone: bool = False,
) -> EmotionNet:
    """A pooled-pixels MLP with the real input size: learns the synthetic classes in seconds."""
    size = PIPELINES[pipeline]
    body = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=size // 12, padding=1),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(32, 32),
        nn.ReLU(),
    )
    return as_emotion_net(body, nn.Linear(32, num_classes), backbone, pipeline, freeze_backbone)


def _config(tmp_path: Path, **kw: object) -> FinetuneConfig:
    base: dict[str, object] = dict(
        data="synthetic",
        device="cpu",
        epochs=5,
        batch_size=16,
        workers=0,
        optimizer="adamw",
        lr=0.01,
        pretrained=False,
        checkpoint_dir=str(tmp_path / "ck"),
        measure_memory=False,
    )
    return FinetuneConfig(**(base | kw))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def fer_data(fer_csv: Path):  # type: ignore[no-untyped-def]
    return load_labeled(fer_csv)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, fer_data):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("trained")
    config = _config(tmp, target_acc=0.5, measure_memory=True)
    return run_finetune(config, fer_data, CPU, build=small_cnn), tmp


def test_both_pipelines_learn_well_above_chance(trained) -> None:  # type: ignore[no-untyped-def]
    report, _ = trained
    assert report.kind == "finetune" and report.finetune is not None
    runs = {r.pipeline: r for r in report.finetune.runs}
    assert set(runs) == {"upscale224", "direct48"}
    for run in runs.values():
        chance = 1 / 7
        assert run.test.accuracy > 4 * chance, run.pipeline
        assert run.best_val_accuracy > 4 * chance
        assert len(run.epochs) == 5 and [e.epoch for e in run.epochs] == [1, 2, 3, 4, 5]
        assert run.epochs[-1].train_loss < run.epochs[0].train_loss
        assert run.test.images == 42 and run.test.split == "Usage=PrivateTest"
        assert sum(map(sum, run.test.confusion)) == 42
        correct = sum(run.test.confusion[i][i] for i in range(7))
        assert correct / 42 == pytest.approx(run.test.accuracy)
        assert run.best_epoch == max(run.epochs, key=lambda e: e.val_accuracy).epoch
        e = run.epochs[0]
        assert 0 < e.data_s + e.preprocess_s + e.step_s <= e.train_s
        assert e.images_per_s == pytest.approx(196 / e.train_s)
        assert run.test.latency_b1_ms is not None and run.test.latency_b1_ms > 0
        assert run.train_peak is not None and run.train_peak.tensor_peak_bytes
        assert run.epoch_to_target is not None and run.time_to_target_s is not None
        reached = next(x.epoch for x in run.epochs if x.val_accuracy >= 0.5)
        assert run.epoch_to_target == reached
        assert run.transfer["source"] == "random"
    # upscale224 activations are 224x224: its step's live tensors are larger
    up, dn = runs["upscale224"].train_peak, runs["direct48"].train_peak
    assert up and dn and up.tensor_peak_bytes and dn.tensor_peak_bytes
    assert up.tensor_peak_bytes > dn.tensor_peak_bytes
    paired = report.finetune.paired[0]
    up_pred = np.asarray(runs["upscale224"].test.predictions)
    dn_pred = np.asarray(runs["direct48"].test.predictions)
    labels = np.asarray(report.finetune.test_labels)
    assert paired.accuracy_diff_points == pytest.approx(
        100 * ((dn_pred == labels).mean() - (up_pred == labels).mean())
    )
    assert paired.ci_low_points <= paired.accuracy_diff_points <= paired.ci_high_points


def test_checkpoints_load_with_weights_only(trained) -> None:  # type: ignore[no-untyped-def]
    report, _ = trained
    for run in report.finetune.runs:
        best = torch.load(run.checkpoint_best, weights_only=True)
        last = torch.load(run.checkpoint_last, weights_only=True)
        model = small_cnn("resnet18", run.pipeline)
        model.load_state_dict(best)
        model.load_state_dict(last)


def test_report_round_trips_through_json(trained, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from emobench import results as R

    report, _ = trained
    path = tmp_path / "ft.json"
    R.save(report, path)
    again = R.load(path)
    assert again.kind == "finetune" and again.finetune == report.finetune


# -- statistics ---------------------------------------------------------------------------------


def test_mcnemar_matches_a_hand_computed_case() -> None:
    # 2 vs 8 discordant pairs: p = 2 * P(X <= 2 | n=10, 1/2) = 2 * (1 + 10 + 45) / 1024
    assert mcnemar_exact(2, 8) == pytest.approx(112 / 1024)
    assert mcnemar_exact(8, 2) == pytest.approx(112 / 1024)
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(0, 6) == pytest.approx(2 / 64)


def test_paired_comparison_counts_discordant_pairs() -> None:
    labels = np.zeros(20, dtype=np.int64)
    up = np.zeros(20, dtype=np.int64)
    dn = np.zeros(20, dtype=np.int64)
    up[:8] = 1  # upscale224 wrong on 8 images, direct48 wrong on 2 others
    dn[8:10] = 1
    p = paired_comparison(labels, up, dn, seed=0)
    assert (p.only_upscale_right, p.only_direct_right) == (2, 8)
    assert p.accuracy_diff_points == pytest.approx(30.0)
    assert p.mcnemar_p == pytest.approx(112 / 1024)
    assert p.ci_low_points < 30.0 < p.ci_high_points
    assert not p.significant
    assert "not significant" in verdict_sentence([p])
    up[10:18] = 1  # now 16 vs 0: significant
    p2 = paired_comparison(labels, up, dn, seed=0)
    assert p2.mcnemar_p == pytest.approx(2 * (1 + 18 + 153) / 2**18) and p2.significant
    assert verdict_sentence([p2]).startswith("direct48 is 70.0 points more accurate")


def test_macro_f1_by_hand() -> None:
    labels = np.array([0, 0, 1, 1])
    pred = np.array([0, 1, 1, 1])
    cm = confusion_matrix(labels, pred, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [0, 0, 0]]
    # class 0: P=1, R=.5, F1=2/3; class 1: P=2/3, R=1, F1=.8; class 2 absent
    assert macro_f1(cm) == pytest.approx((2 / 3 + 0.8) / 2)


# -- checkpoints and resume ---------------------------------------------------------------------


class _Interrupt:
    """A progress callback that raises KeyboardInterrupt in the middle of one epoch."""

    def __init__(self, pipeline: str | None = None, epoch: int = 0) -> None:
        self.pipeline, self.epoch = pipeline, epoch
        self.seen: list[tuple[str, int]] = []

    def __call__(self, pipeline: str, seed: int, epoch: int, *rest: object) -> None:
        if (pipeline, epoch) not in self.seen:
            self.seen.append((pipeline, epoch))
        if pipeline == self.pipeline and epoch == self.epoch:
            raise KeyboardInterrupt


def test_resume_redoes_only_the_interrupted_epoch(tmp_path: Path, fer_data) -> None:  # type: ignore[no-untyped-def]
    config = _config(tmp_path / "a", epochs=3)
    crash = _Interrupt("upscale224", epoch=3)
    with pytest.raises(KeyboardInterrupt):
        run_finetune(config, fer_data, CPU, build=small_cnn, progress=crash)
    assert crash.seen == [("upscale224", 1), ("upscale224", 2), ("upscale224", 3)]
    state = torch.load(tmp_path / "a" / "ck" / "upscale224-seed0-state.pt", weights_only=True)
    assert len(state["history"]) == 2

    again = _Interrupt()
    resumed = run_finetune(
        dataclasses.replace(config, resume=True), fer_data, CPU, build=small_cnn, progress=again
    )
    assert again.seen == [("upscale224", 3), ("direct48", 1), ("direct48", 2), ("direct48", 3)]
    runs = {r.pipeline: r for r in resumed.finetune.runs}  # type: ignore[union-attr]
    assert runs["upscale224"].resumed_from_epoch == 2 and runs["direct48"].resumed_from_epoch == 0
    assert [e.epoch for e in runs["upscale224"].epochs] == [1, 2, 3]
    assert any("resumed" in n for n in resumed.notes)

    # nothing lost: the same weights and scores as a run that was never interrupted
    straight = run_finetune(_config(tmp_path / "b", epochs=3), fer_data, CPU, build=small_cnn)
    for a, b in zip(resumed.finetune.runs, straight.finetune.runs, strict=True):  # type: ignore[union-attr]
        assert a.test.predictions == b.test.predictions
        assert [e.train_loss for e in a.epochs] == pytest.approx([e.train_loss for e in b.epochs])
        wa = torch.load(a.checkpoint_last, weights_only=True)
        wb = torch.load(b.checkpoint_last, weights_only=True)
        assert all(torch.equal(wa[k], wb[k]) for k in wa)

    # a finished run resumes to the same report without training again
    done = _Interrupt()
    run_finetune(
        dataclasses.replace(config, resume=True), fer_data, CPU, build=small_cnn, progress=done
    )
    assert done.seen == []


def test_resume_refuses_another_recipe(tmp_path: Path, fer_data) -> None:  # type: ignore[no-untyped-def]
    config = _config(tmp_path, epochs=1, pipelines=("direct48",))
    run_finetune(config, fer_data, CPU, build=small_cnn)
    other = dataclasses.replace(config, resume=True, lr=0.5)
    with pytest.raises(UsageError, match="different recipe"):
        run_finetune(other, fer_data, CPU, build=small_cnn)


def test_seeds_repeat_the_fine_tune_and_report_spread(tmp_path: Path, fer_data) -> None:  # type: ignore[no-untyped-def]
    report = run_finetune(
        _config(tmp_path, epochs=2, seeds=2, seed=7), fer_data, CPU, build=small_cnn
    )
    ft = report.finetune
    assert ft is not None
    assert [(r.pipeline, r.seed) for r in ft.runs] == [
        ("upscale224", 7),
        ("direct48", 7),
        ("upscale224", 8),
        ("direct48", 8),
    ]
    assert [p.seed for p in ft.paired] == [7, 8]
    spread = {s.pipeline: s for s in ft.spread}
    accs = [r.test.accuracy for r in ft.runs_for("direct48")]
    assert spread["direct48"].seeds == 2
    assert spread["direct48"].accuracy_mean == pytest.approx(sum(accs) / 2)
    assert spread["direct48"].accuracy_std == pytest.approx(abs(accs[0] - accs[1]) / 2**0.5)
    assert report.config["seeds_used"] == [7, 8]


def test_bad_options_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="--optimizer rmsprop"):
        FinetuneConfig(optimizer="rmsprop")
    with pytest.raises(UsageError, match="--pipeline p224"):
        FinetuneConfig(pipelines=("p224",))
    with pytest.raises(UsageError, match="--target-acc"):
        FinetuneConfig(target_acc=70)


# -- the command, the trade-off report, claims --------------------------------------------------

from typer.testing import CliRunner  # noqa: E402

from emobench import results as R  # noqa: E402
from emobench.cli import app  # noqa: E402
from emobench.readout.tradeoff import build_tradeoff, pareto_front, training_speedup  # noqa: E402
from tests.factories import make_report  # noqa: E402

cli = CliRunner()
FT_ARGS = [
    "--backbone", "resnet18", "--device", "cpu", "--epochs", "3", "--batch-size", "16",
    "--workers", "0", "--optimizer", "adamw", "--lr", "0.01", "--no-pretrained",
]  # fmt: skip


@pytest.fixture
def small_models(monkeypatch: pytest.MonkeyPatch) -> None:
    import emobench.scenarios.finetune.run as ft_run

    monkeypatch.setattr(ft_run, "build_model", small_cnn)


@pytest.fixture(scope="module")
def ft_report(tmp_path_factory: pytest.TempPathFactory, fer_csv: Path) -> Path:
    import emobench.scenarios.finetune.run as ft_run

    tmp = tmp_path_factory.mktemp("cli")
    out = tmp / "ft.json"
    mp = pytest.MonkeyPatch()
    mp.setattr(ft_run, "build_model", small_cnn)  # run_finetune looks it up there, at call time
    try:
        result = cli.invoke(
            app,
            [
                "finetune",
                "--data",
                str(fer_csv),
                *FT_ARGS,
                "--target-acc",
                "0.3",
                "--checkpoint-dir",
                str(tmp / "ck"),
                "--out",
                str(out),
            ],
        )
    finally:
        mp.undo()
    assert result.exit_code == 0, result.output
    assert "report written to" in result.output
    assert "epoch 3/3: loss" in result.output  # plain progress lines: not a terminal
    assert "fine-tune on cpu" in result.output
    assert "Usage=PublicTest" in result.output and "Usage=PrivateTest" in result.output
    return out


def test_finetune_command_writes_a_finetune_report(ft_report: Path) -> None:
    rep = R.load(ft_report)
    assert rep.kind == "finetune" and rep.finetune is not None
    assert rep.config["pretrained"] is False and rep.config["optimizer"] == "adamw"
    assert rep.config["seeds_used"] == [0]
    assert len(rep.finetune.runs) == 2 and len(rep.finetune.paired) == 1
    assert all(r.test.accuracy > 2 / 7 for r in rep.finetune.runs)
    assert all(Path(r.checkpoint_best).exists() for r in rep.finetune.runs)


@pytest.mark.parametrize(
    ("rows", "needle"),
    [
        ([f"9,{PIX}"], "line 2 has emotion '9'"),
        ([f"0,{' '.join(['7'] * 10)}"], "line 2 has 10 pixel values"),
    ],
)
def test_bad_data_is_one_error_line_exit_2_nothing_written(
    tmp_path: Path, rows: list[str], needle: str, small_models: None
) -> None:
    bad = _csv(tmp_path / "bad.csv", rows)
    out = tmp_path / "r.json"
    result = cli.invoke(app, ["finetune", "--data", str(bad), *FT_ARGS, "--out", str(out)])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]
    assert not out.exists() and not (tmp_path / "results").exists()


def test_bad_option_fails_before_reading_data(tmp_path: Path) -> None:
    result = cli.invoke(
        app, ["finetune", "--data", str(tmp_path / "missing.csv"), "--optimizer", "rmsprop"]
    )
    assert result.exit_code == 2 and "error: --optimizer rmsprop" in result.output


def test_report_prints_the_tradeoff_table(ft_report: Path, tmp_path: Path) -> None:
    compare = tmp_path / "cmp.json"
    R.save(make_report(backbones=("resnet18",)), compare)
    md, csv_out, png = tmp_path / "t.md", tmp_path / "t.csv", tmp_path / "t.png"
    args = ["report", str(ft_report), str(compare), "--markdown", str(md), "--csv", str(csv_out)]
    result = cli.invoke(app, [*args, "--plot", str(png)])
    assert result.exit_code == 0, result.output
    assert "speed against accuracy" in result.output
    assert "direct48" in result.output and "resnet18" in result.output
    text = md.read_text()
    assert "| resnet18 | direct48" in text and "Pareto" in text
    assert png.stat().st_size > 10_000

    loaded = [(ft_report, R.load(ft_report)), (compare, R.load(compare))]
    rows = {r.pipeline: r for r in build_tradeoff(loaded).rows}
    ft = loaded[0][1].finetune
    assert ft is not None
    assert rows["direct48"].values["accuracy"] == ft.runs_for("direct48")[0].test.accuracy
    # latency comes from the compare report (median of TIGHT_DN), not the fine-tune's own
    assert rows["direct48"].values["latency_b1_ms"] == pytest.approx(10.0, abs=0.05)
    assert rows["direct48"].sources["latency_b1_ms"].startswith("cmp.json")
    assert rows["upscale224"].values["params"] == 134_289_223
    assert (
        rows["direct48"].values["train_s_per_epoch"] == ft.runs_for("direct48")[0].train_s_per_epoch
    )


def test_pareto_front() -> None:
    # (cost, accuracy): the second is dominated by the first; ties on both are both kept
    points = [(1.0, 0.8), (2.0, 0.7), (3.0, 0.9), (3.0, 0.9), (0.5, 0.5)]
    assert pareto_front(points) == [True, False, True, True, True]


def test_claims_checks_training_speed_from_a_finetune_report(ft_report: Path) -> None:
    rep = R.load(ft_report)
    speed = training_speedup(rep)["resnet18"]
    ft = rep.finetune
    assert ft is not None
    up, dn = (ft.runs_for(p)[0].train_s_per_epoch for p in ("upscale224", "direct48"))
    assert speed == pytest.approx(up / dn)
    result = cli.invoke(app, ["claims", str(ft_report)])
    assert result.exit_code == 0, result.output
    assert "training 5-10x faster per epoch" in result.output
    expected = "holds" if speed >= 4.5 else "does not hold"
    assert expected in result.output


def test_freeze_backbone_trains_only_the_head(tmp_path: Path, fer_data) -> None:  # type: ignore[no-untyped-def]
    config = _config(tmp_path, epochs=1, pipelines=("direct48",), freeze_backbone=True)
    report = run_finetune(config, fer_data, CPU, build=small_cnn)
    run = report.finetune.runs[0]  # type: ignore[union-attr]
    assert run.params_trainable == 32 * 7 + 7  # the head's Linear(32, 7)
    assert run.params_total > run.params_trainable
    torch.manual_seed(0)  # the seed the run built its model with
    first = small_cnn("resnet18", "direct48")
    last = torch.load(run.checkpoint_last, weights_only=True)
    assert torch.equal(last["backbone.0.weight"], first.state_dict()["backbone.0.weight"])
    assert not torch.equal(last["head.weight"], first.state_dict()["head.weight"])


def test_tradeoff_takes_max_batch_from_a_maxbatch_report(ft_report: Path) -> None:
    from tests.factories import maxbatch_report

    mb = maxbatch_report(250, 6000)
    mb = dataclasses.replace(
        mb, maxbatch=[dataclasses.replace(m, backbone="resnet18") for m in mb.maxbatch]
    )
    loaded = [(Path("mb.json"), mb), (ft_report, R.load(ft_report))]
    rows = {r.pipeline: r for r in build_tradeoff(loaded).rows}
    assert rows["upscale224"].values["max_batch"] == 250
    assert rows["direct48"].values["max_batch"] == 6000
    assert rows["direct48"].sources["max_batch"] == "mb.json (infer)"
    # without a compare report, latency and parameters are the fine-tune's own
    ft = R.load(ft_report).finetune
    assert ft is not None
    run = ft.runs_for("direct48")[0]
    assert rows["direct48"].values["latency_b1_ms"] == run.test.latency_b1_ms
    assert rows["direct48"].values["params"] == run.params_total


def test_image_folder_fine_tune_learns(tmp_path: Path) -> None:
    images, labels = synthetic_labeled(280, seed=9)
    names = [f"c{i}" for i in range(7)]
    write_image_folder(tmp_path / "faces", images, labels, names)
    data = load_labeled(tmp_path / "faces", seed=2, val_fraction=0.15, test_fraction=0.15)
    assert data.test.source == "test: stratified 15% (seed 2)"
    report = run_finetune(
        _config(tmp_path, epochs=6, pipelines=("direct48",)), data, CPU, build=small_cnn
    )
    run = report.finetune.runs[0]  # type: ignore[union-attr]
    assert run.test.images == 42 and run.test.accuracy > 4 / 7
    assert report.finetune.data["class_names"] == names  # type: ignore[union-attr]
    assert report.finetune.paired == []  # type: ignore[union-attr]
