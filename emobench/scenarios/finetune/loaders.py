"""Training images for the fine-tune: augmentation at 48x48 and the DataLoader around them."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from emobench.data.labeled import Split
from emobench.scenarios.finetune.recipe import FinetuneConfig
from emobench.scenarios.finetune.settings import MAX_EPOCHS

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
    dataset: AugmentedImages,
    config: FinetuneConfig,
    device: torch.device,
    shuffle: bool,
    seed: int,
    epoch: int = 0,
    world_size: int = 1,
    rank: int = 0,
) -> DataLoader[tuple[Tensor, int]]:
    """This process's batches: --batch-size / world_size images each, in an order drawn from
    (seed, epoch) alone, so one process and several see the same global batches.

    Process `rank` takes every world_size-th index of the epoch's permutation
    (DistributedSampler, drop_last=False: a split that does not divide by world_size repeats
    its first few images); global batch i is then the permutation's i-th run of --batch-size
    indices, whatever the world size. Each run seed's orders are apart from every other's:
    the sampler draws from seed * (MAX_EPOCHS + 1) + epoch."""
    sampler: DistributedSampler[tuple[Tensor, int]] = DistributedSampler(
        dataset,
        num_replicas=world_size,
        rank=rank,
        shuffle=shuffle,
        seed=seed * (MAX_EPOCHS + 1),
        drop_last=False,
    )
    sampler.set_epoch(epoch)
    generator = torch.Generator().manual_seed(hash((seed, epoch)) & 0xFFFFFFFF)  # workers' seeds
    return DataLoader(
        dataset,
        batch_size=config.batch_size // world_size,
        sampler=sampler,
        num_workers=config.workers,
        pin_memory=device.type == "cuda",
        generator=generator,
        drop_last=False,
    )
