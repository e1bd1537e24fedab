"""Checkpoints of one pipeline and seed: best.pt and last.pt (weights), state.pt (what a resume
needs), written as one set and read back with weights_only, each proving it is this run's.

Every file holds {"format", "kind", "fingerprint", "epoch", ...}: the fingerprint (backbone,
pipeline, recipe hash, data hash, seed; settings.fingerprint) and the epoch tie the three files
to one run and one moment, so a file copied from another run, another pipeline or another
epoch is refused with one line instead of silently resuming the wrong weights.

A set is written with SIGINT and SIGTERM held back (delivered once it is complete), to
temporary files renamed last/best first and state.pt, the commit point, last; any failure
removes the temporary files, so an interruption leaves the whole new set or the whole old one.
"""

from __future__ import annotations

import dataclasses
import signal
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import torch

from emobench.errors import MeasurementError, UsageError
from emobench.files import atomic_path, open_regular
from emobench.models import EmotionNet
from emobench.results.finetune import EpochMetrics
from emobench.scenarios.finetune.settings import (
    CHECKPOINT_KINDS,
    FINGERPRINT_FIELDS,
    RECIPE_FIELDS,
    checkpoint_paths,
)
from emobench.scenarios.finetune.trainer import Trainer

__all__ = ["CHECKPOINT_KINDS", "FORMAT", "Checkpoints", "checkpoint_paths", "signals_held"]

FORMAT = 2  # 1: bare state dicts, no fingerprint (refused)
STATE_KEYS = ("optimizer", "scheduler", "scaler", "rng", "history", "best_epoch", "best_val")
HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)
START_OVER = "start over with --force (without --resume), or use another --checkpoint-dir"


@contextmanager
def signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM arriving inside are recorded, then delivered to the handler that was
    in place once the block is done (so Ctrl-C or a SIGTERM never cuts a checkpoint set in
    half). Outside the main thread, where no handler can be set, it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []

    def hold(signum: int, _frame: FrameType | None) -> None:
        caught.append(signum)

    previous: dict[int, Any] = {}
    try:
        for held in HELD_SIGNALS:
            previous[held] = signal.signal(held, hold)
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        if caught:
            _deliver(caught[0], previous.get(caught[0]))


def _deliver(signum: int, handler: Any) -> None:
    """What the signal would have done without signals_held."""
    if callable(handler):
        handler(signum, None)
    elif handler != signal.SIG_IGN:  # SIG_DFL, or a handler not set from Python
        signal.raise_signal(signum)


def _one_line(exc: BaseException) -> str:
    """An exception as a short clause: its type and first sentence, on one line."""
    text = " ".join(str(exc).split()).split(". ")[0].rstrip(".")
    if len(text) > 160:
        text = text[:159] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Checkpoints:
    """The checkpoint files of one pipeline and seed, tied to one run by its fingerprint."""

    def __init__(
        self,
        folder: Path,
        pipeline: str,
        seed: int,
        fingerprint: dict[str, Any],
        options: dict[str, Any] | None = None,
    ) -> None:
        self.paths = checkpoint_paths(folder, pipeline, seed)
        self.fingerprint = fingerprint
        self.options = options or {}  # the recipe's option values, to name the one that differs

    # -- reading ----------------------------------------------------------------------------

    def exist(self) -> bool:
        """Whether any of the three files is there."""
        return any(p.exists() or p.is_symlink() for p in self.paths.values())

    def _read(self, kind: str, map_location: Any = "cpu", mmap: bool = False) -> dict[str, Any]:
        """One checkpoint file, checked: readable, this format and kind, this run's."""
        path = self.paths[kind]
        label = f"--resume: {path}"
        try:
            if mmap:  # verification reads only the headers: map the tensors, do not read them
                open_regular(path, UsageError, label, noun="checkpoint").close()
                obj = torch.load(path, map_location=map_location, weights_only=True, mmap=True)
            else:
                with open_regular(path, UsageError, label, noun="checkpoint") as fh:
                    obj = torch.load(fh, map_location=map_location, weights_only=True)
        except UsageError as exc:  # not a regular file
            raise UsageError(f"{exc}; {START_OVER}") from None
        except Exception as exc:  # truncated, not a torch file, unpickling refused, ...
            raise UsageError(
                f"{label}: not a readable checkpoint ({_one_line(exc)}); {START_OVER}"
            ) from None
        if not isinstance(obj, dict) or "fingerprint" not in obj:
            raise UsageError(
                f"{label}: not a checkpoint of this emobench (written by an older version, or "
                f"not by emobench: it carries no fingerprint); {START_OVER}"
            )
        if obj.get("format") != FORMAT or obj.get("kind") != kind:
            raise UsageError(
                f"{label}: holds a {obj.get('kind')!r} checkpoint of format "
                f"{obj.get('format')!r}, expected {kind!r} of format {FORMAT}; {START_OVER}"
            )
        self._check_fingerprint(label, obj)
        if not isinstance(obj.get("epoch"), int) or isinstance(obj.get("epoch"), bool):
            raise UsageError(f"{label}: has no epoch number; {START_OVER}")
        return obj

    def _check_fingerprint(self, label: str, obj: dict[str, Any]) -> None:
        theirs = obj["fingerprint"]
        if not isinstance(theirs, dict):
            raise UsageError(f"{label}: its fingerprint is not a mapping; {START_OVER}")
        for field in FINGERPRINT_FIELDS:
            mine, other = self.fingerprint.get(field), theirs.get(field)
            if mine == other:
                continue
            if field == "recipe":
                what = self._recipe_difference(obj.get("options"))
            elif field == "data":
                what = f"other data (sha256 {str(other)[:12]}, this run's {str(mine)[:12]})"
            else:
                what = f"{field} {other!r} (this run: {mine!r})"
            raise UsageError(
                f"{label}: is another run's checkpoint: written for {what}; use the same "
                f"options and data to resume it, or {START_OVER}"
            )

    def _recipe_difference(self, theirs: Any) -> str:
        """'--lr 0.5 (this run: 0.01)', the first recipe option that differs."""
        if isinstance(theirs, dict):
            for key in RECIPE_FIELDS:
                if theirs.get(key) != self.options.get(key):
                    flag = "--" + key.replace("_", "-")
                    return f"{flag} {theirs.get(key)!r} (this run: {self.options.get(key)!r})"
        return "another recipe (the training options differ)"

    def verify(self) -> int | None:
        """Check the set before any training: None when no file is there, else the epochs it
        holds. Reads the headers only (tensors are memory-mapped, not read)."""
        if not self.exist():
            return None
        state = self._state(mmap=True)
        epoch = state["epoch"]
        self._weights("last", epoch, mmap=True)
        self._weights("best", state["best_epoch"], mmap=True)
        return int(epoch)

    def _state(self, map_location: Any = "cpu", mmap: bool = False) -> dict[str, Any]:
        if not (self.paths["state"].exists() or self.paths["state"].is_symlink()):
            present = next(p for p in self.paths.values() if p.exists() or p.is_symlink())
            raise UsageError(
                f"--resume: {present} has no {self.paths['state'].name} beside it: an "
                f"incomplete checkpoint set; {START_OVER}"
            )
        state = self._read("state", map_location, mmap)
        missing = [k for k in STATE_KEYS if k not in state]
        history = state.get("history")
        if missing or not isinstance(history, list) or len(history) != state["epoch"]:
            what = f"no {missing[0]!r}" if missing else "a history that does not match its epoch"
            raise UsageError(f"--resume: {self.paths['state']}: has {what}; {START_OVER}")
        return state

    def _weights(
        self, kind: str, epoch: int, map_location: Any = "cpu", mmap: bool = False
    ) -> dict[str, Any]:
        """best.pt or last.pt, which must be of `epoch` (the state file's)."""
        if not (self.paths[kind].exists() or self.paths[kind].is_symlink()):
            raise UsageError(
                f"--resume: {self.paths[kind]} is missing beside {self.paths['state'].name}: "
                f"an incomplete checkpoint set; {START_OVER}"
            )
        obj = self._read(kind, map_location, mmap)
        if obj["epoch"] != epoch:
            raise UsageError(
                f"--resume: {self.paths[kind]}: is of epoch {obj['epoch']}, but "
                f"{self.paths['state'].name} expects epoch {epoch} (files from different "
                f"moments); {START_OVER}"
            )
        if not isinstance(obj.get("weights"), dict):
            raise UsageError(f"--resume: {self.paths[kind]}: holds no weights; {START_OVER}")
        return obj

    def _load_weights(self, model: EmotionNet, kind: str, obj: dict[str, Any]) -> None:
        try:
            model.load_state_dict(obj["weights"])
        except Exception as exc:  # wrong keys or shapes
            raise UsageError(
                f"--resume: {self.paths[kind]}: does not fit this model ({_one_line(exc)}); "
                f"{START_OVER}"
            ) from None

    def resume(self, trainer: Trainer) -> int:
        """Restore trainer from state.pt and last.pt if they exist; the epochs already done."""
        if not self.exist():
            return 0
        state = self._state(map_location=trainer.device)
        last = self._weights("last", state["epoch"], map_location=trainer.device)
        self._load_weights(trainer.model, "last", last)
        try:
            trainer.optimizer.load_state_dict(state["optimizer"])
            trainer.scheduler.load_state_dict(state["scheduler"])
            if trainer.scaler is not None and state["scaler"]:
                trainer.scaler.load_state_dict(state["scaler"])
            torch.set_rng_state(state["rng"].cpu())
            history = [EpochMetrics(**e) for e in state["history"]]
            best_epoch, best_val = int(state["best_epoch"]), float(state["best_val"])
        except Exception as exc:
            raise UsageError(
                f"--resume: {self.paths['state']}: cannot be restored ({_one_line(exc)}); "
                f"{START_OVER}"
            ) from None
        trainer.history, trainer.best_epoch, trainer.best_val = history, best_epoch, best_val
        return len(history)

    def load_best(self, model: EmotionNet, epoch: int) -> None:
        """Load best.pt's weights into model: the checkpoint the test split scores."""
        self._load_weights(model, "best", self._weights("best", epoch))

    # -- writing ----------------------------------------------------------------------------

    def _header(self, kind: str, epoch: int) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "kind": kind,
            "fingerprint": dict(self.fingerprint),
            "options": dict(self.options),
            "epoch": epoch,
        }

    def save(self, trainer: Trainer) -> None:
        """The set after an epoch: last.pt (and best.pt when this epoch is the best) and
        state.pt, all of this epoch, written whole or not at all."""
        epoch = len(trainer.history)
        weights = trainer.model.state_dict()
        files: dict[str, dict[str, Any]] = {
            "state": self._header("state", epoch)
            | {
                "optimizer": trainer.optimizer.state_dict(),
                "scheduler": trainer.scheduler.state_dict(),
                "scaler": trainer.scaler.state_dict() if trainer.scaler is not None else {},
                "rng": torch.get_rng_state(),
                "history": [dataclasses.asdict(e) for e in trainer.history],
                "best_epoch": trainer.best_epoch,
                "best_val": trainer.best_val,
            }
        }
        if trainer.best_epoch == epoch:
            files["best"] = self._header("best", epoch) | {"weights": weights}
        files["last"] = self._header("last", epoch) | {"weights": weights}
        # ExitStack renames in reverse: last, best, then state (the commit point); an exception
        # before the end removes every temporary file and renames none
        try:
            with signals_held(), ExitStack() as stack:
                for kind, obj in files.items():
                    torch.save(obj, stack.enter_context(atomic_path(self.paths[kind])))
        except (OSError, RuntimeError) as exc:  # a full disk, a folder made read-only meanwhile
            folder = self.paths["state"].parent
            raise MeasurementError(
                f"{folder}: cannot write the checkpoints of epoch {epoch} ({_one_line(exc)}); "
                "the previous ones are intact"
            ) from None
