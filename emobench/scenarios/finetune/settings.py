"""The fine-tune's settings, torch-free: the options and their checks, the recipe a resumed run
must share, the fingerprint each checkpoint carries, and where checkpoints go.

Everything here is checked before torch is imported, so a bad option is answered at once.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emobench.config import RunConfig, check_backbone
from emobench.device import check_cuda_only_options, check_device_options, parse_device_spec
from emobench.errors import UsageError
from emobench.files import check_folder, file_kind
from emobench.names import COMPILE_MODES, DIRECT, FINETUNE_DIR, PIPELINE_NAMES, PRECISIONS, UPSCALE

if TYPE_CHECKING:
    import torch

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "step")
DEFAULT_LR = {"sgd": 0.01, "adamw": 1e-3}
DEFAULT_WEIGHT_DECAY = {"sgd": 5e-4, "adamw": 0.05}
CHECKPOINT_DIR = FINETUNE_DIR
# Bounds of the numeric options. A learning rate or weight decay above 10 is a typo (1e6 for
# 1e-6), not a recipe: it diverges in the first step and wastes the whole run.
MAX_LR = 10.0
MAX_WEIGHT_DECAY = 10.0
MAX_SEED = 2**32 - 1  # what numpy's legacy seeding and every torch generator accept
MAX_EPOCHS = 100_000
MAX_BATCH_SIZE = 1_000_000
MAX_WORKERS = 256
MAX_SEEDS = 1_000
# The settings a resumed run must share with the interrupted one (lr and weight decay resolved).
RECIPE_FIELDS = (
    "backbone",
    "epochs",
    "batch_size",
    "optimizer",
    "lr",
    "weight_decay",
    "schedule",
    "label_smoothing",
    "pretrained",
    "freeze_backbone",
    "precision",
    "channels_last",
    "compile",
)
CHECKPOINT_KINDS = ("best", "last", "state")
# What a checkpoint's fingerprint holds, in the order a resume compares them.
FINGERPRINT_FIELDS = ("backbone", "pipeline", "recipe", "data", "seed")
RUN_KEY_DIGITS = 12


@dataclass(frozen=True)
class FinetuneConfig:
    backbone: str = "resnet18"
    data: str = ""
    device: str = "auto"
    pipelines: tuple[str, ...] = (UPSCALE, DIRECT)
    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float | None = None  # None: DEFAULT_LR[optimizer]
    weight_decay: float | None = None
    schedule: str = "cosine"
    label_smoothing: float = 0.0
    pretrained: bool = True  # ImageNet weights when cached; --no-pretrained for random init
    freeze_backbone: bool = False
    precision: str = "fp32"
    channels_last: bool = False
    compile: str = "none"
    workers: int = 2
    seed: int = 0
    seeds: int = 1
    target_acc: float | None = None
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    checkpoint_dir: str = str(CHECKPOINT_DIR)
    resume: bool = False
    measure_memory: bool = True
    allow_emulated: bool = False  # run a precision the device only emulates (bf16 before sm_80)

    def __post_init__(self) -> None:
        # a registered name, an installed plugin's or module:function; a plugin's models are
        # checked once torch is imported
        check_backbone(self.backbone)
        if not self.pipelines:
            raise UsageError("at least one --pipeline is needed")
        for p in self.pipelines:
            if p not in PIPELINE_NAMES:
                raise UsageError(f"--pipeline {p}: choose one of {', '.join(PIPELINE_NAMES)}")
        for ok, message in _checks(self):
            if not ok:
                raise UsageError(message)
        parse_device_spec(self.device)
        if self.device == "cpu":  # known without torch; "auto" is checked once resolved
            check_cuda_only_options(RunConfig(precision=self.precision), "cpu")

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.optimizer]

    @property
    def decay(self) -> float:
        return (
            self.weight_decay
            if self.weight_decay is not None
            else DEFAULT_WEIGHT_DECAY[self.optimizer]
        )

    @property
    def seeds_used(self) -> list[int]:
        return [self.seed + i for i in range(self.seeds)]

    def recipe(self) -> dict[str, Any]:
        """The settings a resumed run must share with the interrupted one, as the option values
        in force (a default learning rate and the same rate given explicitly are one recipe)."""
        return {k: getattr(self, k) for k in RECIPE_FIELDS} | {
            "lr": self.learning_rate,
            "weight_decay": self.decay,
        }


def check_device(config: FinetuneConfig, device: torch.device) -> None:
    """The checks `compare` makes on the resolved device: fp16 needs CUDA, a precision the
    device only emulates (bf16 before sm_80) needs allow_emulated, --compile its compiler."""
    speed = RunConfig(
        precision=config.precision, compile=config.compile, allow_emulated=config.allow_emulated
    )
    check_device_options(speed, device)


def _finite_in(value: float, low: float, high: float, low_open: bool = False) -> bool:
    return math.isfinite(value) and (value > low if low_open else value >= low) and value <= high


def _checks(config: FinetuneConfig) -> list[tuple[bool, str]]:
    """Each option's check and the message when it fails, in the order they are reported."""
    c = config
    return [
        (c.optimizer in OPTIMIZERS, f"--optimizer {c.optimizer}: choose sgd or adamw"),
        (c.schedule in SCHEDULES, f"--schedule {c.schedule}: choose cosine or step"),
        (c.precision in PRECISIONS, f"--precision {c.precision}: choose fp32, fp16 or bf16"),
        (
            c.compile in COMPILE_MODES,
            f"--compile {c.compile}: unknown mode; choose one of {', '.join(COMPILE_MODES)}",
        ),
        (1 <= c.epochs <= MAX_EPOCHS, f"--epochs must be 1 to {MAX_EPOCHS:,}, got {c.epochs}"),
        (
            1 <= c.batch_size <= MAX_BATCH_SIZE,
            f"--batch-size must be 1 to {MAX_BATCH_SIZE:,}, got {c.batch_size}",
        ),
        (1 <= c.seeds <= MAX_SEEDS, f"--seeds must be 1 to {MAX_SEEDS:,}, got {c.seeds}"),
        (0 <= c.workers <= MAX_WORKERS, f"--workers must be 0 to {MAX_WORKERS}, got {c.workers}"),
        (
            0 <= c.seed <= MAX_SEED,
            f"--seed must be 0 to {MAX_SEED} (2**32 - 1), got {c.seed}",
        ),
        (
            c.seed + c.seeds - 1 <= MAX_SEED,
            f"--seed {c.seed} with --seeds {c.seeds} runs seeds past {MAX_SEED} (2**32 - 1)",
        ),
        (
            _finite_in(c.label_smoothing, 0.0, 1.0) and c.label_smoothing < 1.0,
            f"--label-smoothing must be a finite number in [0, 1), got {c.label_smoothing}",
        ),
        (
            c.lr is None or _finite_in(c.lr, 0.0, MAX_LR, low_open=True),
            f"--lr must be a finite number in (0, {MAX_LR:g}], got {c.lr}",
        ),
        (
            c.weight_decay is None or _finite_in(c.weight_decay, 0.0, MAX_WEIGHT_DECAY),
            f"--weight-decay must be a finite number in [0, {MAX_WEIGHT_DECAY:g}], "
            f"got {c.weight_decay}",
        ),
        (
            c.target_acc is None or _finite_in(c.target_acc, 0.0, 1.0, low_open=True),
            f"--target-acc must be a finite number in (0, 1], got {c.target_acc}",
        ),
        (
            _finite_in(c.val_fraction, 0.0, 1.0, low_open=True)
            and _finite_in(c.test_fraction, 0.0, 1.0, low_open=True)
            and c.val_fraction + c.test_fraction < 1,
            "--val-fraction and --test-fraction must be finite numbers > 0 that sum to less "
            f"than 1, got {c.val_fraction} and {c.test_fraction}",
        ),
    ]


# -- processes (torchrun's environment) --------------------------------------------------------

ENV_KEYS = ("WORLD_SIZE", "RANK", "LOCAL_RANK")


@dataclass(frozen=True)
class World:
    """This process's place among the processes of one fine-tune."""

    size: int = 1
    rank: int = 0
    local_rank: int = 0
    backend: str | None = None  # None: one process, no process group

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def record(self) -> dict[str, Any]:
        return {"world_size": self.size, "backend": self.backend}


SINGLE = World()


def world_from_env(environ: dict[str, str] | None = None) -> World:
    """The world torchrun describes (WORLD_SIZE > 1), or the single process; the backend is
    filled in by `device_for`."""
    env = os.environ if environ is None else environ
    try:
        size = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise UsageError(
            "WORLD_SIZE, RANK and LOCAL_RANK must be integers (as torchrun sets them)"
        ) from None
    if size <= 1:
        return SINGLE
    if not 0 <= rank < size or local < 0:
        raise UsageError(f"RANK {rank} / LOCAL_RANK {local} do not fit WORLD_SIZE {size}")
    return World(size=size, rank=rank, local_rank=local)


def per_process_batch(batch_size: int, world: World) -> int:
    """--batch-size is the global batch: each process's share, which must be whole."""
    if batch_size % world.size:
        raise UsageError(
            f"--batch-size: the global batch {batch_size} does not divide across "
            f"{world.size} processes; use a multiple of {world.size}"
        )
    return batch_size // world.size


# -- fingerprints -------------------------------------------------------------------------------


def _sha256(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def recipe_hash(config: FinetuneConfig, pipeline: str) -> str:
    """The recipe of one pipeline's run: the options in RECIPE_FIELDS and the pipeline."""
    return _sha256([config.recipe(), pipeline])[:16]


def fingerprint(config: FinetuneConfig, pipeline: str, seed: int, data_hash: str) -> dict[str, Any]:
    """What makes a checkpoint this run's: compared field by field (FINGERPRINT_FIELDS) on
    resume."""
    return {
        "backbone": config.backbone,
        "pipeline": pipeline,
        "recipe": recipe_hash(config, pipeline),
        "data": data_hash,
        "seed": seed,
    }


def run_key(config: FinetuneConfig, data_hash: str) -> str:
    """RUN_KEY_DIGITS hex digits of the sha256 of the recipe and the data's content: the
    default checkpoint folder's suffix, so two different runs never share a folder."""
    return _sha256([config.recipe(), data_hash])[:RUN_KEY_DIGITS]


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "data"


def default_checkpoint_dir(config: FinetuneConfig, data: Path, data_hash: str) -> Path:
    """results/finetune/<backbone>-<data name>-<run key>."""
    name = Path(os.path.abspath(data)).stem
    return CHECKPOINT_DIR / f"{_safe(config.backbone)}-{_safe(name)}-{run_key(config, data_hash)}"


def checkpoint_paths(folder: Path, pipeline: str, seed: int) -> dict[str, Path]:
    """`<pipeline>-seed<seed>-{best,last,state}.pt` in folder."""
    stem = f"{pipeline}-seed{seed}"
    return {k: folder / f"{stem}-{k}.pt" for k in CHECKPOINT_KINDS}


def run_checkpoints(config: FinetuneConfig, folder: Path) -> list[Path]:
    """The checkpoint files of this run's pipelines and seeds that exist in folder."""
    return [
        path
        for seed in config.seeds_used
        for pipeline in config.pipelines
        for path in checkpoint_paths(folder, pipeline, seed).values()
        if os.path.lexists(path)
    ]


# -- the checkpoint folder, before any work --------------------------------------------------


def check_checkpoint_folder(folder: Path, label: str) -> None:
    """UsageError unless folder is (or can be made as) a folder we can write in."""
    try:
        st = folder.stat()
    except (FileNotFoundError, NotADirectoryError):
        st = None
    except OSError as exc:
        raise UsageError(f"{label}: cannot check ({exc.strerror or exc})") from None
    if st is not None and not stat.S_ISDIR(st.st_mode):
        raise UsageError(f"{label}: is a {file_kind(st.st_mode)}, expected a folder")
    check_folder(folder, label)


def check_checkpoint_state(
    config: FinetuneConfig, folder: Path, force: bool, default_folder: bool = False
) -> None:
    """--resume needs checkpoints of this run in folder; a fresh run must not silently replace
    them (--force starts over)."""
    found = run_checkpoints(config, folder)
    if config.resume and not found:
        why = (
            " (the default folder is named after the data and the recipe: a resume needs the "
            "same options and data)"
            if default_folder
            else ""
        )
        raise UsageError(
            f"--resume: no checkpoint to resume in {folder}; run without --resume{why}"
        )
    if not config.resume and found and not force:
        raise UsageError(
            f"{folder} holds checkpoints of a run ({found[0].name}); pass --resume to "
            "continue it, or --force to start over"
        )
