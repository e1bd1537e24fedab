"""Checkpoints of one pipeline and seed: best.pt and last.pt weights, state.pt to resume from,
each written atomically and read back with weights_only."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch

from emobench.errors import UsageError
from emobench.models import EmotionNet
from emobench.results.finetune import EpochMetrics
from emobench.scenarios.finetune.trainer import Trainer

CHECKPOINT_KINDS = ("best", "last", "state")


def save_atomic(obj: Any, path: Path) -> None:
    """torch.save to a hidden file beside path, then rename: a crash leaves the old file whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def checkpoint_paths(folder: Path, pipeline: str, seed: int) -> dict[str, Path]:
    """`<pipeline>-seed<seed>-{best,last,state}.pt` in folder."""
    stem = f"{pipeline}-seed{seed}"
    return {k: folder / f"{stem}-{k}.pt" for k in CHECKPOINT_KINDS}


class Checkpoints:
    """The checkpoint files of one pipeline and seed, tied to one recipe by its hash."""

    def __init__(self, folder: Path, pipeline: str, seed: int, fingerprint: str) -> None:
        self.paths = checkpoint_paths(folder, pipeline, seed)
        self.fingerprint = fingerprint

    def resume(self, trainer: Trainer) -> int:
        """Restore trainer from state.pt and last.pt if they exist; the epochs already done."""
        state_path = self.paths["state"]
        if not state_path.exists():
            return 0
        state = torch.load(state_path, weights_only=True, map_location=trainer.device)
        if state["recipe"] != self.fingerprint:
            raise UsageError(
                f"--resume: {state_path} was written by a different recipe or data set; "
                "use the same options, or another --checkpoint-dir"
            )
        trainer.model.load_state_dict(torch.load(self.paths["last"], weights_only=True))
        trainer.optimizer.load_state_dict(state["optimizer"])
        trainer.scheduler.load_state_dict(state["scheduler"])
        if trainer.scaler is not None and state.get("scaler"):
            trainer.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"])
        trainer.history = [EpochMetrics(**e) for e in state["history"]]
        trainer.best_epoch, trainer.best_val = state["best_epoch"], state["best_val"]
        return len(trainer.history)

    def save(self, trainer: Trainer) -> None:
        """last.pt (and best.pt), then state.pt: the state file is the commit point."""
        save_atomic(trainer.model.state_dict(), self.paths["last"])
        if trainer.best_epoch == len(trainer.history):
            save_atomic(trainer.model.state_dict(), self.paths["best"])
        state = {
            "recipe": self.fingerprint,
            "optimizer": trainer.optimizer.state_dict(),
            "scheduler": trainer.scheduler.state_dict(),
            "scaler": trainer.scaler.state_dict() if trainer.scaler is not None else {},
            "rng": torch.get_rng_state(),
            "history": [dataclasses.asdict(e) for e in trainer.history],
            "best_epoch": trainer.best_epoch,
            "best_val": trainer.best_val,
        }
        save_atomic(state, self.paths["state"])

    def load_best(self, model: EmotionNet) -> None:
        """Load best.pt's weights into model: the checkpoint the test split scores."""
        model.load_state_dict(torch.load(self.paths["best"], weights_only=True))
