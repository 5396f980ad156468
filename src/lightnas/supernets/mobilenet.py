"""Elastic MobileNetV2/V3-style CNN super-network.

Stages of inverted-residual blocks (1x1 expand, k x k depthwise, 1x1
project, residual when shapes allow). Elastic per block: kernel size
(centre crop of the largest kernel) and expansion ratio (leading hidden
channels); per stage: depth (the first blocks) and width (leading output
channels). Every sub-network's weights are slices of the super-network's.

``extract(arch)`` builds a :class:`PlainNet` of ordinary ``nn.Conv2d`` /
``nn.BatchNorm2d`` / ``nn.Linear`` modules holding copies of the slices.
"""

from __future__ import annotations

from collections.abc import Hashable

import torch
import torch.nn.functional as F
from torch import nn

from lightnas.space import Arch
from lightnas.supernets.base import PrecisionGroup, Supernet, group_parts, resize_input
from lightnas.supernets.blocks import ElasticConvBlock, PlainBlock, copy_bn, receptive_field, stage_width
from lightnas.supernets.layout import (  # noqa: F401  (MobileNetConfig, StageSpec: importable from here too)
    LARGE_FROM,
    MobileNetConfig,
    StageSpec,
    build_space,
    input_shape_for,
    spatial_sizes,
)
from lightnas.supernets.registry import register_supernet


def _pooled(cfg: MobileNetConfig) -> int:
    return cfg.head_channels * (cfg.head_size() if cfg.pool == "flatten" else 1)


def _pool(x: torch.Tensor, how: str) -> torch.Tensor:
    if how == "flatten":
        return torch.flatten(x, 1)
    return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


@register_supernet("mobilenet")
class ElasticMobileNet(Supernet):
    """MobileNetV2/V3-style CNN: elastic kernel, expansion, depth and width."""

    config_class = MobileNetConfig
    part_fields = {"block": ("in", "out", "expand", "kernel", "stride", "height", "width"), "head": ("in",)}

    def __init__(self, config: MobileNetConfig):
        super().__init__(config)
        cfg = config
        self.space = build_space(cfg)
        c_in = cfg.input_shape[0]
        self.stem = nn.Conv2d(c_in, cfg.stem_channels, 3, cfg.stem_stride, 1, bias=False)
        self.stem_bn = nn.BatchNorm2d(cfg.stem_channels)
        blocks: list[ElasticConvBlock] = []
        self.stage_of: list[tuple[int, int]] = []  # (stage, block) of each block, 1-based
        prev = cfg.stem_channels
        for s, st in enumerate(cfg.stages, start=1):
            for b in range(1, max(st.depths) + 1):
                stride = cfg.stage_stride(s) if b == 1 else 1
                blocks.append(
                    ElasticConvBlock(
                        prev, st.channels, max(cfg.expands), cfg.stage_kernels(s), stride, cfg.kernel_transform
                    )
                )
                self.stage_of.append((s, b))
                prev = st.channels
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv2d(prev, cfg.head_channels, 1, bias=False)
        self.head_bn = nn.BatchNorm2d(cfg.head_channels)
        self.dropout = nn.Dropout(cfg.dropout)
        self.classifier = nn.Linear(_pooled(cfg), cfg.n_classes)
        self._depths = {s: max(st.depths) for s, st in enumerate(cfg.stages, start=1)}
        self.set_active(self.space.largest())

    @torch.no_grad()
    def init_for_training(self) -> None:
        """Zero the scale of the last BatchNorm of every block that can be
        skipped (blocks 2, 3, ... of a stage, all residual): each starts as the
        identity, so a sub-network without it sees the features the others
        see (the BigNAS initialisation)."""
        for blk, (_, b) in zip(self.blocks, self.stage_of, strict=True):
            if b > 1:
                blk.bn3.weight.zero_()

    def elastic_groups(self) -> dict[str, str]:
        kinds = {"d": "depth", "w": "width", "k": "kernel", "e": "expand", "r": "resolution"}
        return {d.name: kinds[d.name[-1]] for d in self.space.dims}

    def input_shape_for(self, arch: Arch) -> tuple[int, int, int]:
        return input_shape_for(self.config, arch)

    def latency_parts(self, arch: Arch) -> list[Hashable]:
        return latency_parts(self.config, self.space.make(dict(arch)))

    def arch_features(self, arch: Arch) -> dict[str, float]:
        """``receptive_field``: input pixels along one side seen by one output position."""
        blocks = [(p[4], p[5]) for p in self.latency_parts(arch) if p[0] == "block"]  # type: ignore[index]
        return {"receptive_field": float(receptive_field([(3, self.config.stem_stride), *blocks]))}

    def precision_groups(self) -> dict[str, tuple[str, int] | None]:
        """One group per stage (the stem goes with the first), and the head."""
        return {**{f"s{s}": None for s in range(1, len(self.config.stages) + 1)}, "head": None}

    def precision_plan(self, arch: Arch) -> list[PrecisionGroup]:
        arch = self.space.make(dict(arch))
        entries = [("s1", ("stem", "stem_bn"))]
        stage_of = [s for s in range(1, len(self.config.stages) + 1) for _ in range(int(arch[f"s{s}d"]))]
        entries += [(f"s{s}", (f"blocks.{i}",)) for i, s in enumerate(stage_of)]
        return group_parts([*entries, ("head", ("head", "head_bn", "classifier"))])

    def all_latency_parts(self) -> list[Hashable]:
        return all_latency_parts(self.config)

    def build_part(self, part: Hashable) -> tuple[nn.Module, tuple[int, ...]]:
        return build_part(self.config, part)  # type: ignore[arg-type]

    def set_active(self, arch: Arch) -> None:
        """Select the sub-network ``arch`` (validated against the space)."""
        arch = self.space.make(dict(arch))
        for blk, (s, b) in zip(self.blocks, self.stage_of, strict=True):
            out = stage_width(self.config.stages[s - 1].channels, float(arch[f"s{s}w"]))
            blk.active = (int(arch[f"s{s}b{b}k"]), out, int(arch[f"s{s}b{b}e"]))
        self._depths = {s: int(arch[f"s{s}d"]) for s in range(1, len(self.config.stages) + 1)}
        self.active_arch = arch
        self._input = input_shape_for(self.config, arch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem_bn(self.stem(resize_input(x, self._input))))
        for blk, (s, b) in zip(self.blocks, self.stage_of, strict=True):
            if b <= self._depths[s]:
                x = self.block(blk, x)
        c = x.shape[1]
        x = F.relu(self.head_bn(F.conv2d(x, self.head.weight[:, :c])))
        return self.classifier(self.dropout(_pool(x, self.config.pool)))

    # -- extraction -----------------------------------------------------------
    def extract(self, arch: Arch) -> PlainNet:
        """A plain module with copies of the sub-network's weights; in eval mode
        it computes what the super-network computes with ``set_active(arch)``."""
        arch = self.space.make(dict(arch))
        net = PlainNet(self.config, arch)
        src = self
        with torch.no_grad():
            copy_bn(net.stem_bn, src.stem_bn, src.config.stem_channels)
            net.stem.weight.copy_(src.stem.weight)
            plain_blocks = iter(net.blocks)
            c_in = src.config.stem_channels
            for blk, (s, b) in zip(src.blocks, src.stage_of, strict=True):
                if b > int(arch[f"s{s}d"]):
                    continue
                out = stage_width(src.config.stages[s - 1].channels, float(arch[f"s{s}w"]))
                blk.copy_to(next(plain_blocks), c_in, out, int(arch[f"s{s}b{b}e"]), int(arch[f"s{s}b{b}k"]))
                c_in = out
            net.head.weight.copy_(src.head.weight[:, :c_in])
            copy_bn(net.head_bn, src.head_bn, src.config.head_channels)
            net.classifier.load_state_dict(src.classifier.state_dict())
        return net


# -- the deployable plain network ---------------------------------------------------------
class PlainNet(nn.Module):
    """The sub-network ``arch`` of a :class:`MobileNetConfig`, as a plain module.

    Built from (config, arch) alone, so a saved state dict loads back with
    ``weights_only=True`` and no super-network.
    """

    def __init__(self, config: MobileNetConfig, arch: Arch):
        super().__init__()
        cfg = config
        self.stem = nn.Conv2d(cfg.input_shape[0], cfg.stem_channels, 3, cfg.stem_stride, 1, bias=False)
        self.stem_bn = nn.BatchNorm2d(cfg.stem_channels)
        blocks = []
        c_in = cfg.stem_channels
        for s, st in enumerate(cfg.stages, start=1):
            out = stage_width(st.channels, float(arch[f"s{s}w"]))
            for b in range(1, int(arch[f"s{s}d"]) + 1):
                stride = cfg.stage_stride(s) if b == 1 else 1
                blocks.append(PlainBlock(c_in, out, int(arch[f"s{s}b{b}e"]), int(arch[f"s{s}b{b}k"]), stride))
                c_in = out
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Conv2d(c_in, cfg.head_channels, 1, bias=False)
        self.head_bn = nn.BatchNorm2d(cfg.head_channels)
        self.dropout = nn.Dropout(cfg.dropout)
        self.classifier = nn.Linear(_pooled(cfg), cfg.n_classes)
        self.pool = cfg.pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem_bn(self.stem(x)))
        x = self.blocks(x)
        x = F.relu(self.head_bn(self.head(x)))
        return self.classifier(self.dropout(_pool(x, self.pool)))


__all__ = ["ElasticMobileNet", "MobileNetConfig", "PlainNet", "StageSpec", "build_space"]


# -- parts for latency lookup tables ------------------------------------------------------
class _Stem(nn.Module):
    def __init__(self, net: PlainNet):
        super().__init__()
        self.stem, self.stem_bn = net.stem, net.stem_bn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.stem_bn(self.stem(x)))


class _Head(nn.Module):
    def __init__(self, cfg: MobileNetConfig, c_in: int):
        super().__init__()
        self.head = nn.Conv2d(c_in, cfg.head_channels, 1, bias=False)
        self.head_bn = nn.BatchNorm2d(cfg.head_channels)
        self.dropout = nn.Dropout(cfg.dropout)
        self.classifier = nn.Linear(_pooled(cfg), cfg.n_classes)
        self.pool = cfg.pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.head_bn(self.head(x)))
        return self.classifier(self.dropout(_pool(x, self.pool)))


def _ends(cfg: MobileNetConfig, sizes: list[tuple[int, int]], c_in: int) -> tuple[tuple, tuple]:
    """The stem's and the head's specs: with the input and head sizes when the resolution is searched."""
    if not cfg.resolutions:
        return ("stem",), ("head", c_in)
    return ("stem", *sizes[0]), ("head", c_in, *sizes[-1])


def latency_parts(cfg: MobileNetConfig, arch: Arch) -> list[tuple]:
    """The parts whose latencies add up to the sub-network's: hashable specs
    ``("stem",)``, ``("block", c_in, c_out, expand, kernel, stride, h, w)``,
    ``("head", c_in)`` (``("stem", h, w)`` and ``("head", c_in, h, w)`` when
    the resolution is searched)."""
    sizes = spatial_sizes(cfg, input_shape_for(cfg, arch)[1:])
    parts: list[tuple] = [_ends(cfg, sizes, 0)[0]]
    c_in = cfg.stem_channels
    for s, st in enumerate(cfg.stages, start=1):
        out = stage_width(st.channels, float(arch[f"s{s}w"]))
        h, w = sizes[s]
        for b in range(1, int(arch[f"s{s}d"]) + 1):
            stride = cfg.stage_stride(s) if b == 1 else 1
            parts.append(("block", c_in, out, int(arch[f"s{s}b{b}e"]), int(arch[f"s{s}b{b}k"]), stride, h, w))
            if b == 1:
                h, w = sizes[s + 1]
            c_in = out
    parts.append(_ends(cfg, sizes, c_in)[1])
    return parts


def all_latency_parts(cfg: MobileNetConfig) -> list[tuple]:
    """Every distinct part of every sub-network of the space."""
    parts: set[tuple] = set()
    for r in cfg.resolutions or (cfg.input_shape[1],):
        parts |= _parts_at(cfg, spatial_sizes(cfg, cfg.input_hw(r)))
    return sorted(parts, key=str)


def _parts_at(cfg: MobileNetConfig, sizes: list[tuple[int, int]]) -> set[tuple]:
    parts: set[tuple] = {_ends(cfg, sizes, 0)[0]}
    ins = {cfg.stem_channels}
    for s, st in enumerate(cfg.stages, start=1):
        outs = {stage_width(st.channels, w) for w in cfg.widths}
        kernels = cfg.stage_kernels(s)
        h, w = sizes[s]
        for b in range(1, max(st.depths) + 1):
            stride = cfg.stage_stride(s) if b == 1 else 1
            srcs = ins if b == 1 else outs
            for c_in in srcs:
                for out in outs:
                    for e in cfg.expands:
                        for k in kernels:
                            parts.add(("block", c_in, out, e, k, stride, h, w))
            if b == 1:
                h, w = sizes[s + 1]
        ins = outs
    return parts | {_ends(cfg, sizes, c)[1] for c in ins}


def build_part(cfg: MobileNetConfig, part: tuple) -> tuple[nn.Module, tuple[int, int, int]]:
    """A module computing ``part`` (random weights, eval mode) and its input shape."""
    if part[0] == "stem":
        plain = PlainNet(cfg, build_space(cfg).smallest())
        return _Stem(plain).eval(), (cfg.input_shape[0], *(part[1:] or cfg.input_shape[1:]))  # type: ignore[return-value]
    if part[0] == "head":
        h, w = part[2:] or spatial_sizes(cfg)[-1]
        return _Head(cfg, part[1]).eval(), (part[1], h, w)
    _, c_in, out, e, k, stride, h, w = part
    return PlainBlock(c_in, out, e, k, stride).eval(), (c_in, h, w)
