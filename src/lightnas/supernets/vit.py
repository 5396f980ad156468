"""Elastic Vision Transformer super-network (AutoFormer-style weight entanglement).

A convolutional stem (:meth:`ViTConfig.stem_depth` stride-2 3x3 convolutions
with BatchNorm and ReLU, then a 1x1 projection: 7x7 tokens at 28 px, 14x14
at 224 px), pre-norm Transformer blocks whose MLP mixes neighbouring tokens
with a 3x3 depthwise convolution, mean pooling, a linear classifier.
Elastic: depth (the first ``d`` blocks), embedding dimension (the leading
``e`` channels, shared by every layer: the stem's convolutions at widths
tied to ``e``, its projection, LayerNorms, attention and MLP projections,
classifier), and per block the number of attention heads (of fixed width
``head_dim``) and the MLP ratio (hidden = ratio x e). Attention is
``torch.nn.functional.scaled_dot_product_attention``.

Why convolutions (``bench/small_data.py``, ``docs/benchmarks.md``, "Small
data"): a Transformer that starts from non-overlapping patch projections
and learned absolute positions has no locality to start from and needs
far more images than a user's data set holds. Convolutions before the tokens
(Xiao et al., "Early convolutions help transformers see better"; LeViT, EMO)
and a depthwise convolution in the MLP (PVTv2, LocalViT) give it that prior;
the zero-padded convolution also tells every token where it is (CPVT), so no
positional embedding is learned by default (``learned_pos``).

``extract(arch)`` builds a :class:`PlainViT` of ``nn.Conv2d``, ``nn.BatchNorm2d``,
``nn.Linear`` and ``nn.LayerNorm`` modules holding copies of the slices; its
parts (stem, each block, head) are the latency-table parts.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lightnas.errors import LightnasError
from lightnas.space import Arch, Choice, SearchSpace
from lightnas.supernets.attention import Block, ElasticAttentionBlock, Head, copy_head, head_forward
from lightnas.supernets.base import PrecisionGroup, Supernet, SupernetConfig, group_parts
from lightnas.supernets.blocks import ElasticBN, copy_bn
from lightnas.supernets.registry import register_supernet


@dataclass(frozen=True)
class ViTConfig(SupernetConfig):
    """The elastic ViT's choices (serialised into checkpoints)."""

    stem_convs: int = 0  # stride-2 3x3 convolutions before the tokens; 0: from the input (see stem_depth)
    mlp_conv: bool = True  # a 3x3 depthwise convolution over the token grid inside every MLP
    learned_pos: bool = False  # a learned absolute positional embedding added to the tokens
    embed_dims: tuple[int, ...] = (64, 96, 128)
    depths: tuple[int, ...] = (2, 3, 4)
    heads: tuple[int, ...] = (2, 4)
    head_dim: int = 16
    mlp_ratios: tuple[int, ...] = (2, 3)
    dropout: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("embed_dims", "depths", "heads", "mlp_ratios"):
            values = tuple(sorted(int(v) for v in getattr(self, name)))
            if not values or values[0] < 1:
                raise LightnasError(f"{name} must be positive integers")
            object.__setattr__(self, name, values)
        if self.head_dim < 1 or self.stem_convs < 0 or 2 ** self.stem_depth() > min(self.input_shape[1:]):
            raise LightnasError("head_dim must be positive and the stem's stride no larger than the image")

    def stem_depth(self) -> int:
        """``stem_convs``, or the most stride-2 convolutions that leave at least
        ``t`` tokens a side, ``t`` = ``side // 16`` kept within 7-14 (at least
        one): 2 at 28 px (7x7 tokens), 3 at 64-96 px (8x8-12x12), 4 at 224 px (14x14)."""
        side = min(self.input_shape[1:])
        return self.stem_convs or max(1, int(math.log2(side / min(14, max(7, side // 16)))))

    def grid(self) -> tuple[int, int]:
        """(rows, columns) of the token map."""
        h, w = self.input_shape[1:]
        for _ in range(self.stem_depth()):
            h, w = (h - 1) // 2 + 1, (w - 1) // 2 + 1
        return h, w

    def tokens(self) -> int:
        h, w = self.grid()
        return h * w

    def stem_widths(self, e: int) -> list[int]:
        """Channels of the stem's convolutions at embedding ``e``: doubling up to ``e`` (at least 8)."""
        n = self.stem_depth()
        return [max(8, e >> (n - j)) for j in range(1, n + 1)]


def build_space(cfg: ViTConfig) -> SearchSpace:
    dims = [Choice("d", cfg.depths, ordinal=True), Choice("e", cfg.embed_dims, ordinal=True)]
    for b in range(1, max(cfg.depths) + 1):
        cond = None if b <= min(cfg.depths) else ("d", b)
        dims.append(Choice(f"b{b}h", cfg.heads, active_if=cond, ordinal=True))
        dims.append(Choice(f"b{b}r", cfg.mlp_ratios, active_if=cond, ordinal=True))
    return SearchSpace(tuple(dims), name="vit")


# -- the deployable plain network (also the latency-table parts) ----------------------------
class ConvStem(nn.Module):
    """Stride-2 3x3 convolutions (BatchNorm, ReLU), a 1x1 projection to ``embed``:
    the image -> tokens (B, N, e), plus a learned positional embedding where asked.
    ``bn`` is the normalisation class (the elastic network passes its sliceable one)."""

    def __init__(
        self,
        c_in: int,
        widths: list[int],
        embed: int,
        tokens: int,
        pos: bool,
        bn: type[nn.BatchNorm2d] = nn.BatchNorm2d,
    ):
        super().__init__()
        chans = [c_in, *widths]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, 2, 1, bias=False) for a, b in zip(chans, widths, strict=False))
        self.bns = nn.ModuleList(bn(c) for c in widths)
        self.proj = nn.Conv2d(widths[-1], embed, 1)
        self.pos = nn.Parameter(torch.zeros(1, tokens, embed)) if pos else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv, bn in zip(self.convs, self.bns, strict=True):
            x = F.relu(bn(conv(x)))
        x = self.proj(x).flatten(2).transpose(1, 2)
        return x if self.pos is None else x + self.pos


class PlainViT(nn.Module):
    """The sub-network ``arch`` of a :class:`ViTConfig` as a plain module."""

    def __init__(self, cfg: ViTConfig, arch: Arch):
        super().__init__()
        e = int(arch["e"])
        self.embed = make_stem(cfg, e)
        grid = cfg.grid() if cfg.mlp_conv else None
        self.blocks = nn.Sequential(
            *(
                Block(e, int(arch[f"b{b}h"]), cfg.head_dim, int(arch[f"b{b}r"]), grid)
                for b in range(1, int(arch["d"]) + 1)
            )
        )
        self.head = Head(e, cfg.n_classes, cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.embed(x)))


def make_stem(cfg: ViTConfig, e: int, bn: type[nn.BatchNorm2d] = nn.BatchNorm2d) -> ConvStem:
    """The stem of ``cfg`` at embedding ``e``."""
    return ConvStem(cfg.input_shape[0], cfg.stem_widths(e), e, cfg.tokens(), cfg.learned_pos, bn)


# -- elastic layers ------------------------------------------------------------------------
@register_supernet("vit")
class ElasticViT(Supernet):
    """Vision Transformer: elastic depth, embedding dimension, heads and MLP ratio."""

    config_class = ViTConfig
    part_fields = {
        "embed": ("embed",),
        "block": ("tokens", "embed", "heads", "mlp ratio"),
        "head": ("tokens", "embed"),
    }
    # a length in steps (8 epochs of the embedded 12,000 training images at batch 128), and one student a
    # step besides the largest: measured against two, training a fifth shorter, the costlier exported
    # models more accurate, the cheapest less (docs/benchmarks.md, "Cheaper steps")
    train_defaults = {"steps": 8 * 94, "n_random": 1}

    def __init__(self, config: ViTConfig):
        super().__init__(config)
        cfg = config
        self.space = build_space(cfg)
        self.embed = make_stem(cfg, max(cfg.embed_dims), ElasticBN)
        if self.embed.pos is not None:
            nn.init.trunc_normal_(self.embed.pos, std=0.02)
        grid = cfg.grid() if cfg.mlp_conv else None
        self.blocks = nn.ModuleList(
            ElasticAttentionBlock(max(cfg.embed_dims), max(cfg.heads), cfg.head_dim, max(cfg.mlp_ratios), grid)
            for _ in range(max(cfg.depths))
        )
        self.head = Head(max(cfg.embed_dims), cfg.n_classes, cfg.dropout)
        self.set_active(self.space.largest())

    def set_active(self, arch: Arch) -> None:
        arch = self.space.make(dict(arch))
        for b, blk in enumerate(self.blocks, start=1):
            blk.active = (int(arch[f"b{b}h"]), int(arch[f"b{b}r"]))
        self.active_arch = arch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e, d = int(self.active_arch["e"]), int(self.active_arch["d"])
        stem = self.embed
        for conv, bn, c in zip(stem.convs, stem.bns, self.config.stem_widths(e), strict=True):
            x = F.relu(bn(F.conv2d(x, conv.weight[:c, : x.shape[1]], None, 2, 1)))
        x = F.conv2d(x, stem.proj.weight[:e, : x.shape[1]], stem.proj.bias[:e]).flatten(2).transpose(1, 2)
        if stem.pos is not None:
            x = x + stem.pos[:, :, :e]
        for blk in self.blocks[:d]:
            x = self.block(blk, x)
        return head_forward(self.head, x)

    @torch.no_grad()
    def init_for_training(self) -> None:
        """Blocks a sub-network can skip start as the identity (zero output
        projections), as the CNN's skippable blocks do (BigNAS)."""
        for b, blk in enumerate(self.blocks, start=1):
            if b > min(self.config.depths):
                blk.zero_output()

    def elastic_groups(self) -> dict[str, str]:
        kinds = {"d": "depth", "e": "embed", "h": "heads", "r": "mlp_ratio"}
        return {d.name: kinds[d.name[-1]] for d in self.space.dims}

    # -- extraction ---------------------------------------------------------------
    @torch.no_grad()
    def extract(self, arch: Arch) -> PlainViT:
        arch = self.space.make(dict(arch))
        e = int(arch["e"])
        plain = PlainViT(self.config, arch)
        src, dst = self.embed, plain.embed
        c_in = self.config.input_shape[0]
        for i, c in enumerate(self.config.stem_widths(e)):
            dst.convs[i].weight.copy_(src.convs[i].weight[:c, :c_in])
            copy_bn(dst.bns[i], src.bns[i], c)
            c_in = c
        dst.proj.weight.copy_(src.proj.weight[:e, :c_in])
        dst.proj.bias.copy_(src.proj.bias[:e])
        if src.pos is not None:
            dst.pos.copy_(src.pos[:, :, :e])
        for i, (blk, p) in enumerate(zip(self.blocks, plain.blocks, strict=False), start=1):
            blk.copy_to(p, e, int(arch[f"b{i}h"]), int(arch[f"b{i}r"]))
        copy_head(plain.head, self.head, e)
        return plain.eval()

    # -- latency-table parts ----------------------------------------------------------
    def latency_parts(self, arch: Arch) -> list[Hashable]:
        arch = self.space.make(dict(arch))
        e, n = int(arch["e"]), self.config.tokens()
        blocks = [("block", n, e, int(arch[f"b{b}h"]), int(arch[f"b{b}r"])) for b in range(1, int(arch["d"]) + 1)]
        return [("embed", e), *blocks, ("head", n, e)]

    def precision_groups(self) -> dict[str, tuple[str, int] | None]:
        """One group per Transformer block (the patch embedding goes with the first), and the head."""
        first = min(self.config.depths)
        return {
            **{f"b{b}": None if b <= first else ("d", b) for b in range(1, max(self.config.depths) + 1)},
            "head": None,
        }

    def precision_plan(self, arch: Arch) -> list[PrecisionGroup]:
        d = int(self.space.make(dict(arch))["d"])
        blocks = [(f"b{b}", (f"blocks.{b - 1}",)) for b in range(1, d + 1)]
        return group_parts([("b1", ("embed",)), *blocks, ("head", ("head",))])

    def all_latency_parts(self) -> list[Hashable]:
        cfg, n = self.config, self.config.tokens()
        parts: list[Hashable] = []
        for e in cfg.embed_dims:
            parts += [("embed", e), ("head", n, e)]
            parts += [("block", n, e, h, r) for h in cfg.heads for r in cfg.mlp_ratios]
        return parts

    def build_part(self, part: Hashable) -> tuple[nn.Module, tuple[int, ...]]:
        cfg = self.config
        kind, *rest = part  # type: ignore[misc]
        if kind == "embed":
            return make_stem(cfg, rest[0]).eval(), cfg.input_shape
        if kind == "head":
            n, e = rest
            return Head(e, cfg.n_classes).eval(), (n, e)
        n, e, h, r = rest
        return Block(e, h, cfg.head_dim, r, cfg.grid() if cfg.mlp_conv else None).eval(), (n, e)
