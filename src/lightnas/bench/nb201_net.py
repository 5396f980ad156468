"""The NAS-Bench-201 network in PyTorch: a search space of real modules.

``build(code)`` returns the network NAS-Bench-201 trains for a cell (op
indices in :data:`lightnas.bench.nb201.OPS` order, edges in
:data:`lightnas.bench.nb201.EDGES` order): a 3x3 stem convolution with 16
channels, three stages of ``cells`` identical cells (16, 32 and 64 channels)
joined by residual reduction blocks, then BatchNorm, ReLU, global pooling and
a linear classifier. In a cell, node ``j`` is the sum over ``i < j`` of
``op(i -> j)`` applied to node ``i``; node 0 is the cell's input and node 3 its
output. ``none`` is a zero, ``conv1``/``conv3`` are ReLU-Conv-BN.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lightnas.bench.nb201 import EDGES, OPS


class _Zero(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def _relu_conv_bn(c_in: int, c_out: int, k: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.ReLU(), nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False), nn.BatchNorm2d(c_out))


def _op(name: str, c: int) -> nn.Module:
    if name == "none":
        return _Zero()
    if name == "skip":
        return nn.Identity()
    if name == "conv1":
        return _relu_conv_bn(c, c, 1, 1)
    if name == "conv3":
        return _relu_conv_bn(c, c, 3, 1)
    return nn.AvgPool2d(3, 1, 1, count_include_pad=False)


class Cell(nn.Module):
    """Four nodes, six edges (``e{to}{from}``)."""

    def __init__(self, code: Sequence[int], c: int):
        super().__init__()
        self.edges = nn.ModuleDict({e: _op(OPS[i], c) for e, i in zip(EDGES, code, strict=True)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for j in (1, 2, 3):
            nodes.append(sum(self.edges[f"e{j}{i}"](nodes[i]) for i in range(j)))
        return nodes[3]


class Reduction(nn.Module):
    """NAS-Bench-201's residual block between stages (stride 2, channels x2)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.a = _relu_conv_bn(c_in, c_out, 3, 2)
        self.b = _relu_conv_bn(c_out, c_out, 3, 1)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x)) + self.shortcut(x)


def build(code: Sequence[int], cells: int = 5, channels: int = 16, n_classes: int = 10) -> nn.Module:
    """The CIFAR network of one cell: input (N, 3, 32, 32), ``n_classes`` logits."""
    layers: list[nn.Module] = [nn.Conv2d(3, channels, 3, 1, 1, bias=False), nn.BatchNorm2d(channels)]
    c = channels
    for stage in range(3):
        if stage:
            layers.append(Reduction(c, 2 * c))
            c *= 2
        layers += [Cell(code, c) for _ in range(cells)]
    layers += [nn.BatchNorm2d(c), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, n_classes)]
    return nn.Sequential(*layers)
