"""Training images for the fine-tune: augmentation at 48x48 and the DataLoader around them."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from emobench.data.labeled import Split
from emobench.scenarios.finetune.recipe import FinetuneConfig

CROP_PADDING = 4
AUGMENTATION = (
    f"random crop 48 from 48 padded by {CROP_PADDING}, horizontal flip "
    "(at 48x48, before any upscaling)"
)


class AugmentedImages(Dataset[tuple[Tensor, int]]):
    """uint8 48x48 images with per-sample augmentation at 48x48: a random crop from the image
    padded by CROP_PADDING (reflected, so brightness statistics survive) and a horizontal flip.

    The randomness depends only on (seed, epoch, index), so a redone epoch sees the same images
    whatever the workers."""

    def __init__(self, split: Split, seed: int, augment: bool) -> None:
        self.images = split.images
        self.labels = split.labels
        self.seed = seed
        self.augment = augment
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        img = self.images[index]
        if self.augment:
            rng = np.random.default_rng((self.seed, self.epoch, index))
            dy, dx = rng.integers(0, 2 * CROP_PADDING + 1, size=2)
            padded = np.pad(img, CROP_PADDING, mode="reflect")
            img = padded[dy : dy + img.shape[0], dx : dx + img.shape[1]]
            if rng.random() < 0.5:
                img = img[:, ::-1]
        return torch.from_numpy(np.ascontiguousarray(img)), int(self.labels[index])


def make_loader(
    dataset: AugmentedImages, config: FinetuneConfig, device: torch.device, shuffle: bool, seed: int
) -> DataLoader[tuple[Tensor, int]]:
    """Batches of the recipe's size; the order is drawn from its own generator seeded by seed."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=config.batch_size,
        shuffle=shuffle,
        num_workers=config.workers,
        pin_memory=device.type == "cuda",
        generator=generator,
        drop_last=False,
    )
