"""The fine-tune scenario: the training loop learns, checkpoints load with weights_only, resume,
seeds, paired comparison, bad recipes refused. Tiny models, a few hundred images."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

# -- data -------------------------------------------------------------------------------------
# -- training -----------------------------------------------------------------------------------
import torch

from emobench import results as R
from emobench.data.labeled import (
    load_labeled,
    synthetic_labeled,
    write_image_folder,
)
from emobench.errors import UsageError
from emobench.results.finetune import verdict_sentence
from emobench.scenarios.finetune import (
    FinetuneConfig,
    paired_comparison,
    run_finetune,
)
from tests.conftest import small_cnn

CPU = torch.device("cpu")


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> object:
    """One intra-op thread: on a shared 2-core machine more only adds contention."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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

    report, _ = trained
    path = tmp_path / "ft.json"
    R.save(report, path)
    again = R.load(path)
    assert again.kind == "finetune" and again.finetune == report.finetune


# -- statistics ---------------------------------------------------------------------------------


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
