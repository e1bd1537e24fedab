"""FLOPs and parameter counts: two per multiply-add, unused and frozen parameters."""

from __future__ import annotations

import torch
from torch import nn

from emobench.measure.flops import count_flops, count_parameters


def test_count_flops_counts_two_per_multiply_add() -> None:
    layer = nn.Linear(10, 20, bias=False)
    x = torch.randn(3, 10)
    assert count_flops(lambda: layer(x)) == 2 * 3 * 10 * 20


def test_count_parameters_finds_unused_and_frozen() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.used = nn.Linear(4, 4)  # 20
            self.frozen = nn.Linear(4, 2)  # 10
            self.never = nn.Linear(100, 10)  # 1010, never called

        def forward(self, x):
            return self.frozen(self.used(x))

    net = Net()
    net.frozen.requires_grad_(False)
    counts = count_parameters(net, lambda: net(torch.zeros(1, 4)))
    assert (counts.total, counts.trainable, counts.unused) == (1040, 1030, 1010)


def test_unused_parameters_are_counted_per_parameter() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(4, 4)  # weight used directly, bias never: partly used module
            self.b = nn.Linear(4, 4)  # never called, but its weight is used through F.linear
            self.dead = nn.Linear(4, 100)  # a dead branch: 500 parameters
            self.tied = nn.Linear(4, 4, bias=False)
            self.tied.weight = self.a.weight  # tied: one parameter, counted once

        def forward(self, x):
            h = torch.nn.functional.linear(x, self.a.weight)  # a.bias is never read
            return torch.nn.functional.linear(h, self.b.weight)  # b's module never runs

    net = Net()
    counts = count_parameters(net, lambda: net(torch.zeros(1, 4)))
    # a.weight 16 (tied with tied.weight), a.bias 4, b.weight 16, b.bias 4, dead 400 + 100
    assert counts.total == 16 + 4 + 16 + 4 + 500
    assert counts.unused == 4 + 4 + 500  # a.bias, b.bias and the dead branch
    assert counts.unused <= counts.total
