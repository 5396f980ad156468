"""The MobileNet space's layout from the input size: stages,
strides, searched resolutions, the search space and each stage's map size.

Shared by the MobileNet and hybrid super-networks; see :class:`MobileNetConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lightnas.errors import LightnasError
from lightnas.space import Arch, Choice, SearchSpace
from lightnas.supernets.base import SupernetConfig


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
    Each stage offers the kernels of ``kernels`` that fit its map
    (:meth:`stage_kernels`).
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
    fit_kernels: bool = True  # a stage offers only the kernels no wider than its map (see stage_kernels)
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

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MobileNetConfig:
        """As :meth:`SupernetConfig.from_dict`; a written config without
        ``fit_kernels`` (its layout filled in: ``stages`` set) predates that
        rule and keeps every kernel in every stage, so its checkpoint loads."""
        if d.get("stages") and "fit_kernels" not in d:
            d = {**d, "fit_kernels": False}
        return super().from_dict(d)

    def stage_kernels(self, s: int) -> tuple[int, ...]:
        """The depthwise kernel sizes stage ``s`` (1-based) offers: with
        ``fit_kernels``, those of :attr:`kernels` no wider than the stage's
        output map at the full input size (the smallest always). A 5x5 or 7x7
        kernel sliding over a 4x4 map reads mostly padding, and PyTorch's CPU
        backward of such a depthwise convolution is pathologically slow
        (measured at batch 128: 960 channels on 4x4 maps, 5 ms a forward and
        backward with 3x3 kernels, 89 ms with 5x5, 131 ms with 7x7). At 224 px
        (7x7 last maps) and in the small layout (7x7 maps) every stage keeps
        every kernel; at 64 px the three stages on 4x4 maps keep 3x3."""
        if not self.fit_kernels:
            return self.kernels
        side = min(spatial_sizes(self)[s + 1])
        return tuple(k for k in self.kernels if k <= side) or self.kernels[:1]

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
            dims.append(Choice(f"s{s}b{b}k", cfg.stage_kernels(s), active_if=cond, ordinal=True))
            dims.append(Choice(f"s{s}b{b}e", cfg.expands, active_if=cond, ordinal=True))
    return SearchSpace(tuple(dims), name="mobilenet")


def input_shape_for(cfg: MobileNetConfig, arch: Arch) -> tuple[int, int, int]:
    """(C, H, W) of ``arch``'s input: the config's, or its resolution's when that is searched."""
    if not cfg.resolutions:
        return cfg.input_shape
    return (cfg.input_shape[0], *cfg.input_hw(int(arch["r"])))


def spatial_sizes(cfg: MobileNetConfig, hw: tuple[int, int] | None = None) -> list[tuple[int, int]]:
    """Input (h, w) of the stem and of each stage's first block, then of the
    head, for an input of ``hw`` (default: the config's); the strides are the
    config's at its full size."""
    h, w = hw or cfg.input_shape[1:]
    sizes = [(h, w)]
    for stride in cfg.strides():
        h, w = (h - 1) // stride + 1, (w - 1) // stride + 1
        sizes.append((h, w))
    return sizes
