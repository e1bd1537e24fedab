"""FLOPs and parameter counts of a module, from one real forward pass; the shapes of its
convolution and linear layers (for the compute ceiling in measure.limits)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

from emobench.measure.memory import storage_key
from emobench.results.measurements import ParamCounts


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one call as torch.utils.flop_counter counts them (1 multiply-add = 2 FLOPs)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


class _InputStorages(TorchDispatchMode):
    """Records the storage of every tensor that reaches an operator as an input."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[int] = set()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        for t in tree_flatten((args, kwargs))[0]:
            if isinstance(t, torch.Tensor) and (key := storage_key(t)) is not None:
                self.seen.add(key)
        return func(*args, **kwargs)


def count_parameters(module: nn.Module, forward: Callable[[], Any]) -> ParamCounts:
    """Total and trainable parameters (each shared tensor once), and those whose memory never
    reaches an operator during `forward`: per parameter, not per module, so a partly used
    module, a dead branch and a weight used through another module are all counted right."""
    params = list(module.parameters())  # deduplicated: a tied weight is one parameter
    with _InputStorages() as tracker:
        forward()
    unused = sum(p.numel() for p in params if storage_key(p) not in tracker.seen)
    return ParamCounts(
        total=sum(p.numel() for p in params),
        trainable=sum(p.numel() for p in params if p.requires_grad),
        unused=unused,
    )


@dataclass(frozen=True)
class Layer:
    """One convolution or linear layer as a forward pass saw it: channels (features for a
    linear layer), groups, output height x width (1 x rows for a linear layer) and FLOPs per
    call of that forward (2 per multiply-add)."""

    kind: str  # "conv" or "linear"
    cin: int
    cout: int
    groups: int
    height: int
    width: int
    flops: int


def layer_shapes(module: nn.Module, forward: Callable[[], Any]) -> list[Layer]:
    """Every nn.Conv2d and nn.Linear call during `forward`, in call order, read by forward
    hooks: works on the meta device (shapes only, no compute)."""
    seen: list[Layer] = []

    def hook(mod: nn.Module, _inputs: Any, out: Any) -> None:
        if not isinstance(out, torch.Tensor):
            return
        if isinstance(mod, nn.Conv2d) and out.dim() == 4:
            kh, kw = mod.kernel_size
            macs = out.numel() * (mod.in_channels // mod.groups) * kh * kw
            seen.append(
                Layer("conv", mod.in_channels, mod.out_channels, mod.groups,
                      int(out.shape[2]), int(out.shape[3]), 2 * macs)
            )  # fmt: skip
        elif isinstance(mod, nn.Linear):
            rows = out.numel() // max(1, mod.out_features)
            macs = out.numel() * mod.in_features
            seen.append(Layer("linear", mod.in_features, mod.out_features, 1, 1, rows, 2 * macs))

    handles = [
        m.register_forward_hook(hook)
        for m in module.modules()
        if isinstance(m, nn.Conv2d | nn.Linear)
    ]
    try:
        forward()
    finally:
        for h in handles:
            h.remove()
    return seen
