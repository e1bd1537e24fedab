"""The fine-tune recipe's torch half: the optimizer and schedule it builds. The options, their
checks and the recipe hash a resumed run must match are torch-free, in settings.py (re-exported
here)."""

from __future__ import annotations

import torch

from emobench.models import EmotionNet
from emobench.scenarios.finetune.settings import (
    CHECKPOINT_DIR,
    DEFAULT_LR,
    DEFAULT_WEIGHT_DECAY,
    OPTIMIZERS,
    RECIPE_FIELDS,
    SCHEDULES,
    FinetuneConfig,
    recipe_hash,
)

MOMENTUM = 0.9
STEP_GAMMA = 0.1  # the step schedule divides the rate by 10 ...
STEP_EVERY = 3  # ... at a third and two thirds of the epochs

__all__ = [
    "CHECKPOINT_DIR",
    "DEFAULT_LR",
    "DEFAULT_WEIGHT_DECAY",
    "MOMENTUM",
    "OPTIMIZERS",
    "RECIPE_FIELDS",
    "SCHEDULES",
    "STEP_EVERY",
    "STEP_GAMMA",
    "FinetuneConfig",
    "make_optimizer",
    "make_scheduler",
    "recipe_hash",
]


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
