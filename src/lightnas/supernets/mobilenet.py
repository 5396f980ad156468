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
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lightnas.errors import LightnasError
from lightnas.space import Arch, Choice, SearchSpace
from lightnas.supernets.base import PrecisionGroup, Supernet, SupernetConfig, group_parts, resize_input
from lightnas.supernets.blocks import ElasticBlock, PlainBlock, copy_bn, receptive_field, stage_width
from lightnas.supernets.registry import register_supernet


@dataclass(frozen=True)
class StageSpec:
    """One stage: max output channels, depth choices, stride of its first block."""

    channels: int
    depths: tuple[int, ...] = (1, 2, 3)
    stride: int = 1


SMALL_STAGES = (StageSpec(24, (1, 2), 2), StageSpec(32, (1, 2, 3), 1), StageSpec(48, (1, 2, 3), 1))
"""Inputs under :data:`LARGE_FROM` pixels: the stem and the first stage each halve
the resolution (28x28 -> 7x7) and the later stages keep it."""
LARGE_STAGES = (
    StageSpec(24, (2, 3, 4), 2),
    StageSpec(40, (2, 3, 4), 2),
    StageSpec(80, (2, 3, 4), 2),
    StageSpec(112, (2, 3, 4), 1),
    StageSpec(160, (2, 3, 4), 2),
)
"""Inputs of :data:`LARGE_FROM` pixels and more: MobileNetV3 / Once-for-All's
schedule (a stride-2 stem, then the resolution halved by four stages: 224 ->
7), with Once-for-All's widths and depths of 2-4."""
LARGE_FROM = 64


@dataclass(frozen=True)
class MobileNetConfig(SupernetConfig):
    """Everything that defines the super-network (serialised into checkpoints).

    The layout follows the input size (fields left at their zero defaults are
    filled in from it; a config read back holds them all). Under
    :data:`LARGE_FROM` pixels (28x28 digits and clothes, 32x32 CIFAR) the
    stem and the first stage each halve the resolution and the later stages
    keep it, because PyTorch's CPU backward of large depthwise kernels on
    maps of 4x4 and less is pathologically slow (measured: 4x the time per
    element of 7x7 maps), and the head keeps the spatial layout
    (``pool="flatten"``), which learned faster than global pooling on
    Fashion-MNIST. From :data:`LARGE_FROM` pixels up, the stride schedule of
    MobileNetV2/V3 and Once-for-All (:data:`LARGE_STAGES`), a 1x1 head of
    ``head_channels`` and global average pooling before a small classifier:
    at 224 px the smallest sub-network has 44M MACs and the largest 554M.
    """

    stem_channels: int = 0  # 0: 16
    stages: tuple[StageSpec, ...] = ()  # (): SMALL_STAGES or LARGE_STAGES, by the input size
    kernels: tuple[int, ...] = (3, 5, 7)
    expands: tuple[int, ...] = (3, 4, 6)
    widths: tuple[float, ...] = (0.5, 0.75, 1.0)
    head_channels: int = 0  # 0: 32 (small inputs) or 640
    dropout: float = 0.1
    stem_stride_: int = 0  # 0: 2 (subject to the rule of ``strides``)
    pool: str = ""  # "flatten" (keeps the spatial layout) or "avg" (global average); "": by the input size
    kernel_transform: bool = True  # smaller kernels = transformed centres of larger ones (Once-for-All)
    resolutions: tuple[int, ...] | None = None  # input heights searched; None: default_resolutions, (): fixed

    def __post_init__(self) -> None:
        super().__post_init__()
        _, h, w = self.input_shape
        if h < 8 or w < 8:
            raise LightnasError(f"input shape {self.input_shape} is too small (H, W >= 8)")
        large = min(h, w) >= LARGE_FROM
        for name, value in (
            ("stem_channels", 16),
            ("stages", LARGE_STAGES if large else SMALL_STAGES),
            ("head_channels", 640 if large else 32),
            ("pool", "avg" if large else "flatten"),
        ):
            if not getattr(self, name):
                object.__setattr__(self, name, value)
        if self.pool not in ("avg", "flatten"):
            raise LightnasError(f"pool must be 'avg' or 'flatten', not {self.pool!r}")
        if not self.kernels or any(k % 2 == 0 or k < 1 for k in self.kernels):
            raise LightnasError("kernel sizes must be odd and positive")
        if not self.stages or not self.expands or not self.widths:
            raise LightnasError("a MobileNet space needs stages, expansions and widths")
        object.__setattr__(
            self, "stages", tuple(s if isinstance(s, StageSpec) else StageSpec(**s) for s in self.stages)
        )
        for name in ("kernels", "expands", "widths"):
            object.__setattr__(self, name, tuple(sorted(getattr(self, name))))
        res = default_resolutions(h) if self.pool == "avg" else () if self.resolutions is None else self.resolutions
        res = tuple(sorted({int(r) for r in res}))
        if res and (res[0] < 8 or res[-1] > h):
            raise LightnasError(f"resolutions must lie in 8..{h} (the input's height), not {list(res)}")
        if len(res) > 1 and self.pool != "avg":
            raise LightnasError("elastic resolution needs global pooling (pool='avg'): a flattened head fixes the size")
        object.__setattr__(self, "resolutions", res if len(res) > 1 else ())

    def input_hw(self, resolution: int) -> tuple[int, int]:
        """(H, W) of an input of height ``resolution`` (the width scaled alike)."""
        h, w = self.input_shape[1:]
        return resolution, max(1, round(w * resolution / h))

    def strides(self) -> list[int]:
        """Effective strides of the stem and of each stage's first block: a
        declared stride of 2 applies only while the map it makes stays at
        least :meth:`min_map` pixels on its shorter side (8x8 digits are not
        shrunk to 2x2)."""
        size = min(self.input_shape[1:])
        out = []
        floor = self.min_map()
        for declared in [self.stem_stride_ or 2] + [s.stride for s in self.stages]:
            stride = declared if (size - 1) // declared + 1 >= floor else 1
            size = (size - 1) // stride + 1
            out.append(stride)
        return out

    def min_map(self) -> int:
        """The smallest feature map a stride may make: 7 pixels in the small
        layout (global pooling is not used there), 3 with global pooling
        (MobileNetV2 ends at 3x3 on 96-px inputs, 7x7 on 224)."""
        return 3 if self.pool == "avg" else 7

    @property
    def stem_stride(self) -> int:
        return self.strides()[0]

    def stage_stride(self, s: int) -> int:
        """Effective stride of stage ``s`` (1-based)."""
        return self.strides()[s]

    def head_size(self) -> int:
        """Number of positions (h * w) of the last feature map."""
        h, w = self.input_shape[1:]
        for stride in self.strides():
            h, w = (h - 1) // stride + 1, (w - 1) // stride + 1
        return h * w


def default_resolutions(side: int) -> tuple[int, ...]:
    """Four input sizes from 4/7 of ``side`` to ``side``, multiples of 8 where
    that keeps them apart (Once-for-All's 128-224 at 224 px; 40-64 at 64 px)."""
    steps = [side * k / 7 for k in (4, 5, 6)]
    return (*sorted({int(round(v / 8) * 8) if side >= 56 else int(round(v)) for v in steps}), side)


def build_space(cfg: MobileNetConfig) -> SearchSpace:
    dims: list[Choice] = [Choice("r", cfg.resolutions, ordinal=True)] if cfg.resolutions else []
    for s, st in enumerate(cfg.stages, start=1):
        dims.append(Choice(f"s{s}d", tuple(sorted(st.depths)), ordinal=True))
        dims.append(Choice(f"s{s}w", cfg.widths, ordinal=True))
        for b in range(1, max(st.depths) + 1):
            cond = None if b <= min(st.depths) else (f"s{s}d", b)
            dims.append(Choice(f"s{s}b{b}k", cfg.kernels, active_if=cond, ordinal=True))
            dims.append(Choice(f"s{s}b{b}e", cfg.expands, active_if=cond, ordinal=True))
    return SearchSpace(tuple(dims), name="mobilenet")


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
        blocks: list[ElasticBlock] = []
        self.stage_of: list[tuple[int, int]] = []  # (stage, block) of each block, 1-based
        prev = cfg.stem_channels
        for s, st in enumerate(cfg.stages, start=1):
            for b in range(1, max(st.depths) + 1):
                stride = cfg.stage_stride(s) if b == 1 else 1
                blocks.append(
                    ElasticBlock(prev, st.channels, max(cfg.expands), cfg.kernels, stride, cfg.kernel_transform)
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
                x = blk(x)
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


def input_shape_for(cfg: MobileNetConfig, arch: Arch) -> tuple[int, int, int]:
    """(C, H, W) of ``arch``'s input: the config's, or its resolution's when that is searched."""
    if not cfg.resolutions:
        return cfg.input_shape
    return (cfg.input_shape[0], *cfg.input_hw(int(arch["r"])))


def _spatial(cfg: MobileNetConfig, hw: tuple[int, int] | None = None) -> list[tuple[int, int]]:
    """Input (h, w) of the stem and of each stage's first block, then of the
    head, for an input of ``hw`` (default: the config's); the strides are the
    config's at its full size."""
    h, w = hw or cfg.input_shape[1:]
    sizes = [(h, w)]
    for stride in cfg.strides():
        h, w = (h - 1) // stride + 1, (w - 1) // stride + 1
        sizes.append((h, w))
    return sizes


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
    sizes = _spatial(cfg, input_shape_for(cfg, arch)[1:])
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
        parts |= _parts_at(cfg, _spatial(cfg, cfg.input_hw(r)))
    return sorted(parts, key=str)


def _parts_at(cfg: MobileNetConfig, sizes: list[tuple[int, int]]) -> set[tuple]:
    parts: set[tuple] = {_ends(cfg, sizes, 0)[0]}
    ins = {cfg.stem_channels}
    for s, st in enumerate(cfg.stages, start=1):
        outs = {stage_width(st.channels, w) for w in cfg.widths}
        h, w = sizes[s]
        for b in range(1, max(st.depths) + 1):
            stride = cfg.stage_stride(s) if b == 1 else 1
            srcs = ins if b == 1 else outs
            for c_in in srcs:
                for out in outs:
                    for e in cfg.expands:
                        for k in cfg.kernels:
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
        h, w = part[2:] or _spatial(cfg)[-1]
        return _Head(cfg, part[1]).eval(), (part[1], h, w)
    _, c_in, out, e, k, stride, h, w = part
    return PlainBlock(c_in, out, e, k, stride).eval(), (c_in, h, w)
