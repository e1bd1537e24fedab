"""One pipeline's own measuring steps: preprocessing, train steps, host-to-device transfers,
torch.compile, and the eager forward that counting and peak memory need.

`timed` returns None for a measurement the run's watchdog cut before its first sample; such a
measurement is left out of the report (its notes say why)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from contextlib import nullcontext
from functools import partial
from typing import Any

import numpy as np
import torch

from emobench.config import RunConfig
from emobench.measure.memory import peak_memory
from emobench.measure.timing import TimingResult, Watchdog
from emobench.models import EmotionNet
from emobench.results import PreprocessResult, TrainResult, Transfer, TransferResult
from emobench.runtimes.torch import BATCHED_PATH, PER_IMAGE_PATH, Pipeline, call_model
from emobench.scenarios.parts import _preprocess_result


def _transfer_record(model: Any) -> Transfer:
    """Which of the model's tensors are pretrained, as the report records it."""
    t = model.transfer
    assert t is not None
    return Transfer(
        source=t.source, copied=list(t.copied), derived=dict(t.derived), fresh=list(t.fresh)
    )


def _eager_forward(model: EmotionNet, x: torch.Tensor, pipe: Pipeline | None = None) -> Any:
    """The uncompiled model (under the pipeline's autocast when given); a failure is one
    ModelError naming the model and the batch size, as in Pipeline's calls."""
    with torch.inference_mode(), pipe.autocast() if pipe is not None else nullcontext():
        return call_model(model, x, model)


def _compile(pipe: Pipeline, x: torch.Tensor) -> float:
    """The first call of the compiled pipeline at `x`'s shape (compilation happens there),
    timed on its own in seconds."""
    if pipe.device.type == "cuda":
        torch.cuda.synchronize(pipe.device)
    started = time.perf_counter()
    pipe.infer(x)
    if pipe.device.type == "cuda":
        torch.cuda.synchronize(pipe.device)
    return time.perf_counter() - started


def _preprocess(
    pipe: Pipeline,
    images: np.ndarray,
    host: torch.Tensor,
    config: RunConfig,
    step: Callable[[str], None],
    tag: str,
    timed: Callable[..., TimingResult | None],
) -> list[PreprocessResult]:
    n = config.preprocess_images
    step(f"{tag}: preprocessing, per-image PIL path ({n} images)")
    per_image = timed(partial(pipe.preprocess_per_image, images[:n]))
    step(f"{tag}: preprocessing, batched tensor path ({n} images)")
    batched = timed(partial(pipe.preprocess_batched, host[:n]), blocked=True)
    return [
        _preprocess_result(path, n, t)
        for path, t in ((PER_IMAGE_PATH, per_image), (BATCHED_PATH, batched))
        if t is not None
    ]


def _train(
    pipe: Pipeline,
    config: RunConfig,
    step: Callable[[str], None],
    tag: str,
    timed: Callable[..., TimingResult | None],
    watched: Callable[[Callable[[Watchdog], Any]], Any],
) -> list[TrainResult]:
    results = []
    pipe.model.train()
    optimizer = pipe.new_optimizer()
    try:
        for bs in config.batch_sizes:
            step(f"{tag}: train step, batch {bs}")
            x = pipe.example_input(bs, random=True)
            labels = torch.randint(0, config.num_classes, (bs,), device=pipe.device)
            one_step = partial(pipe.train_step, x, labels, optimizer)
            # untimed steps first (fp16: until GradScaler stops skipping overflowed steps),
            # so neither the peak nor the timed steps see a first or a skipped step
            warmed = watched(partial(_watched_warm, pipe, x, labels, optimizer)) is not None
            peak = None
            if warmed and "memory" in config.measurements:
                held = [*pipe.model.parameters(), *pipe.model.buffers(), x, labels]
                held += [t for st in optimizer.state.values() for t in st.values()]
                tensors = [t for t in held if torch.is_tensor(t)]
                peak = train_peak_of(
                    pipe, watched(partial(_watched_peak, one_step, pipe.device, tensors))
                )
            timing = timed(one_step, warmed, blocked=True)
            optimizer.zero_grad(set_to_none=True)  # what a cut step may have left
            if timing is not None:
                results.append(TrainResult(bs, bs / (timing.stats.median / 1000.0), timing, peak))
    finally:
        pipe.model.eval()
    return results


def train_peak_of(pipe: Pipeline, peak: Any) -> Any:
    """A train step's peak as measured, less what a compiled step hides: Inductor allocates its
    outputs below the dispatcher, so the live-tensor tracker undercounts them: absent (None)
    under --compile rather than too small (the allocator's figures stay: they see everything)."""
    if peak is None or not pipe.compiled:
        return peak
    return dataclasses.replace(peak, tensor_peak_bytes=None)


def _watched_peak(
    fn: Callable[[], object], device: torch.device, held: list[torch.Tensor], watchdog: Watchdog
) -> Any:
    """Peak memory of one call of `fn` (already warm), the call under `watchdog`."""
    return peak_memory(partial(watchdog.call, fn), device, held)


def _watched_warm(
    pipe: Pipeline,
    x: torch.Tensor,
    labels: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    watchdog: Watchdog,
) -> int:
    """The untimed train steps (Pipeline.warm_train), under `watchdog`."""
    return watchdog.call(pipe.warm_train, x, labels, optimizer)


def _to_device(
    pipe: Pipeline,
    host: torch.Tensor,
    config: RunConfig,
    step: Callable[[str], None],
    tag: str,
    timed: Callable[..., TimingResult | None],
) -> list[TransferResult]:
    """Each way of getting this pipeline's input onto the GPU (pinned host memory); a way
    whose timing the watchdog cut is left out."""
    out = []
    cpu = torch.device("cpu")
    for bs in config.batch_sizes:
        step(f"{tag}: host-to-device transfer, batch {bs}")
        u8 = host[:bs]
        copy_u8 = timed(partial(u8.to, pipe.device, non_blocking=True))
        if pipe.input_size == u8.shape[-1]:
            total = timed(partial(pipe.preprocess_batched, u8))
            if copy_u8 is not None and total is not None:
                out.append(
                    TransferResult(
                        bs,
                        "copy_uint8_48",
                        u8.numel(),
                        u8.is_pinned(),
                        copy_u8.stats.median,
                        total.stats.median,
                    )
                )
            continue
        # upscale on the host, then copy the float 224x224 batch
        f32 = pipe.preprocess_batched(u8, device=cpu).pin_memory()
        copy_f32 = timed(partial(f32.to, pipe.device, non_blocking=True))
        host_path = timed(partial(_host_upscale_then_copy, pipe, u8))
        if copy_f32 is not None and host_path is not None:
            out.append(
                TransferResult(
                    bs,
                    "host_upscale_then_copy_f32",
                    f32.numel() * f32.element_size(),
                    True,
                    copy_f32.stats.median,
                    host_path.stats.median,
                )
            )
        on_device = timed(partial(pipe.preprocess_batched, u8))
        if copy_u8 is not None and on_device is not None:
            out.append(
                TransferResult(
                    bs,
                    "copy_uint8_then_device_upscale",
                    u8.numel(),
                    u8.is_pinned(),
                    copy_u8.stats.median,
                    on_device.stats.median,
                )
            )
    return out


def _host_upscale_then_copy(pipe: Pipeline, u8: torch.Tensor) -> torch.Tensor:
    """Preprocess (upscale) on the host, then copy the float batch to the device."""
    f32 = pipe.preprocess_batched(u8, device=torch.device("cpu")).pin_memory()
    return f32.to(pipe.device, non_blocking=True)
