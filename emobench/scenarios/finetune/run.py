"""run_finetune: for each seed and pipeline, train then score; then the paired comparison and
the Report."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from emobench.data.labeled import LabeledData
from emobench.device import device_scope, emulated_precision
from emobench.measure.env import fingerprint
from emobench.measure.memory import PeakMemory
from emobench.models import EmotionNet, build_model
from emobench.results import Report
from emobench.results.finetune import FinetuneRun, FinetuneSummary, spread_of
from emobench.results.progress import FinetuneProgress
from emobench.scenarios.finetune import settings
from emobench.scenarios.finetune.checkpoint import Checkpoints
from emobench.scenarios.finetune.distributed import SINGLE, World, barrier
from emobench.scenarios.finetune.loaders import AUGMENTATION
from emobench.scenarios.finetune.scoring import paired_by_seed, score_split, time_to_target
from emobench.scenarios.finetune.settings import FinetuneConfig
from emobench.scenarios.finetune.trainer import BuildFn, Trainer


def _no_progress(*_: Any) -> None:
    return None


def _checkpoints(
    config: FinetuneConfig, folder: Path, pipeline: str, seed: int, data_hash: str
) -> Checkpoints:
    """The checkpoint set of one pipeline and seed, fingerprinted with this run."""
    mark = settings.fingerprint(config, pipeline, seed, data_hash)
    return Checkpoints(folder, pipeline, seed, mark, config.recipe())


def verify_resume(config: FinetuneConfig, folder: Path, data_hash: str) -> None:
    """--resume: every checkpoint set of this run proves it is this run's (and of one epoch)
    before anything trains; a folder with none of them is refused."""
    settings.check_checkpoint_state(config, folder, force=True)
    for seed in config.seeds_used:
        for pipeline in config.pipelines:
            _checkpoints(config, folder, pipeline, seed, data_hash).verify()


def _train_and_score(
    config: FinetuneConfig,
    data: LabeledData,
    pipeline: str,
    seed: int,
    device: torch.device,
    build: BuildFn,
    folder: Path,
    progress: FinetuneProgress,
    data_hash: str,
    world: World = SINGLE,
) -> tuple[FinetuneRun | None, list[list[float]]]:
    """One pipeline, one seed: resume if asked, train the epochs left, score the best on test;
    with the images/s of each process in each epoch trained here.

    Across processes every rank resumes from the same files (the bare model's weights: any
    world size resumes them) and trains; rank 0 alone saves (the others wait at a barrier
    until the set is whole) and scores: the other ranks' run is None."""
    checkpoints = _checkpoints(config, folder, pipeline, seed, data_hash)
    trainer = Trainer(config, data, pipeline, seed, device, build, progress, world)
    resumed_from = checkpoints.resume(trainer) if config.resume else 0
    if config.resume and world.distributed:
        _same_resume_everywhere(len(trainer.history), world, device)
    for epoch in range(len(trainer.history) + 1, config.epochs + 1):
        trainer.record(trainer.train_epoch(epoch))
        if world.main:
            checkpoints.save(trainer)
        barrier(world)
    peak = trainer.train_peak() if config.measure_memory else None
    if not world.main:
        return None, trainer.rank_images_per_s
    checkpoints.load_best(trainer.model, trainer.best_epoch)
    return _finetune_run(trainer, checkpoints, peak, resumed_from), trainer.rank_images_per_s


def _transfer_record(model: EmotionNet) -> dict[str, Any]:
    """Where the starting weights came from: copied, derived and freshly initialised layers."""
    transfer = model.transfer
    return {
        "source": transfer.source if transfer else "unknown",
        "copied": list(transfer.copied) if transfer else [],
        "derived": dict(transfer.derived) if transfer else {},
        "fresh": list(transfer.fresh) if transfer else [],
    }


def _finetune_run(
    trainer: Trainer, checkpoints: Checkpoints, peak: PeakMemory | None, resumed_from: int
) -> FinetuneRun:
    """The record of one trained pipeline, scored on the test split with best.pt loaded."""
    config, data, model = trainer.config, trainer.data, trainer.model
    test = score_split(
        trainer.pipe, trainer.forward, data.test, len(data.class_names), trainer.best_epoch
    )
    to_target = time_to_target(trainer.history, config.target_acc)
    return FinetuneRun(
        backbone=config.backbone,
        pipeline=trainer.pipe.name,
        seed=trainer.seed,
        input_size=trainer.pipe.input_size,
        params_total=sum(p.numel() for p in model.parameters()),
        params_trainable=sum(p.numel() for p in model.parameters() if p.requires_grad),
        transfer=_transfer_record(model),
        epochs=list(trainer.history),
        best_epoch=trainer.best_epoch,
        best_val_accuracy=trainer.best_val,
        target_accuracy=config.target_acc,
        time_to_target_s=to_target[1] if to_target else None,
        epoch_to_target=to_target[0] if to_target else None,
        train_peak=peak,
        test=test,
        checkpoint_best=str(checkpoints.paths["best"]),
        checkpoint_last=str(checkpoints.paths["last"]),
        resumed_from_epoch=resumed_from,
    )


def _notes(
    config: FinetuneConfig, device: torch.device, runs: list[FinetuneRun], world: World = SINGLE
) -> list[str]:
    """Caveats for the reader: emulated precision, runs resumed from a checkpoint, the
    processes it ran on."""
    notes = []
    if world.distributed:
        notes.append(
            f"data-parallel over {world.size} processes ({world.backend}): the global batch "
            f"{config.batch_size} is {config.batch_size // world.size} per process, the "
            "learning rate the recipe's (unchanged for the same global batch); the train loss "
            "is all-reduced, validation and the test score are rank 0's; images/s per epoch "
            "is every process's together (config.distributed has each rank's); BatchNorm "
            "layers normalise each process's share of the batch, so a model with BatchNorm "
            "trains close to, not exactly as, one process"
        )
    emulated = emulated_precision(config.precision, device)
    if emulated:
        notes.append(f"precision {config.precision} is EMULATED here ({emulated})")
    if any(r.resumed_from_epoch for r in runs):
        notes.append(
            "resumed: "
            + ", ".join(
                f"{r.pipeline} seed {r.seed} from epoch {r.resumed_from_epoch}"
                for r in runs
                if r.resumed_from_epoch
            )
        )
    return notes


def _report_config(
    config: FinetuneConfig,
    device: torch.device,
    seeds: list[int],
    world: World = SINGLE,
    rank_rates: dict[str, list[list[float]]] | None = None,
) -> dict[str, Any]:
    """The options as given, plus what they resolved to here, and the processes it ran on
    (world size, backend, per-process batch, each rank's images/s per epoch trained)."""
    distributed = world.record() | {
        "batch_per_process": config.batch_size // world.size,
        "per_rank_images_per_s": rank_rates or {},
        "evaluated_on": "rank 0",
    }
    return json.loads(json.dumps(dataclasses.asdict(config))) | {
        "distributed": distributed,
        "resolved_device": str(device),
        "learning_rate": config.learning_rate,
        "weight_decay_resolved": config.decay,
        "seeds_used": seeds,
        "augmentation": AUGMENTATION,
        "num_threads": torch.get_num_threads(),
    }


def run_finetune(
    config: FinetuneConfig,
    data: LabeledData,
    device: torch.device,
    build: BuildFn | None = None,
    progress: FinetuneProgress = _no_progress,
    data_hash: str | None = None,
) -> Report:
    """Fine-tune every pipeline for every seed, score on the test split, compare paired.

    With --resume every checkpoint is checked first. A value that came out non-finite (a
    diverged loss) is recorded as null with a note, so a run that reached its end always has
    a report that can be written."""
    report = run_finetune_distributed(config, data, device, SINGLE, build, progress, data_hash)
    assert report is not None  # one process is rank 0
    return report


def run_finetune_distributed(
    config: FinetuneConfig,
    data: LabeledData,
    device: torch.device,
    world: World,
    build: BuildFn | None = None,
    progress: FinetuneProgress = _no_progress,
    data_hash: str | None = None,
) -> Report | None:
    """run_finetune as one process of `world` (its process group joined, its device this
    rank's): the Report on rank 0, None on the others. A rank that raises ends its
    collectives, so the others raise too and rank 0 writes nothing."""
    settings.check_device(config, device)  # bf16 before sm_80 refused, as compare refuses it
    # the device current throughout: on cuda:1 the model, the optimizer, the scaler, library
    # handles and each epoch's DataLoader pin-memory thread (it pins for the device current
    # when its iterator is made; torch ignores pin_memory_device) all stay off cuda:0
    with device_scope(device):
        return _run_finetune(config, data, device, build, progress, data_hash, world)


def _run_finetune(
    config: FinetuneConfig,
    data: LabeledData,
    device: torch.device,
    build: BuildFn | None,
    progress: FinetuneProgress,
    data_hash: str | None,
    world: World = SINGLE,
) -> Report | None:
    started = time.perf_counter()
    build = build or build_model  # looked up now, so tests can patch this module's build_model
    folder = Path(config.checkpoint_dir)
    data_hash = data_hash or data.content_sha256()
    if config.resume:
        verify_resume(config, folder, data_hash)
    runs: list[FinetuneRun] = []
    rank_rates: dict[str, list[list[float]]] = {}
    seeds = config.seeds_used
    for seed in seeds:
        for pipeline in config.pipelines:
            run, rates = _train_and_score(
                config, data, pipeline, seed, device, build, folder, progress, data_hash, world
            )
            rank_rates[f"{pipeline} seed {seed}"] = rates
            if run is not None:
                runs.append(run)
    barrier(world)  # every rank got to its end: only then does rank 0 report
    if not world.main:
        return None
    notes = _notes(config, device, runs, world)
    runs = [_finite_losses(r, notes) for r in runs]
    labels = data.test.labels
    summary = FinetuneSummary(
        data=data.summary() | {"sha256": data_hash},
        test_labels=labels.tolist(),
        runs=runs,
        paired=paired_by_seed(runs, seeds, labels),
        spread=spread_of(runs),
    )
    report = Report(
        kind="finetune",
        created_utc=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        wall_time_s=time.perf_counter() - started,
        config=_report_config(config, device, seeds, world, rank_rates),
        environment=fingerprint(device),
        results=[],
        notes=notes,
        finetune=summary,
    )
    return finite_report(report)


def _epoch_list(epochs: list[int]) -> str:
    return ", ".join(map(str, epochs[:10])) + (
        f" and {len(epochs) - 10} more" if epochs[10:] else ""
    )


def _finite_losses(run: FinetuneRun, notes: list[str]) -> FinetuneRun:
    """A run whose training loss went non-finite: those epochs' loss is null, with a note."""
    bad = [e for e in run.epochs if e.train_loss is not None and not math.isfinite(e.train_loss)]
    if not bad:
        return run
    kinds = sorted({str(e.train_loss) for e in bad})
    notes.append(
        f"{run.pipeline} seed {run.seed}: the training loss was not finite ({'/'.join(kinds)}) "
        f"in epoch {_epoch_list([e.epoch for e in bad])}, recorded as null: the training "
        "diverged (try a lower --lr)"
    )
    epochs = [dataclasses.replace(e, train_loss=None) if e in bad else e for e in run.epochs]
    return dataclasses.replace(run, epochs=epochs)


def finite_report(report: Report) -> Report:
    """The report with every non-finite number replaced by null and a note naming where (JSON
    has no NaN: the report is written with allow_nan=False, so nothing non-finite may stay)."""
    found: dict[str, list[str]] = {}
    cleaned = _nulled(report, "", found)
    if not found:
        return report
    notes = [
        f"{where.lstrip('.')}: not finite ({'/'.join(sorted(set(values)))}) in "
        f"{len(values)} place(s), recorded as null"
        for where, values in found.items()
    ]
    return dataclasses.replace(cleaned, notes=[*cleaned.notes, *notes])


def _nulled(value: Any, where: str, found: dict[str, list[str]]) -> Any:
    """value with its non-finite floats (however deep in dataclasses, lists and dicts) None;
    found collects them by path, list indices folded ("runs[].test.accuracy")."""
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        found.setdefault(re.sub(r"\[\d+\]", "[]", where), []).append(str(value))
        return None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {
            f.name: _nulled(getattr(value, f.name), f"{where}.{f.name}", found)
            for f in dataclasses.fields(value)
            if f.init
        }
        return dataclasses.replace(value, **changes)
    if isinstance(value, list | tuple):
        items = [_nulled(v, f"{where}[{i}]", found) for i, v in enumerate(value)]
        return type(value)(items)
    if isinstance(value, dict):
        return {k: _nulled(v, f"{where}.{k}", found) for k, v in value.items()}
    return value


def _same_resume_everywhere(epochs: int, world: Any, device: torch.device) -> None:
    """Every process must resume from the same epoch (rank 0 alone writes checkpoints: on
    several nodes the checkpoint folder must be one every node sees). Otherwise the processes
    would run different numbers of steps and wait on each other for ever: one error instead."""
    from emobench.errors import UsageError
    from emobench.scenarios.finetune.distributed import all_gather_floats

    seen = [int(e) for e in all_gather_floats(float(epochs), world, device)]
    if len(set(seen)) > 1:
        raise UsageError(
            f"--resume: the processes found different checkpoints (epochs {seen} by rank): "
            "rank 0 alone writes them, so on several nodes --checkpoint-dir must be a folder "
            "every node sees (a shared filesystem)"
        )
