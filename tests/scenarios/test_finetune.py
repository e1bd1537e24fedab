"""The fine-tune scenario: the training loop learns, checkpoints load with weights_only, resume,
seeds, paired comparison, bad recipes refused. Tiny models, a few hundred images."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
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
        model.load_state_dict(best["weights"])
        model.load_state_dict(last["weights"])
        assert (best["kind"], best["epoch"]) == ("best", run.best_epoch)
        assert (last["kind"], last["epoch"]) == ("last", 5)
        fingerprint = last["fingerprint"]
        assert fingerprint["pipeline"] == run.pipeline and fingerprint["seed"] == 0
        assert fingerprint["data"] == report.finetune.data["sha256"]
        assert best["fingerprint"] == fingerprint


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
        wa = torch.load(a.checkpoint_last, weights_only=True)["weights"]
        wb = torch.load(b.checkpoint_last, weights_only=True)["weights"]
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
    with pytest.raises(UsageError, match=r"another run's checkpoint: written for --lr 0\.01 "):
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
    last = torch.load(run.checkpoint_last, weights_only=True)["weights"]
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


# -- checkpoints prove they are this run's (issue #26) -------------------------------------------


@pytest.fixture(scope="module")
def two_epochs(tmp_path_factory: pytest.TempPathFactory, fer_data):  # type: ignore[no-untyped-def]
    """A finished two-epoch run of both pipelines: its config and checkpoint folder."""
    tmp = tmp_path_factory.mktemp("two-epochs")
    config = _config(tmp, epochs=2, measure_memory=False)
    run_finetune(config, fer_data, CPU, build=small_cnn)
    return config, Path(config.checkpoint_dir)


def _copy_run(two_epochs, tmp_path: Path, **changes: object):  # type: ignore[no-untyped-def]
    import shutil

    config, folder = two_epochs
    mine = tmp_path / "ck"
    shutil.copytree(folder, mine)
    return dataclasses.replace(config, checkpoint_dir=str(mine), resume=True, **changes), mine


def _swap_pipeline(ck: Path) -> None:
    """direct48's checkpoints copied under upscale224's names (the shapes fit small_cnn)."""
    for kind in ("best", "last", "state"):
        data = (ck / f"direct48-seed0-{kind}.pt").read_bytes()
        (ck / f"upscale224-seed0-{kind}.pt").write_bytes(data)


def _truncate(ck: Path) -> None:
    path = ck / "upscale224-seed0-state.pt"
    path.write_bytes(path.read_bytes()[:500])


def _older_last(ck: Path) -> None:
    """last.pt of epoch 1 beside state.pt of epoch 2 (files from two moments)."""
    last = torch.load(ck / "upscale224-seed0-last.pt", weights_only=True)
    torch.save(last | {"epoch": 1}, ck / "upscale224-seed0-last.pt")


def _last_as_best(ck: Path) -> None:
    (ck / "upscale224-seed0-best.pt").write_bytes((ck / "upscale224-seed0-last.pt").read_bytes())


def _old_format(ck: Path) -> None:
    """A bare state dict, as emobench wrote before checkpoints carried a fingerprint."""
    last = torch.load(ck / "upscale224-seed0-last.pt", weights_only=True)
    torch.save(last["weights"], ck / "upscale224-seed0-last.pt")


def _wrong_shapes(ck: Path) -> None:
    last = torch.load(ck / "upscale224-seed0-last.pt", weights_only=True)
    weights = {k: torch.zeros(3) for k in last["weights"]}
    torch.save(last | {"weights": weights}, ck / "upscale224-seed0-last.pt")


def _no_state(ck: Path) -> None:
    (ck / "upscale224-seed0-state.pt").unlink()


def _folder_state(ck: Path) -> None:
    (ck / "upscale224-seed0-state.pt").unlink()
    (ck / "upscale224-seed0-state.pt").mkdir()


def _text_state(ck: Path) -> None:
    (ck / "upscale224-seed0-state.pt").write_text("epoch = 2\n")


def _empty_best(ck: Path) -> None:
    """An empty file: torch.load raised EOFError, which click turned into 'error: aborted'."""
    (ck / "upscale224-seed0-best.pt").write_bytes(b"")


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        (_swap_pipeline, "upscale224-seed0-state.pt: is another run's checkpoint: written for "
         "pipeline 'direct48' (this run: 'upscale224')"),
        (_truncate, "upscale224-seed0-state.pt: not a readable checkpoint (RuntimeError"),
        (_text_state, "upscale224-seed0-state.pt: not a readable checkpoint"),
        (_empty_best, "upscale224-seed0-best.pt: not a readable checkpoint"),
        (_folder_state, "upscale224-seed0-state.pt: is a folder, expected a regular file"),
        (_older_last, "upscale224-seed0-last.pt: is of epoch 1, but upscale224-seed0-state.pt "
         "expects epoch 2"),
        (_last_as_best, "upscale224-seed0-best.pt: holds a 'last' checkpoint"),
        (_old_format, "upscale224-seed0-last.pt: not a checkpoint of this emobench"),
        (_no_state, "has no upscale224-seed0-state.pt beside it: an incomplete checkpoint set"),
    ],
    ids=lambda v: v.__name__.lstrip("_") if callable(v) else "",
)  # fmt: skip
def test_resume_refuses_a_damaged_or_foreign_checkpoint_before_training(
    two_epochs, fer_data, tmp_path: Path, damage, needle: str
) -> None:  # type: ignore[no-untyped-def]
    config, ck = _copy_run(two_epochs, tmp_path, epochs=2)
    damage(ck)
    watch = _Interrupt()
    with pytest.raises(UsageError) as err:
        run_finetune(config, fer_data, CPU, build=small_cnn, progress=watch)
    message = str(err.value)
    assert needle in message and "\n" not in message
    assert message.startswith("--resume: ") and "--force" in message
    assert watch.seen == []  # refused before any epoch


def test_resume_refuses_weights_that_do_not_fit_the_model(  # type: ignore[no-untyped-def]
    two_epochs, fer_data, tmp_path: Path
) -> None:
    config, ck = _copy_run(two_epochs, tmp_path)
    _wrong_shapes(ck)
    with pytest.raises(UsageError, match=r"last\.pt: does not fit this model \(RuntimeError"):
        run_finetune(config, fer_data, CPU, build=small_cnn)


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"seed": 1}, "no checkpoint to resume"),  # other seeds are other files
        ({"backbone": "vgg16"}, "written for backbone 'resnet18' (this run: 'vgg16')"),
        ({"label_smoothing": 0.1}, "written for --label-smoothing 0.0 (this run: 0.1)"),
        ({"epochs": 3}, "written for --epochs 2 (this run: 3)"),
    ],
)
def test_resume_names_the_first_setting_that_differs(  # type: ignore[no-untyped-def]
    two_epochs, fer_data, tmp_path: Path, changes: dict[str, object], needle: str
) -> None:
    config, _ = _copy_run(two_epochs, tmp_path, **changes)
    with pytest.raises(UsageError) as err:
        run_finetune(config, fer_data, CPU, build=small_cnn)
    assert needle in str(err.value)


def test_resume_refuses_checkpoints_of_other_data(two_epochs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    images, labels = synthetic_labeled(280, seed=11)  # same shape, other pixels
    from emobench.data.labeled import write_fer_csv

    usage = ["Training"] * 196 + ["PublicTest"] * 42 + ["PrivateTest"] * 42
    write_fer_csv(tmp_path / "other.csv", images, labels, usage)
    config, _ = _copy_run(two_epochs, tmp_path)
    with pytest.raises(UsageError, match="written for other data"):
        run_finetune(config, load_labeled(tmp_path / "other.csv"), CPU, build=small_cnn)


def test_resume_without_checkpoints_is_refused(tmp_path: Path, fer_data) -> None:  # type: ignore[no-untyped-def]
    config = _config(tmp_path, epochs=1, resume=True)
    with pytest.raises(UsageError, match=r"--resume: no checkpoint to resume in .*ck; run without"):
        run_finetune(config, fer_data, CPU, build=small_cnn)


def test_the_recipe_hash_includes_the_pipeline() -> None:
    from emobench.scenarios.finetune.settings import fingerprint, recipe_hash

    config = FinetuneConfig()
    assert recipe_hash(config, "upscale224") != recipe_hash(config, "direct48")
    up, dn = (fingerprint(config, p, 0, "d" * 64) for p in ("upscale224", "direct48"))
    assert up["pipeline"] == "upscale224" and up["recipe"] != dn["recipe"]
    # a default learning rate and the same rate given are one recipe
    assert recipe_hash(FinetuneConfig(lr=0.01), "direct48") == recipe_hash(config, "direct48")


def test_the_default_checkpoint_folder_is_keyed_by_data_and_recipe() -> None:
    from emobench.scenarios.finetune.settings import default_checkpoint_dir

    config = FinetuneConfig(backbone="resnet18")
    base = default_checkpoint_dir(config, Path("data/fer.csv"), "a" * 64)
    assert base.parent == Path("results/finetune") and base.name.startswith("resnet18-fer-")
    assert len(base.name.rsplit("-", 1)[1]) == 12
    assert default_checkpoint_dir(config, Path("data/fer.csv"), "a" * 64) == base
    assert default_checkpoint_dir(config, Path("data/fer.csv"), "b" * 64) != base
    other_lr = dataclasses.replace(config, lr=0.02)
    assert default_checkpoint_dir(other_lr, Path("data/fer.csv"), "a" * 64) != base
    # both pipelines and every seed share the folder: their files are named apart
    one = dataclasses.replace(config, pipelines=("direct48",), seed=3)
    assert default_checkpoint_dir(one, Path("data/fer.csv"), "a" * 64) == base
    plugin = FinetuneConfig(backbone="my.models:tiny")
    assert default_checkpoint_dir(plugin, Path("faces/"), "a" * 64).name.startswith(
        "my.models-tiny-faces-"
    )


def test_the_data_hash_is_of_the_content(fer_csv: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "renamed.csv"
    shutil.copy(fer_csv, copy)
    assert load_labeled(copy).content_sha256() == load_labeled(fer_csv).content_sha256()
    images, labels = synthetic_labeled(280, seed=3)
    names = [f"c{i}" for i in range(7)]
    write_image_folder(tmp_path / "tree", images, labels, names)
    a = load_labeled(tmp_path / "tree", seed=0).content_sha256()
    assert load_labeled(tmp_path / "tree", seed=1).content_sha256() != a  # another split


# -- a checkpoint set is written whole or not at all ---------------------------------------------


def _saves(monkeypatch: pytest.MonkeyPatch, at: int, action) -> list[str]:  # type: ignore[no-untyped-def]
    """torch.save, with `action()` run after the `at`-th file (1-based) is written."""
    real = torch.save
    names: list[str] = []

    def save(obj, path, *args, **kwargs):  # type: ignore[no-untyped-def]
        real(obj, path, *args, **kwargs)
        names.append(str(obj.get("kind")) if isinstance(obj, dict) else "?")
        if len(names) == at:
            action()

    monkeypatch.setattr(torch, "save", save)
    return names


def _epochs_on_disk(ck: Path, pipeline: str = "direct48") -> tuple[int | None, int | None]:
    def epoch(kind: str) -> int | None:
        path = ck / f"{pipeline}-seed0-{kind}.pt"
        return torch.load(path, weights_only=True)["epoch"] if path.exists() else None

    return epoch("state"), epoch("last")


def test_an_exception_in_the_middle_of_a_save_keeps_the_previous_set(
    tmp_path: Path, fer_data, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    config = _config(tmp_path, epochs=2, pipelines=("direct48",), measure_memory=False)

    def interrupt() -> None:
        raise KeyboardInterrupt

    # epoch 1 writes state, best, last; epoch 2's second file is interrupted
    names = _saves(monkeypatch, at=5, action=interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_finetune(config, fer_data, CPU, build=small_cnn)
    assert names[:3] == ["state", "best", "last"]
    ck = Path(config.checkpoint_dir)
    assert sorted(p.name for p in ck.iterdir()) == [
        "direct48-seed0-best.pt",
        "direct48-seed0-last.pt",
        "direct48-seed0-state.pt",
    ]  # no temporary file left
    assert _epochs_on_disk(ck) == (1, 1)
    monkeypatch.undo()
    resumed = run_finetune(dataclasses.replace(config, resume=True), fer_data, CPU, build=small_cnn)
    assert resumed.finetune.runs[0].resumed_from_epoch == 1  # type: ignore[union-attr]


def test_an_interruption_in_the_first_save_leaves_no_checkpoint(
    tmp_path: Path, fer_data, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    config = _config(tmp_path, epochs=1, pipelines=("direct48",), measure_memory=False)

    def interrupt() -> None:
        raise KeyboardInterrupt

    _saves(monkeypatch, at=1, action=interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_finetune(config, fer_data, CPU, build=small_cnn)
    assert list(Path(config.checkpoint_dir).iterdir()) == []
    assert _epochs_on_disk(Path(config.checkpoint_dir)) == (None, None)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_in_the_middle_of_a_save_lands_after_the_whole_set(
    tmp_path: Path, fer_data, monkeypatch: pytest.MonkeyPatch, sigterm_guard: None, signum: int
) -> None:  # type: ignore[no-untyped-def]
    from emobench.cli.shell import sigterm_raises
    from emobench.errors import Terminated

    config = _config(tmp_path, epochs=3, pipelines=("direct48",), measure_memory=False)
    # epoch 2's first file is written, then the signal arrives
    names = _saves(monkeypatch, at=4, action=lambda: os.kill(os.getpid(), signum))
    expected = KeyboardInterrupt if signum == signal.SIGINT else Terminated
    with pytest.raises(expected), sigterm_raises():
        run_finetune(config, fer_data, CPU, build=small_cnn)
    ck = Path(config.checkpoint_dir)
    assert len(names) in (5, 6)  # epoch 2's set was finished (best only when it improved)
    assert _epochs_on_disk(ck) == (2, 2)
    assert not [p for p in ck.iterdir() if p.name.startswith(".")]


# -- a run that reaches its end writes its report --------------------------------------------------


class _Infinite(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * float("inf")


def diverging_cnn(backbone: str, pipeline: str, num_classes: int = 7, **_: object):  # type: ignore[no-untyped-def]
    """small_cnn whose logits are infinite: the loss is NaN from the first step."""
    from tests.conftest import as_emotion_net

    model = small_cnn(backbone, pipeline, num_classes)
    head = torch.nn.Sequential(model.head, _Infinite())
    return as_emotion_net(model.backbone, head, backbone, pipeline)


def test_a_diverged_run_still_writes_its_report(tmp_path: Path, fer_data) -> None:  # type: ignore[no-untyped-def]
    config = _config(tmp_path, epochs=2, pipelines=("direct48",), measure_memory=False)
    report = run_finetune(config, fer_data, CPU, build=diverging_cnn)
    run = report.finetune.runs[0]  # type: ignore[union-attr]
    assert [e.train_loss for e in run.epochs] == [None, None]
    assert 0 <= run.test.accuracy <= 1
    note = next(n for n in report.notes if "not finite" in n)
    assert note.startswith("direct48 seed 0: the training loss was not finite (nan) in epoch 1, 2")
    assert "recorded as null" in note and "--lr" in note
    path = tmp_path / "r.json"
    R.save(report, path)  # allow_nan=False: nothing non-finite is left
    again = R.load(path)
    assert again.finetune.runs[0].epochs[0].train_loss is None  # type: ignore[union-attr]


def test_any_non_finite_value_becomes_null_with_a_note(trained) -> None:  # type: ignore[no-untyped-def]
    from emobench.scenarios.finetune.run import finite_report

    report, _ = trained
    ft = report.finetune
    run = ft.runs[0]
    bad_test = dataclasses.replace(run.test, latency_b1_ms=float("inf"))
    bad = dataclasses.replace(
        report,
        finetune=dataclasses.replace(ft, runs=[dataclasses.replace(run, test=bad_test)]),
        config=report.config | {"learning_rate": float("nan")},
    )
    with pytest.raises(ValueError, match="JSON compliant"):
        R.to_json(bad)
    clean = finite_report(bad)
    assert clean.finetune.runs[0].test.latency_b1_ms is None
    assert clean.config["learning_rate"] is None
    latency = "finetune.runs[].test.latency_b1_ms: not finite (inf) in 1 place(s), recorded as null"
    assert latency in clean.notes
    assert any(n.startswith("config.learning_rate: not finite (nan)") for n in clean.notes)
    R.to_json(clean)
    assert finite_report(report) is report  # nothing to change: the same object


def test_a_checkpoint_that_cannot_be_written_is_one_error_and_no_temporary_file(
    tmp_path: Path, fer_data, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    import errno

    from emobench.errors import MeasurementError

    config = _config(tmp_path, epochs=2, pipelines=("direct48",), measure_memory=False)

    def disk_full() -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    _saves(monkeypatch, at=4, action=disk_full)  # epoch 2's first file
    with pytest.raises(MeasurementError) as err:
        run_finetune(config, fer_data, CPU, build=small_cnn)
    ck = Path(config.checkpoint_dir)
    assert str(err.value) == (
        f"{ck}: cannot write the checkpoints of epoch 2 (OSError: [Errno 28] No space left on "
        "device); the previous ones are intact"
    )
    assert len(list(ck.iterdir())) == 3 and _epochs_on_disk(ck) == (1, 1)


@pytest.mark.gpu
def test_a_cuda_fp16_run_resumes_from_its_checkpoints(tmp_path: Path, fer_data) -> None:  # type: ignore[no-untyped-def]
    """state.pt is loaded onto the device: its CPU RNG state must go back to the CPU."""
    cuda = torch.device("cuda")
    config = _config(tmp_path, epochs=2, pipelines=("direct48",), device="cuda", precision="fp16")
    crash = _Interrupt("direct48", epoch=2)
    with pytest.raises(KeyboardInterrupt):
        run_finetune(config, fer_data, cuda, build=small_cnn, progress=crash)
    again = dataclasses.replace(config, resume=True)
    resumed = run_finetune(again, fer_data, cuda, build=small_cnn)
    run = resumed.finetune.runs[0]  # type: ignore[union-attr]
    assert run.resumed_from_epoch == 1 and [e.epoch for e in run.epochs] == [1, 2]
    state = torch.load(Path(config.checkpoint_dir) / "direct48-seed0-state.pt", weights_only=True)
    assert state["epoch"] == 2 and state["scaler"]  # the fp16 GradScaler's state is kept


class _Stop(Exception):
    pass


def _no_build(*args: object, **kwargs: object) -> torch.nn.Module:
    raise _Stop  # the checks passed: training would start here


def test_run_finetune_refuses_bf16_before_sm_80(
    tmp_path: Path, fer_data, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """The scenario refuses it as compare's does, not only the command."""
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    monkeypatch.setattr(torch.cuda, "device", lambda device: contextlib.nullcontext())
    gpu = torch.device("cuda", 0)
    config = _config(tmp_path, device="cuda", precision="bf16")
    with pytest.raises(UsageError, match="Tesla T4 is sm_75; native bf16 needs sm_80"):
        run_finetune(config, fer_data, gpu, build=_no_build)
    assert not (tmp_path / "ck").exists()
    # --allow-emulated measures it anyway; fp16 is native on sm_75
    for allowed in (
        dataclasses.replace(config, allow_emulated=True),
        _config(tmp_path, device="cuda", precision="fp16"),
    ):
        with pytest.raises(_Stop):
            run_finetune(allowed, fer_data, gpu, build=_no_build)


def test_the_whole_fine_tune_runs_with_its_device_current(
    tmp_path: Path, fer_data, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """Every DataLoader iterator (its pin-memory thread pins for the device current when the
    iterator is made) and every step is made inside the device's scope."""
    from contextlib import contextmanager

    from torch.utils.data import DataLoader

    import emobench.scenarios.finetune.run as run_mod

    state = {"inside": False}
    scoped: list[torch.device] = []
    iterators: list[bool] = []

    @contextmanager
    def recording_scope(device: torch.device):  # type: ignore[no-untyped-def]
        scoped.append(device)
        state["inside"] = True
        try:
            yield
        finally:
            state["inside"] = False

    real_iter = DataLoader.__iter__

    def recording_iter(self):  # type: ignore[no-untyped-def]
        iterators.append(state["inside"])
        return real_iter(self)

    monkeypatch.setattr(run_mod, "device_scope", recording_scope)
    monkeypatch.setattr(DataLoader, "__iter__", recording_iter)
    config = _config(tmp_path, epochs=1, pipelines=("direct48",))
    run_finetune(config, fer_data, CPU, build=small_cnn)
    assert scoped == [CPU] and iterators and all(iterators)


def test_device_scope_makes_the_device_current(monkeypatch: pytest.MonkeyPatch) -> None:
    from contextlib import nullcontext

    from emobench.device import device_scope

    entered: list[object] = []
    monkeypatch.setattr(torch.cuda, "device", lambda d: entered.append(d) or nullcontext())
    with device_scope(torch.device("cuda", 1)):
        pass
    assert entered == [torch.device("cuda", 1)]
    assert isinstance(device_scope(CPU), nullcontext) and len(entered) == 1
