"""Convolution stages, then attention stages: a lightweight conv + attention super-network.

The convolutions (MobileNet-style inverted-residual blocks from
:mod:`lightnas.supernets.mobilenet`, elastic kernel, expansion, depth and width)
see the image at full detail and bring it down to a small map; a 1x1
projection turns every position of that map into a token of width ``e``
(elastic) with a learned positional embedding; then ``a`` pre-norm attention
blocks (elastic count, possibly none, and per block the number of heads and
the MLP ratio, from :mod:`lightnas.supernets.attention`) mix information across the
whole image; mean pooling and a linear classifier finish. The search chooses
how much of each: the EMO / MobileViT family in one elastic space.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lightnas.errors import LightnasError
from lightnas.space import Arch, Choice, SearchSpace
from lightnas.supernets.attention import Block, ElasticAttentionBlock, Head, copy_head, copy_ln, head_forward, ln_slice
from lightnas.supernets.base import PrecisionGroup, Supernet, SupernetConfig, group_parts
from lightnas.supernets.blocks import ElasticConvBlock, PlainBlock, receptive_field, stage_width
from lightnas.supernets.layout import LARGE_FROM, StageSpec
from lightnas.supernets.registry import register_supernet

SMALL_STAGES = (StageSpec(32, (1, 2), 2), StageSpec(48, (1, 2), 1))
"""Under :data:`LARGE_FROM` pixels: tokens at 1/4 of the input (7x7 at 28 px)."""
LARGE_STAGES = (StageSpec(24, (1, 2), 2), StageSpec(40, (1, 2), 2), StageSpec(64, (1, 2), 2))
"""From :data:`LARGE_FROM` pixels: tokens at 1/16 of the input, as MobileViT and EMO
place attention (14x14 tokens at 224 px, 4x4 at 64)."""


@dataclass(frozen=True)
class HybridConfig(SupernetConfig):
    """Conv stages (as the MobileNet's), then up to ``max(attn_depths)`` attention blocks."""

    stem_channels: int = 16
    stages: tuple[StageSpec, ...] = ()  # (): SMALL_STAGES, or LARGE_STAGES from LARGE_FROM pixels
    kernels: tuple[int, ...] = (3, 5)
    expands: tuple[int, ...] = (3, 4)
    widths: tuple[float, ...] = (0.5, 0.75, 1.0)
    embed_dims: tuple[int, ...] = (64, 96)
    attn_depths: tuple[int, ...] = (0, 1, 2)
    heads: tuple[int, ...] = (2, 4)
    head_dim: int = 16
    mlp_ratios: tuple[int, ...] = (2, 3)
    mlp_conv: bool = True  # a 3x3 depthwise convolution over the token map inside every attention block's MLP
    dropout: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        stages = self.stages or (LARGE_STAGES if min(self.input_shape[1:]) >= LARGE_FROM else SMALL_STAGES)
        object.__setattr__(self, "stages", tuple(s if isinstance(s, StageSpec) else StageSpec(**s) for s in stages))
        for name in ("kernels", "expands", "widths", "embed_dims", "attn_depths", "heads", "mlp_ratios"):
            object.__setattr__(self, name, tuple(sorted(getattr(self, name))))
        if not self.stages or min(self.attn_depths) < 0 or min(self.input_shape[1:]) < 8:
            raise LightnasError("a hybrid needs conv stages, attention depths >= 0 and images of at least 8x8")

    def sizes(self) -> list[tuple[int, int]]:
        """(h, w) entering the stem and each stage, then of the token map: a stride of 2
        applies only while the map stays at least 7 pixels on its shorter side (3 for
        inputs of :data:`LARGE_FROM` pixels and more, whose tokens sit at 1/16 of the input)."""
        h, w = self.input_shape[1:]
        out = [(h, w)]
        floor = 3 if min(h, w) >= LARGE_FROM else 7
        for stride in [2] + [s.stride for s in self.stages]:
            s = stride if (min(h, w) - 1) // stride + 1 >= floor else 1
            h, w = (h - 1) // s + 1, (w - 1) // s + 1
            out.append((h, w))
        return out

    def strides(self) -> list[int]:
        sizes = self.sizes()
        return [1 if a == b else 2 for a, b in zip(sizes, sizes[1:], strict=False)]

    def tokens(self) -> int:
        h, w = self.sizes()[-1]
        return h * w

    def mlp_grid(self) -> tuple[int, int] | None:
        """The token map the attention blocks' MLP convolution runs over (None: no convolution)."""
        return self.sizes()[-1] if self.mlp_conv else None


def build_space(cfg: HybridConfig) -> SearchSpace:
    dims: list[Choice] = []
    for s, st in enumerate(cfg.stages, start=1):
        dims += [Choice(f"s{s}d", tuple(sorted(st.depths)), ordinal=True), Choice(f"s{s}w", cfg.widths, ordinal=True)]
        for b in range(1, max(st.depths) + 1):
            cond = None if b <= min(st.depths) else (f"s{s}d", b)
            dims += [Choice(f"s{s}b{b}k", cfg.kernels, cond, True), Choice(f"s{s}b{b}e", cfg.expands, cond, True)]
    dims += [Choice("a", cfg.attn_depths, ordinal=True), Choice("e", cfg.embed_dims, ordinal=True)]
    for b in range(1, max(cfg.attn_depths) + 1):
        cond = None if b <= min(cfg.attn_depths) else ("a", b)
        dims += [Choice(f"a{b}h", cfg.heads, cond, True), Choice(f"a{b}r", cfg.mlp_ratios, cond, True)]
    return SearchSpace(tuple(dims), name="hybrid")


def _conv_plan(cfg: HybridConfig, arch: Arch) -> list[tuple[int, int, int, int, int]]:
    """(c_in, c_out, expand, kernel, stride) of every conv block of ``arch``."""
    plan, c_in, strides = [], cfg.stem_channels, cfg.strides()
    for s, st in enumerate(cfg.stages, start=1):
        out = stage_width(st.channels, float(arch[f"s{s}w"]))
        for b in range(1, int(arch[f"s{s}d"]) + 1):
            stride = strides[s] if b == 1 else 1
            plan.append((c_in, out, int(arch[f"s{s}b{b}e"]), int(arch[f"s{s}b{b}k"]), stride))
            c_in = out
    return plan


# -- plain modules (the deployable network and its latency parts) ----------------------------
class Stem(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class Tokens(nn.Module):
    """1x1 projection of the feature map to tokens (B, N, e), plus positions."""

    def __init__(self, c_in: int, embed: int, tokens: int):
        super().__init__()
        self.proj = nn.Conv2d(c_in, embed, 1)
        self.ln = nn.LayerNorm(embed)
        self.pos = nn.Parameter(torch.zeros(1, tokens, embed))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ln(self.proj(x).flatten(2).transpose(1, 2)) + self.pos


class PlainHybrid(nn.Module):
    def __init__(self, cfg: HybridConfig, arch: Arch):
        super().__init__()
        plan = _conv_plan(cfg, arch)
        e = int(arch["e"])
        self.stem = Stem(cfg.input_shape[0], cfg.stem_channels, cfg.strides()[0])
        self.convs = nn.Sequential(*(PlainBlock(*p) for p in plan))
        self.tokens = Tokens(plan[-1][1], e, cfg.tokens())
        heads = [(int(arch[f"a{b}h"]), int(arch[f"a{b}r"])) for b in range(1, int(arch["a"]) + 1)]
        self.attn = nn.Sequential(*(Block(e, h, cfg.head_dim, r, cfg.mlp_grid()) for h, r in heads))
        self.head = Head(e, cfg.n_classes, cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.attn(self.tokens(self.convs(self.stem(x)))))


@register_supernet("hybrid")
class ElasticHybrid(Supernet):
    """Inverted-residual conv stages, then attention blocks: elastic in both."""

    config_class = HybridConfig
    part_fields = {
        "block": ("in", "out", "expand", "kernel", "stride", "height", "width"),
        "tokens": ("in", "embed", "height", "width"),
        "attn": ("tokens", "embed", "heads", "mlp ratio"),
        "head": ("tokens", "embed"),
    }
    # a length in steps (12 epochs of the embedded 12,000 training images at batch 128) and one student a
    # step besides the largest, as the vit's (docs/benchmarks.md, "Cheaper steps")
    train_defaults = {"steps": 12 * 94, "n_random": 1}

    def __init__(self, config: HybridConfig):
        super().__init__(config)
        cfg = config
        self.space = build_space(cfg)
        strides = cfg.strides()
        self.stem = Stem(cfg.input_shape[0], cfg.stem_channels, strides[0])
        self.convs = nn.ModuleList()
        self.conv_of: list[tuple[int, int]] = []
        prev = cfg.stem_channels
        for s, st in enumerate(cfg.stages, start=1):
            for b in range(1, max(st.depths) + 1):
                stride = strides[s] if b == 1 else 1
                self.convs.append(ElasticConvBlock(prev, st.channels, max(cfg.expands), cfg.kernels, stride, True))
                self.conv_of.append((s, b))
                prev = st.channels
        e_max = max(cfg.embed_dims)
        self.tokens = Tokens(prev, e_max, cfg.tokens())
        nn.init.trunc_normal_(self.tokens.pos, std=0.02)
        r_max, h_max = max(cfg.mlp_ratios), max(cfg.heads)
        depth = max(cfg.attn_depths)
        self.attn = nn.ModuleList(
            ElasticAttentionBlock(e_max, h_max, cfg.head_dim, r_max, cfg.mlp_grid()) for _ in range(depth)
        )
        self.head = Head(e_max, cfg.n_classes, cfg.dropout)
        self.set_active(self.space.largest())

    def set_active(self, arch: Arch) -> None:
        arch = self.space.make(dict(arch))
        for blk, (s, b) in zip(self.convs, self.conv_of, strict=True):
            out = stage_width(self.config.stages[s - 1].channels, float(arch[f"s{s}w"]))
            blk.active = (int(arch[f"s{s}b{b}k"]), out, int(arch[f"s{s}b{b}e"]))
        for b, blk in enumerate(self.attn, start=1):
            blk.active = (int(arch[f"a{b}h"]), int(arch[f"a{b}r"])) if b <= int(arch["a"]) else blk.active
        self.active_arch = arch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        arch, e = self.active_arch, int(self.active_arch["e"])
        x = self.stem(x)
        for blk, (s, b) in zip(self.convs, self.conv_of, strict=True):
            if b <= int(arch[f"s{s}d"]):
                x = self.block(blk, x)
        t = self.tokens
        x = F.conv2d(x, t.proj.weight[:e, : x.shape[1]], t.proj.bias[:e]).flatten(2).transpose(1, 2)
        x = ln_slice(x, t.ln) + t.pos[:, :, :e]
        for blk in self.attn[: int(arch["a"])]:
            x = self.block(blk, x)
        return head_forward(self.head, x)

    @torch.no_grad()
    def init_for_training(self) -> None:
        """Skippable blocks start as the identity (zero last BatchNorm scale of
        conv blocks, zero output projections of attention blocks)."""
        for blk, (_, b) in zip(self.convs, self.conv_of, strict=True):
            if b > 1:
                blk.bn3.weight.zero_()
        for b, blk in enumerate(self.attn, start=1):
            if b > min(self.config.attn_depths):
                blk.zero_output()

    def elastic_groups(self) -> dict[str, str]:
        kinds = {"d": "depth", "w": "width", "k": "kernel", "e": "expand", "h": "heads", "r": "mlp_ratio"}
        named = {"a": "depth", "e": "embed"}
        return {d.name: named.get(d.name) or kinds[d.name[-1]] for d in self.space.dims}

    @torch.no_grad()
    def extract(self, arch: Arch) -> PlainHybrid:
        arch = self.space.make(dict(arch))
        plain, e = PlainHybrid(self.config, arch), int(arch["e"])
        plain.stem.load_state_dict(self.stem.state_dict())
        active = [
            (blk, sb) for blk, sb in zip(self.convs, self.conv_of, strict=True) if sb[1] <= int(arch[f"s{sb[0]}d"])
        ]
        for (blk, _), p, (c_in, out, ex, k, _) in zip(active, plain.convs, _conv_plan(self.config, arch), strict=True):
            blk.copy_to(p, c_in, out, ex, k)
        c = plain.tokens.proj.in_channels
        plain.tokens.proj.weight.copy_(self.tokens.proj.weight[:e, :c])
        plain.tokens.proj.bias.copy_(self.tokens.proj.bias[:e])
        copy_ln(plain.tokens.ln, self.tokens.ln, e)
        plain.tokens.pos.copy_(self.tokens.pos[:, :, :e])
        for b, (blk, p) in enumerate(zip(self.attn, plain.attn, strict=False), start=1):
            blk.copy_to(p, e, int(arch[f"a{b}h"]), int(arch[f"a{b}r"]))
        copy_head(plain.head, self.head, e)
        return plain.eval()

    # -- latency-table parts -------------------------------------------------------------
    def latency_parts(self, arch: Arch) -> list[Hashable]:
        arch = self.space.make(dict(arch))
        plan, sizes, e, n = _conv_plan(self.config, arch), self.config.sizes(), int(arch["e"]), self.config.tokens()
        parts: list[Hashable] = [("stem",)]
        h, w = sizes[1]
        for c_in, out, ex, k, stride in plan:
            parts.append(("block", c_in, out, ex, k, stride, h, w))
            h, w = (h - 1) // stride + 1, (w - 1) // stride + 1
        parts.append(("tokens", plan[-1][1], e, h, w))
        parts += [("attn", n, e, int(arch[f"a{b}h"]), int(arch[f"a{b}r"])) for b in range(1, int(arch["a"]) + 1)]
        return [*parts, ("head", n, e)]

    def arch_features(self, arch: Arch) -> dict[str, float]:
        """``receptive_field``: input pixels along one side seen by one token
        of the convolutional stages (attention then sees every token)."""
        plan = _conv_plan(self.config, self.space.make(dict(arch)))
        layers = [(3, self.config.strides()[0])] + [(k, stride) for *_, k, stride in plan]
        return {"receptive_field": float(receptive_field(layers))}

    def precision_groups(self) -> dict[str, tuple[str, int] | None]:
        """One group per conv stage (the stem goes with the first), one per
        attention block, and the head (with the tokeniser)."""
        cfg, first = self.config, min(self.config.attn_depths)
        stages = {f"s{s}": None for s in range(1, len(cfg.stages) + 1)}
        attn = {f"a{b}": None if b <= first else ("a", b) for b in range(1, max(cfg.attn_depths) + 1)}
        return {**stages, **attn, "head": None}

    def precision_plan(self, arch: Arch) -> list[PrecisionGroup]:
        arch = self.space.make(dict(arch))
        entries = [("s1", ("stem",))]
        stage_of = [s for s in range(1, len(self.config.stages) + 1) for _ in range(int(arch[f"s{s}d"]))]
        entries += [(f"s{s}", (f"convs.{i}",)) for i, s in enumerate(stage_of)]
        entries.append(("head", ("tokens",)))
        entries += [(f"a{b}", (f"attn.{b - 1}",)) for b in range(1, int(arch["a"]) + 1)]
        return group_parts([*entries, ("head", ("head",))])

    def all_latency_parts(self) -> list[Hashable]:
        cfg, n, sizes = self.config, self.config.tokens(), self.config.sizes()
        parts: set[Hashable] = {("stem",)}
        ins, strides = {cfg.stem_channels}, cfg.strides()
        for s, st in enumerate(cfg.stages, start=1):
            outs = {stage_width(st.channels, w) for w in cfg.widths}
            for b in range(1, max(st.depths) + 1):
                stride, (h, w) = (strides[s], sizes[s]) if b == 1 else (1, sizes[s + 1])
                for c_in in ins if b == 1 else outs:
                    parts |= {
                        ("block", c_in, o, x, k, stride, h, w) for o in outs for x in cfg.expands for k in cfg.kernels
                    }
            ins = outs
        h, w = sizes[-1]
        for e in cfg.embed_dims:
            parts |= {("tokens", c, e, h, w) for c in ins} | {("head", n, e)}
            parts |= {("attn", n, e, hd, r) for hd in cfg.heads for r in cfg.mlp_ratios}
        return sorted(parts, key=str)

    def build_part(self, part: Hashable) -> tuple[nn.Module, tuple[int, ...]]:
        cfg = self.config
        kind, *rest = part  # type: ignore[misc]
        if kind == "stem":
            return Stem(cfg.input_shape[0], cfg.stem_channels, cfg.strides()[0]).eval(), cfg.input_shape
        if kind == "block":
            c_in, out, ex, k, stride, h, w = rest
            return PlainBlock(c_in, out, ex, k, stride).eval(), (c_in, h, w)
        if kind == "tokens":
            c, e, h, w = rest
            return Tokens(c, e, h * w).eval(), (c, h, w)
        if kind == "attn":
            n, e, hd, r = rest
            return Block(e, hd, cfg.head_dim, r, cfg.mlp_grid()).eval(), (n, e)
        n, e = rest
        return Head(e, cfg.n_classes).eval(), (n, e)


__all__ = ["ElasticHybrid", "HybridConfig", "PlainHybrid"]
