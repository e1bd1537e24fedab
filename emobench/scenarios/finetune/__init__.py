"""Fine-tune both pipelines with one recipe on labelled data; score them on the same held-out
images and compare the two paired (McNemar's exact test, a bootstrap interval).

The recipe is identical for both pipelines: the same 48x48 augmentation before any upscaling,
the same optimizer, schedule, loss, batch size, seeds and speed options.

settings (options and their checks, fingerprints, checkpoint folders: torch-free), recipe
(optimizer, schedule), loaders (augmented images), trainer (the training loop), checkpoint
(save, verify, resume), scoring (test scores, paired comparison), run (the whole fine-tune and
its Report), distributed (the process group and collectives of a torchrun data-parallel run).
Tests patch `build_model` on the run module, where run_finetune looks it up.

Importing this package, or its settings, does not import torch: the CLI checks every option
first. The torch-backed names below are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from emobench.scenarios.finetune.settings import (
    CHECKPOINT_DIR,
    DEFAULT_LR,
    DEFAULT_WEIGHT_DECAY,
    OPTIMIZERS,
    SCHEDULES,
    FinetuneConfig,
    checkpoint_paths,
    recipe_hash,
)

if TYPE_CHECKING:
    from emobench.scenarios.finetune.loaders import CROP_PADDING, AugmentedImages
    from emobench.scenarios.finetune.run import run_finetune, run_finetune_distributed
    from emobench.scenarios.finetune.scoring import paired_comparison, predict
    from emobench.stats.classification import confusion_matrix, macro_f1, mcnemar_exact

_LAZY = {
    "CROP_PADDING": "emobench.scenarios.finetune.loaders",
    "AugmentedImages": "emobench.scenarios.finetune.loaders",
    "run_finetune": "emobench.scenarios.finetune.run",
    "run_finetune_distributed": "emobench.scenarios.finetune.run",
    "paired_comparison": "emobench.scenarios.finetune.scoring",
    "predict": "emobench.scenarios.finetune.scoring",
    # the statistics the paired comparison uses, importable from here as before the split
    "confusion_matrix": "emobench.stats.classification",
    "macro_f1": "emobench.stats.classification",
    "mcnemar_exact": "emobench.stats.classification",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "CHECKPOINT_DIR",
    "CROP_PADDING",
    "DEFAULT_LR",
    "DEFAULT_WEIGHT_DECAY",
    "OPTIMIZERS",
    "SCHEDULES",
    "AugmentedImages",
    "FinetuneConfig",
    "checkpoint_paths",
    "confusion_matrix",
    "macro_f1",
    "mcnemar_exact",
    "paired_comparison",
    "predict",
    "recipe_hash",
    "run_finetune",
    "run_finetune_distributed",
]
