"""Copy pretrained tensors into a model wherever the shapes allow it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from emobench.models.net import TransferReport


@dataclass(frozen=True)
class DeriveRule:
    """Builds a tensor of the target's shape from a pretrained tensor of another shape."""

    description: str
    apply: Callable[[Tensor], Tensor]


def sum_pool_kernel(weight: Tensor, size: int = 3) -> Tensor:
    """Shrink a KxK conv kernel to size x size by summing non-overlapping blocks.

    The kernel is zero-padded symmetrically to a multiple of `size` (7x7 -> 9x9), then each
    3x3 block is summed. A filter's response to a constant image, its sum, is preserved exactly,
    and its coarse spatial layout (centre versus surround, orientation) is kept.
    """
    k = weight.shape[-1]
    padded = -(-k // size) * size
    before = (padded - k) // 2
    after = padded - k - before
    w = F.pad(weight, (before, after, before, after))
    block = padded // size
    return F.avg_pool2d(w, kernel_size=block, stride=block) * (block * block)


STEM_7X7_TO_3X3 = DeriveRule(
    "3x3 kernel = block sums of the zero-padded (9x9) pretrained 7x7 kernel; "
    "preserves each filter's sum",
    sum_pool_kernel,
)


def transfer_weights(
    target: nn.Module,
    source_state: Mapping[str, Tensor],
    *,
    source_name: str,
    prefix: str = "backbone.",
    derive: Mapping[str, DeriveRule] | None = None,
) -> TransferReport:
    """Copy every source tensor whose shape fits; derive the listed ones; report the rest fresh.

    A target key `prefix + K` is looked up as `K` in the source state dict. Buffers (BatchNorm
    running statistics) are state-dict entries and are copied like parameters.
    """
    derive = derive or {}
    copied: list[str] = []
    derived: dict[str, str] = {}
    fresh: list[str] = []
    with torch.no_grad():
        for key, tensor in target.state_dict().items():
            src = source_state.get(key.removeprefix(prefix)) if key.startswith(prefix) else None
            if src is not None and src.shape == tensor.shape:
                tensor.copy_(src)
                copied.append(key)
            elif src is not None and key in derive:
                tensor.copy_(derive[key].apply(src.to(tensor.dtype)))
                derived[key] = derive[key].description
            else:
                fresh.append(key)
    return TransferReport(
        source=source_name, copied=tuple(copied), derived=derived, fresh=tuple(fresh)
    )
