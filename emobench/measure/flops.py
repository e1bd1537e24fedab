"""FLOPs and parameter counts of a module, from one real forward pass."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@dataclass(frozen=True)
class ParamCounts:
    total: int
    trainable: int
    unused: int  # parameters of modules the forward pass never called


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one call as torch.utils.flop_counter counts them (1 multiply-add = 2 FLOPs)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def count_parameters(module: nn.Module, forward: Callable[[], Any]) -> ParamCounts:
    """Total and trainable parameters, and those in modules that `forward` never runs."""
    called: set[int] = set()
    hooks = [
        m.register_forward_pre_hook(lambda mod, _args: called.add(id(mod)))
        for m in module.modules()
    ]
    try:
        forward()
    finally:
        for hook in hooks:
            hook.remove()
    unused = sum(
        p.numel()
        for m in module.modules()
        if id(m) not in called
        for p in m.parameters(recurse=False)
    )
    params = list(module.parameters())
    return ParamCounts(
        total=sum(p.numel() for p in params),
        trainable=sum(p.numel() for p in params if p.requires_grad),
        unused=unused,
    )
