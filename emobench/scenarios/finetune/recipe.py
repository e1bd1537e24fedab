"""The fine-tune recipe: its options and their checks, the optimizer and schedule it builds, and
the hash a resumed run must match."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import torch

from emobench.data.labeled import LabeledData
from emobench.errors import UsageError
from emobench.models import PIPELINES, EmotionNet
from emobench.names import COMPILE_MODES, DIRECT, FINETUNE_DIR, PRECISIONS, UPSCALE

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "step")
DEFAULT_LR = {"sgd": 0.01, "adamw": 1e-3}
DEFAULT_WEIGHT_DECAY = {"sgd": 5e-4, "adamw": 0.05}
MOMENTUM = 0.9
STEP_GAMMA = 0.1  # the step schedule divides the rate by 10 ...
STEP_EVERY = 3  # ... at a third and two thirds of the epochs
CHECKPOINT_DIR = FINETUNE_DIR
# The settings a resumed run must share with the interrupted one.
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

    def __post_init__(self) -> None:
        for p in self.pipelines:
            if p not in PIPELINES:
                raise UsageError(f"--pipeline {p}: choose one of {', '.join(PIPELINES)}")
        for ok, message in _checks(self):
            if not ok:
                raise UsageError(message)

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

    def recipe(self) -> dict[str, Any]:
        """The settings a resumed run must share with the interrupted one."""
        return {k: getattr(self, k) for k in RECIPE_FIELDS} | {
            "learning_rate": self.learning_rate,
            "decay": self.decay,
        }


def _checks(config: FinetuneConfig) -> list[tuple[bool, str]]:
    """Each option's check and the message when it fails, in the order they are reported."""
    c = config
    return [
        (c.optimizer in OPTIMIZERS, f"--optimizer {c.optimizer}: choose sgd or adamw"),
        (c.schedule in SCHEDULES, f"--schedule {c.schedule}: choose cosine or step"),
        (c.precision in PRECISIONS, f"--precision {c.precision}: choose fp32/fp16/bf16"),
        (c.compile in COMPILE_MODES, f"--compile {c.compile}: unknown mode"),
        (c.epochs >= 1, f"--epochs must be >= 1, got {c.epochs}"),
        (c.batch_size >= 1, f"--batch-size must be >= 1, got {c.batch_size}"),
        (c.seeds >= 1, f"--seeds must be >= 1, got {c.seeds}"),
        (c.workers >= 0, f"--workers must be >= 0, got {c.workers}"),
        (
            0.0 <= c.label_smoothing < 1.0,
            f"--label-smoothing must be in [0, 1), got {c.label_smoothing}",
        ),
        (c.lr is None or c.lr > 0, f"--lr must be > 0, got {c.lr}"),
        (
            c.target_acc is None or 0 < c.target_acc <= 1,
            f"--target-acc must be in (0, 1], got {c.target_acc}",
        ),
        (
            c.val_fraction > 0 and c.test_fraction > 0 and c.val_fraction + c.test_fraction < 1,
            "--val-fraction and --test-fraction must be > 0 and sum to less than 1",
        ),
    ]


def recipe_hash(config: FinetuneConfig, data: LabeledData) -> str:
    """A short fingerprint of the recipe and the data set, stored in each state checkpoint."""
    text = json.dumps([config.recipe(), data.summary()], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def make_optimizer(model: EmotionNet, config: FinetuneConfig) -> torch.optim.Optimizer:
    """SGD with momentum or AdamW over the trainable parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=config.learning_rate, momentum=MOMENTUM, weight_decay=config.decay
        )
    return torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.decay)


def make_scheduler(
    optimizer: torch.optim.Optimizer, config: FinetuneConfig
) -> torch.optim.lr_scheduler.LRScheduler:
    """Cosine to 0 over the epochs, or steps of STEP_GAMMA every third of them."""
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    every = max(1, config.epochs // STEP_EVERY)
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=every, gamma=STEP_GAMMA)
