"""Fine-tune both pipelines with one recipe on labelled data; score them on the same held-out
images and compare the two paired (McNemar's exact test, a bootstrap interval).

The recipe is identical for both pipelines: the same 48x48 augmentation before any upscaling,
the same optimizer, schedule, loss, batch size, seeds and speed options.

recipe (options, optimizer, schedule, recipe hash), loaders (augmented images), trainer (the
training loop), checkpoint (save, resume), scoring (test scores, paired comparison), run (the
whole fine-tune and its Report). Tests patch `build_model` on the run module, where
run_finetune looks it up.
"""

from emobench.scenarios.finetune.checkpoint import checkpoint_paths
from emobench.scenarios.finetune.loaders import CROP_PADDING, AugmentedImages
from emobench.scenarios.finetune.recipe import (
    CHECKPOINT_DIR,
    DEFAULT_LR,
    DEFAULT_WEIGHT_DECAY,
    OPTIMIZERS,
    SCHEDULES,
    FinetuneConfig,
    recipe_hash,
)
from emobench.scenarios.finetune.run import run_finetune
from emobench.scenarios.finetune.scoring import paired_comparison, predict

# the statistics the paired comparison uses, importable from here as before the split
from emobench.stats.classification import confusion_matrix, macro_f1, mcnemar_exact

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
]
