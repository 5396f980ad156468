"""A super-network defined outside lightnas, registered through the ``lightnas.supernets`` entry point.

One convolution of elastic width, then a linear classifier: the smallest
complete plug-in, used by tests/test_plugins.py.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lightnas.space import Arch, Choice, SearchSpace
from lightnas.supernets.base import Supernet, SupernetConfig


@dataclass(frozen=True)
class ToyConfig(SupernetConfig):
    widths: tuple[int, ...] = (4, 8, 12)


class Plain(nn.Module):
    def __init__(self, c_in: int, width: int, n_classes: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, width, 3, 2, 1)
        self.fc = nn.Linear(width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.relu(self.conv(x)).mean((2, 3)))


class ToyNet(Supernet):
    """One convolution of elastic width and a classifier."""

    config_class = ToyConfig

    def __init__(self, config: ToyConfig):
        super().__init__(config)
        self.space = SearchSpace((Choice("w", config.widths, ordinal=True),), name="toy")
        self.full = Plain(config.input_shape[0], max(config.widths), config.n_classes)
        self.set_active(self.space.largest())

    def set_active(self, arch: Arch) -> None:
        self.active_arch = self.space.make(dict(arch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = int(self.active_arch["w"])
        h = F.relu(F.conv2d(x, self.full.conv.weight[:w], self.full.conv.bias[:w], 2, 1))
        return F.linear(h.mean((2, 3)), self.full.fc.weight[:, :w], self.full.fc.bias)

    @torch.no_grad()
    def extract(self, arch: Arch) -> Plain:
        w = int(self.space.make(dict(arch))["w"])
        plain = Plain(self.config.input_shape[0], w, self.config.n_classes)
        plain.conv.weight.copy_(self.full.conv.weight[:w])
        plain.conv.bias.copy_(self.full.conv.bias[:w])
        plain.fc.weight.copy_(self.full.fc.weight[:, :w])
        plain.fc.bias.copy_(self.full.fc.bias)
        return plain.eval()

    def elastic_groups(self) -> dict[str, str]:
        return {"w": "width"}

    def latency_parts(self, arch: Arch) -> list[Hashable]:
        return [("net", int(self.space.make(dict(arch))["w"]))]

    def all_latency_parts(self) -> list[Hashable]:
        return [("net", w) for w in self.config.widths]

    def build_part(self, part: Hashable) -> tuple[nn.Module, tuple[int, ...]]:
        return Plain(self.config.input_shape[0], part[1], self.config.n_classes).eval(), self.config.input_shape
