"""A Pipeline is preprocessing plus a model for one input size, on one device."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from torchvision import transforms

from emobench.models import EmotionNet

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESIZE_MODE = "bilinear"  # the same mode on both paths, so their outputs agree
PER_IMAGE_PATH = "per_image_pil"
BATCHED_PATH = "batched_tensor"
PREPROCESS_PATHS = (PER_IMAGE_PATH, BATCHED_PATH)


@dataclass
class Pipeline:
    name: str
    model: EmotionNet
    device: torch.device

    def __post_init__(self) -> None:
        self.model.to(self.device).eval()
        self._mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)
        steps: list[Callable[..., object]] = []
        if self.input_size != 48:
            steps.append(
                transforms.Resize(
                    (self.input_size, self.input_size),
                    interpolation=transforms.InterpolationMode.BILINEAR,
                )
            )
        steps += [transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
        self._per_image = transforms.Compose(steps)

    @property
    def input_size(self) -> int:
        return self.model.input_size

    def preprocess_per_image(self, images: np.ndarray) -> Tensor:
        """The original write-up's path: PIL L->RGB, resize, ToTensor, normalise, one by one."""
        tensors = [self._per_image(Image.fromarray(img, mode="L").convert("RGB")) for img in images]
        return torch.stack(tensors)

    def preprocess_batched(self, batch_u8: Tensor) -> Tensor:
        """The whole batch at once on the pipeline's device: uint8 (N,48,48) -> float (N,3,S,S)."""
        x = batch_u8.to(self.device, non_blocking=True).unsqueeze(1).float().div_(255.0)
        if self.input_size != x.shape[-1]:
            # Resizing one channel before the gray->RGB broadcast does a third of the work.
            x = F.interpolate(
                x, size=(self.input_size, self.input_size), mode=RESIZE_MODE, align_corners=False
            )
        return (x - self._mean) / self._std

    def infer(self, x: Tensor) -> Tensor:
        with torch.inference_mode():
            return self.model(x)

    def end_to_end(self, batch_u8_host: Tensor) -> Tensor:
        """uint8 host batch -> logits: copy, batched preprocessing, forward."""
        with torch.inference_mode():
            return self.model(self.preprocess_batched(batch_u8_host))

    def example_input(self, batch_size: int) -> Tensor:
        return torch.zeros(batch_size, 3, self.input_size, self.input_size, device=self.device)
