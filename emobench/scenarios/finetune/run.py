"""run_finetune: for each seed and pipeline, train then score; then the paired comparison and
the Report."""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from emobench.data.labeled import LabeledData
from emobench.device import emulated_precision
from emobench.measure.env import fingerprint
from emobench.measure.memory import PeakMemory
from emobench.models import EmotionNet, build_model
from emobench.results import Report
from emobench.results.finetune import FinetuneRun, FinetuneSummary, spread_of
from emobench.results.progress import FinetuneProgress
from emobench.scenarios.finetune.checkpoint import Checkpoints
from emobench.scenarios.finetune.loaders import AUGMENTATION
from emobench.scenarios.finetune.recipe import FinetuneConfig, recipe_hash
from emobench.scenarios.finetune.scoring import paired_by_seed, score_split, time_to_target
from emobench.scenarios.finetune.trainer import BuildFn, Trainer


def _no_progress(*_: Any) -> None:
    return None


def _train_and_score(
    config: FinetuneConfig,
    data: LabeledData,
    pipeline: str,
    seed: int,
    device: torch.device,
    build: BuildFn,
    folder: Path,
    progress: FinetuneProgress,
) -> FinetuneRun:
    """One pipeline, one seed: resume if asked, train the epochs left, score the best on test."""
    checkpoints = Checkpoints(folder, pipeline, seed, recipe_hash(config, data))
    trainer = Trainer(config, data, pipeline, seed, device, build, progress)
    resumed_from = checkpoints.resume(trainer) if config.resume else 0
    for epoch in range(len(trainer.history) + 1, config.epochs + 1):
        trainer.record(trainer.train_epoch(epoch))
        checkpoints.save(trainer)
    peak = trainer.train_peak() if config.measure_memory else None
    checkpoints.load_best(trainer.model)
    return _finetune_run(trainer, checkpoints, peak, resumed_from)


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


def _notes(config: FinetuneConfig, device: torch.device, runs: list[FinetuneRun]) -> list[str]:
    """Caveats for the reader: emulated precision, runs resumed from a checkpoint."""
    notes = []
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
    config: FinetuneConfig, device: torch.device, seeds: list[int]
) -> dict[str, Any]:
    """The options as given, plus what they resolved to here."""
    return json.loads(json.dumps(dataclasses.asdict(config))) | {
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
) -> Report:
    """Fine-tune every pipeline for every seed, score on the test split, compare paired."""
    started = time.perf_counter()
    build = build or build_model  # looked up now, so tests can patch this module's build_model
    folder = Path(config.checkpoint_dir)
    runs: list[FinetuneRun] = []
    seeds = [config.seed + i for i in range(config.seeds)]
    for seed in seeds:
        for pipeline in config.pipelines:
            runs.append(
                _train_and_score(config, data, pipeline, seed, device, build, folder, progress)
            )
    labels = data.test.labels
    summary = FinetuneSummary(
        data=data.summary(),
        test_labels=labels.tolist(),
        runs=runs,
        paired=paired_by_seed(runs, seeds, labels),
        spread=spread_of(runs),
    )
    return Report(
        kind="finetune",
        created_utc=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        wall_time_s=time.perf_counter() - started,
        config=_report_config(config, device, seeds),
        environment=fingerprint(device),
        results=[],
        notes=_notes(config, device, runs),
        finetune=summary,
    )
