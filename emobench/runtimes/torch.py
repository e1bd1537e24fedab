"""A Pipeline is preprocessing plus a model for one input size, on one device.

Every model call goes through `Pipeline._run_model`: the first call at each batch size (in
eval and in train mode) checks that the output is a (batch, num_classes) tensor, and a model
that raises or exits there becomes one ModelError naming the backbone, pipeline and batch size.
After that first call the cost is a set lookup on (training, batch size); the try block is free
(Python >= 3.11 raises no cost until something is raised). Out-of-memory errors pass as they
are, with the batch size noted on them (`batch_size`): maxbatch's search tells them from every
other failure, and compare names the batch in its one error line.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from torchvision import transforms

from emobench.errors import ModelError
from emobench.measure.search import is_oom
from emobench.models import BACKBONES, EmotionNet

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESIZE_MODE = "bilinear"  # the same mode on both paths, so their outputs agree
PER_IMAGE_PATH = "per_image_pil"
BATCHED_PATH = "batched_tensor"
PREPROCESS_PATHS = (PER_IMAGE_PATH, BATCHED_PATH)
AMP_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
LR = 0.01
MOMENTUM = 0.9
FP16_WARM_STEPS = 3  # untimed train steps in fp16 at least (GradScaler's skipped steps)
FP16_MAX_WARM_STEPS = 8  # ... and at most, while the scaler still skips steps


@dataclass
class Pipeline:
    name: str
    model: EmotionNet
    device: torch.device
    precision: str = "fp32"  # fp16/bf16 run the model under autocast
    channels_last: bool = False
    num_classes: int | None = None  # the output's width; None: whatever the first call returns

    def __post_init__(self) -> None:
        self.model.to(self.device).eval()
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self._forward: Callable[[Tensor], Tensor] = self.model
        self._checked: set[tuple[bool, int]] = set()  # (training, batch size) checked so far
        self._scaler = torch.amp.GradScaler(self.device.type) if self.precision == "fp16" else None
        self._norm: dict[torch.device, tuple[Tensor, Tensor]] = {}
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
        """The original write-up's path: PIL L->RGB, resize, ToTensor, normalise, one by one,
        then stacked and (CUDA) copied to the device from pinned memory, as the batched path's
        input is: both paths end with the batch on the device the model runs on. The copy is
        asynchronous; the timers synchronise before they read the time."""
        tensors = [self._per_image(Image.fromarray(img, mode="L").convert("RGB")) for img in images]
        return to_device_pinned(torch.stack(tensors), self.device)

    def _mean_std(self, device: torch.device) -> tuple[Tensor, Tensor]:
        if device not in self._norm:
            self._norm[device] = (
                torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1),
                torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1),
            )
        return self._norm[device]

    def preprocess_batched(self, batch_u8: Tensor, device: torch.device | None = None) -> Tensor:
        """The whole batch at once on the pipeline's device (or `device`): uint8 (N,48,48) ->
        float (N,3,S,S)."""
        device = self.device if device is None else device
        mean, std = self._mean_std(device)
        x = batch_u8.to(device, non_blocking=True).unsqueeze(1).float().div_(255.0)
        if self.input_size != x.shape[-1]:
            # Resizing one channel before the gray->RGB broadcast does a third of the work.
            x = F.interpolate(
                x, size=(self.input_size, self.input_size), mode=RESIZE_MODE, align_corners=False
            )
        x = (x - mean) / std
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def autocast(self) -> AbstractContextManager[Any]:
        dtype = AMP_DTYPES.get(self.precision)
        if dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def compile(self, mode: str, shapes: int = 1) -> None:
        """Route every forward through torch.compile; compilation happens on the first call
        at each shape. Static shapes (dynamic=False): each batch size gets kernels specialised
        to it, as a deployment compiled for its batch would, and a new batch size is a
        compilation of its own (the caller warms each before timing). `shapes`: the input
        shapes the run will use, so torch's recompile limit (8 by default, after which it runs
        the model eagerly without a word) leaves room for each in eval and train mode."""
        kwargs: dict[str, Any] = {"mode": mode, "dynamic": False}
        limit = max(8, 2 * shapes + 2)
        if "recompile_limit" in inspect.signature(torch.compile).parameters:
            kwargs["recompile_limit"] = limit
        else:  # pragma: no cover - torch before the per-compile limit
            import torch._dynamo.config as dynamo_config

            dynamo_config.cache_size_limit = max(dynamo_config.cache_size_limit, limit)
        self._forward = torch.compile(self.model, **kwargs)

    @property
    def compiled(self) -> bool:
        """Whether forwards go through torch.compile (`compile` was called)."""
        return self._forward is not self.model

    def infer(self, x: Tensor) -> Tensor:
        with torch.inference_mode(), self.autocast():
            return self._run_model(x)

    def end_to_end(self, batch_u8_host: Tensor) -> Tensor:
        """uint8 host batch -> logits: copy, batched preprocessing, forward."""
        with torch.inference_mode(), self.autocast():
            return self._run_model(self.preprocess_batched(batch_u8_host))

    def _run_model(self, x: Tensor) -> Tensor:
        """The model on `x`; the output checked on the first call at this batch size."""
        out = call_model(self._forward, x, self.model)
        key = (self.model.training, x.shape[0])
        if key not in self._checked:
            self._check_output(x, out)
            self._checked.add(key)
        return out

    def _failed(self, x: Tensor, detail: str) -> ModelError:
        return model_failure(self.model, x, detail)

    def _check_output(self, x: Tensor, out: object) -> None:
        batch = x.shape[0]
        if self.num_classes is None and isinstance(out, Tensor) and out.dim() == 2:
            self.num_classes = int(out.shape[1])  # the first call's width; later ones must agree
        expected = (batch, self.num_classes)
        if not isinstance(out, Tensor):
            raise self._failed(
                x, f"returned {type(out).__name__}; expected a tensor of shape {expected}"
            )
        if tuple(out.shape) != expected:
            raise self._failed(x, f"returned shape {tuple(out.shape)}; expected {expected}")

    def example_input(self, batch_size: int, random: bool = False) -> Tensor:
        shape = (batch_size, 3, self.input_size, self.input_size)
        x = (
            torch.randn(shape, device=self.device)
            if random
            else torch.zeros(shape, device=self.device)
        )
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def new_optimizer(self) -> torch.optim.SGD:
        """SGD with momentum whose buffers already exist, so one step holds the steady state."""
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.SGD(params, lr=LR, momentum=MOMENTUM)
        for p in params:
            optimizer.state[p]["momentum_buffer"] = torch.zeros_like(p)
        return optimizer

    def warm_train(self, x: Tensor, labels: Tensor, optimizer: torch.optim.Optimizer) -> int:
        """Untimed train steps before any measured one; returns how many ran. One in fp32 and
        bf16. In fp16 the GradScaler starts at a scale of 2**16, so the first steps overflow,
        are skipped (no optimizer update) and only halve the scale: at least
        FP16_WARM_STEPS, then on until a step is not skipped (at most FP16_MAX_WARM_STEPS),
        so no timed step is a skipped one."""
        if self._scaler is None:
            self.train_step(x, labels, optimizer)
            return 1
        steps = 0
        while steps < FP16_MAX_WARM_STEPS:
            scale = float(self._scaler.get_scale())
            self.train_step(x, labels, optimizer)
            steps += 1
            skipped = float(self._scaler.get_scale()) < scale
            if steps >= FP16_WARM_STEPS and not skipped:
                break
        return steps

    def train_step(self, x: Tensor, labels: Tensor, optimizer: torch.optim.Optimizer) -> None:
        """One optimizer step: forward, cross-entropy, backward, SGD update (in train mode)."""
        with self.autocast():
            loss = F.cross_entropy(self._run_model(x), labels)
        if self._scaler is not None:
            self._scaler.scale(loss).backward()
            self._scaler.step(optimizer)
            self._scaler.update()
        else:
            loss.backward()
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def to_device_pinned(x: Tensor, device: torch.device) -> Tensor:
    """A host tensor on `device`: CUDA: through pinned memory, asynchronously; else as is."""
    if device.type != "cuda":
        return x
    return x.pin_memory().to(device, non_blocking=True)


def _raised(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"raised {type(exc).__name__}" + (f": {lines[0][:200]}" if lines else "")


def call_model(forward: Callable[[Tensor], Any], x: Tensor, model: EmotionNet) -> Any:
    """`forward(x)`; what the model raises or exits with becomes one ModelError naming it, the
    pipeline and the batch size. Out-of-memory errors pass as they are, the batch size noted on
    them as `batch_size` (maxbatch's search tells them from every other failure; compare's
    error line names the batch), and so does KeyboardInterrupt: it is taken for a Ctrl-C."""
    try:
        return forward(x)
    except Exception as exc:
        if is_oom(exc):
            if getattr(exc, "batch_size", None) is None:
                exc.batch_size = x.shape[0]  # type: ignore[attr-defined]  # for the error line
            raise
        raise model_failure(model, x, _raised(exc)) from exc
    except SystemExit as exc:
        raise model_failure(model, x, f"exited (SystemExit {exc.code!r})") from None
    except GeneratorExit as exc:
        raise model_failure(model, x, _raised(exc)) from None


def model_failure(model: EmotionNet, x: Tensor, detail: str) -> ModelError:
    """`plugin NAME: at batch N, the PIPELINE model DETAIL` (a registered backbone by name)."""
    name = model.backbone_name
    label = name if name in BACKBONES else f"plugin {name}"
    mode = " (train mode)" if model.training else ""
    return ModelError(f"{label}: at batch {x.shape[0]}, the {model.pipeline} model{mode} {detail}")
