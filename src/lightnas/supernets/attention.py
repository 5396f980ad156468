"""Transformer blocks shared by the attention super-networks (``vit``, ``hybrid``).

Plain modules (:class:`Attention`, :class:`Block`, :class:`Head`: the
deployable layers and the latency-table parts) and their elastic form
(:class:`ElasticAttentionBlock`, :func:`head_forward`): a block held at its
largest sizes, whose leading slices (embedding ``e``, heads of width
``head_dim``, MLP hidden ``ratio x e``) are the sub-network's layers
(AutoFormer-style weight entanglement). With a token ``grid`` the MLP mixes
neighbouring tokens with a 3x3 depthwise convolution (:func:`token_conv`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    def __init__(self, embed: int, heads: int, head_dim: int):
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.qkv = nn.Linear(embed, 3 * heads * head_dim)
        self.proj = nn.Linear(heads * head_dim, embed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.proj(y.transpose(1, 2).reshape(b, n, self.heads * self.head_dim))


class Block(nn.Module):
    """A pre-norm Transformer block. With a token ``grid`` (rows, columns), the
    MLP mixes neighbouring tokens with a 3x3 depthwise convolution over its
    hidden channels before the GELU (the convolutional feed-forward of PVTv2
    and LocalViT)."""

    def __init__(self, embed: int, heads: int, head_dim: int, ratio: int, grid: tuple[int, int] | None = None):
        super().__init__()
        self.ln1 = nn.LayerNorm(embed)
        self.attn = Attention(embed, heads, head_dim)
        self.ln2 = nn.LayerNorm(embed)
        self.fc1 = nn.Linear(embed, ratio * embed)
        self.grid = grid
        self.dw = nn.Conv2d(ratio * embed, ratio * embed, 3, 1, 1, groups=ratio * embed) if grid else None
        self.fc2 = nn.Linear(ratio * embed, embed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        h = self.fc1(self.ln2(x))
        if self.dw is not None:
            h = token_conv(h, self.dw.weight, self.dw.bias, self.grid)
        return x + self.fc2(F.gelu(h))


def token_conv(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """A depthwise 3x3 convolution of tokens ``h`` (B, N, C) laid out on ``grid``, back as (B, N, C)."""
    b, n, c = h.shape
    m = h.transpose(1, 2).reshape(b, c, *grid)
    return F.conv2d(m, weight, bias, 1, 1, 1, c).flatten(2).transpose(1, 2)


class Head(nn.Module):
    def __init__(self, embed: int, n_classes: int, dropout: float = 0.0):
        super().__init__()
        self.ln = nn.LayerNorm(embed)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(embed, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.ln(x).mean(1)))


def ln_slice(x: torch.Tensor, ln: nn.LayerNorm) -> torch.Tensor:
    """``ln``'s leading slice over the last dimension of ``x`` (its width ``e``)."""
    e = x.shape[-1]
    return F.layer_norm(x, (e,), ln.weight[:e], ln.bias[:e], ln.eps)


class ElasticAttentionBlock(nn.Module):
    """A block at the largest sizes; ``active = (heads, ratio)`` selects a slice."""

    def __init__(
        self, max_embed: int, max_heads: int, head_dim: int, max_ratio: int, grid: tuple[int, int] | None = None
    ):
        super().__init__()
        self.full = Block(max_embed, max_heads, head_dim, max_ratio, grid)
        self.head_dim = head_dim
        self.max_inner = max_heads * head_dim
        self.active = (max_heads, max_ratio)

    def slices(self, e: int, heads: int, ratio: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """(weight, bias) of every linear layer of the sub-block (``heads``, MLP ``ratio``) at embedding ``e``."""
        f, inner, hidden = self.full, heads * self.head_dim, ratio * e
        qkv_w = f.attn.qkv.weight.view(3, self.max_inner, -1)[:, :inner, :e].reshape(3 * inner, e)
        qkv_b = f.attn.qkv.bias.view(3, self.max_inner)[:, :inner].reshape(3 * inner)
        out = {
            "qkv": (qkv_w, qkv_b),
            "proj": (f.attn.proj.weight[:e, :inner], f.attn.proj.bias[:e]),
            "fc1": (f.fc1.weight[:hidden, :e], f.fc1.bias[:hidden]),
            "fc2": (f.fc2.weight[:e, :hidden], f.fc2.bias[:e]),
        }
        if f.dw is not None:
            out["dw"] = (f.dw.weight[:hidden], f.dw.bias[:hidden])
        return out

    @torch.no_grad()
    def zero_output(self) -> None:
        """Zero both output projections: the block starts as the identity."""
        for layer in (self.full.attn.proj, self.full.fc2):
            layer.weight.zero_()
            layer.bias.zero_()

    @torch.no_grad()
    def copy_to(self, plain: Block, e: int, heads: int, ratio: int) -> None:
        """Copy the sub-block (``heads``, ``ratio``) at embedding ``e`` into ``plain``."""
        for name, (w, b) in self.slices(e, heads, ratio).items():
            layer = getattr(plain.attn if name in ("qkv", "proj") else plain, name)
            layer.weight.copy_(w)
            layer.bias.copy_(b)
        for mine, src in ((plain.ln1, self.full.ln1), (plain.ln2, self.full.ln2)):
            copy_ln(mine, src, e)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, e = x.shape
        heads = self.active[0]
        w = self.slices(e, *self.active)
        q, k, v = (
            F.linear(ln_slice(x, self.full.ln1), *w["qkv"])
            .reshape(b, n, 3, heads, self.head_dim)
            .permute(2, 0, 3, 1, 4)
        )
        y = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, heads * self.head_dim)
        x = x + F.linear(y, *w["proj"])
        h = F.linear(ln_slice(x, self.full.ln2), *w["fc1"])
        if "dw" in w:
            h = token_conv(h, *w["dw"], self.full.grid)
        return x + F.linear(F.gelu(h), *w["fc2"])


def head_forward(h: Head, x: torch.Tensor) -> torch.Tensor:
    """The elastic head on tokens ``x`` (B, N, e): LayerNorm, mean, classifier slice."""
    e = x.shape[-1]
    return F.linear(h.dropout(ln_slice(x, h.ln).mean(1)), h.fc.weight[:, :e], h.fc.bias)


@torch.no_grad()
def copy_head(dst: Head, src: Head, e: int) -> None:
    """Copy the head at embedding ``e`` into the plain ``dst``."""
    copy_ln(dst.ln, src.ln, e)
    dst.fc.weight.copy_(src.fc.weight[:, :e])
    dst.fc.bias.copy_(src.fc.bias)


def copy_ln(dst: nn.LayerNorm, src: nn.LayerNorm, e: int) -> None:
    """Copy the leading ``e`` channels of ``src`` into ``dst``."""
    dst.weight.copy_(src.weight[:e])
    dst.bias.copy_(src.bias[:e])
    dst.eps = src.eps
