"""The user's layers made elastic in place, and plain copies of their active slices.

An elastic layer keeps the user's parameters (the same state-dict keys) and
computes with a *selection* of them: ``None`` (every channel), ``n`` (the
leading ``n``) or a tensor of indices (channels gathered from the runs of a
concatenation). :func:`make_elastic` turns ``Conv2d``, ``Linear`` and
``BatchNorm`` layers of a traced model into these classes;
:func:`plain_copy` returns the standard layer of the active selection with
copied weights, so an extracted sub-network has no elastic machinery.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lightnas.elastic.structure import Layout

Selection = int | torch.Tensor | None


def take(t: torch.Tensor | None, dim: int, sel: Selection) -> torch.Tensor | None:
    """``t`` restricted to ``sel`` along ``dim`` (a view for a leading slice)."""
    if t is None or sel is None:
        return t
    if isinstance(sel, int):
        return t.narrow(dim, 0, sel)
    return t.index_select(dim, sel.to(t.device))


def count(sel: Selection, full: int) -> int:
    """How many channels ``sel`` keeps of ``full``."""
    return full if sel is None else sel if isinstance(sel, int) else len(sel)


class ElasticConv2d(nn.Conv2d):
    """A convolution on ``in_sel`` input and ``out_sel`` output channels
    (depthwise: ``in_sel`` both), with its kernel cropped to the centre
    ``kernel`` x ``kernel`` (padding ``kernel // 2``) when set."""

    in_sel: Selection = None
    out_sel: Selection = None
    kernel: int | None = None

    @property
    def depthwise(self) -> bool:
        return self.groups > 1

    def active_weights(
        self, in_sel: Selection, out_sel: Selection, kernel: int | None
    ) -> tuple[torch.Tensor, torch.Tensor | None, tuple[int, int], int]:
        """(weight, bias, padding, groups) of a slice."""
        if self.depthwise:
            w, b = take(self.weight, 0, in_sel), take(self.bias, 0, in_sel)
            groups = w.shape[0]
        else:
            w, b = take(take(self.weight, 0, out_sel), 1, in_sel), take(self.bias, 0, out_sel)
            groups = 1
        pad = self.padding
        if kernel is not None and kernel < self.kernel_size[0]:
            s = (self.kernel_size[0] - kernel) // 2
            w = w[:, :, s : s + kernel, s : s + kernel]
            pad = (kernel // 2, kernel // 2)
        return w, b, pad, groups  # type: ignore[return-value]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, b, pad, groups = self.active_weights(self.in_sel, self.out_sel, self.kernel)
        if w.shape[-2:] == (1, 1) and pad == (0, 0) and self.stride != (1, 1):
            # the same function as a strided 1x1 convolution, computed on the kept pixels: PyTorch's
            # CPU channels-last weight gradient of the strided one writes out of bounds under 8 input
            # channels on AVX2 CPUs (see lightnas.train.device.training_format)
            sy, sx = self.stride
            return F.conv2d(x[:, :, ::sy, ::sx], w, b, 1, 0, 1, groups)
        return F.conv2d(x, w, b, self.stride, pad, self.dilation, groups)


class ElasticLinear(nn.Linear):
    """A linear layer on ``in_sel`` input and ``out_sel`` output features."""

    in_sel: Selection = None
    out_sel: Selection = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, take(take(self.weight, 0, self.out_sel), 1, self.in_sel), take(self.bias, 0, self.out_sel))


class _ElasticNorm:
    """BatchNorm on the channels ``in_sel``; the running statistics of those
    channels are updated where they lie (a leading slice is a view; gathered
    channels are written back)."""

    in_sel: Selection = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bn: nn.modules.batchnorm._BatchNorm = self  # type: ignore[assignment]
        sel = self.in_sel
        if sel is None:
            return nn.modules.batchnorm._BatchNorm.forward(bn, x)
        factor = 0.0
        if bn.training and bn.track_running_stats and bn.num_batches_tracked is not None:
            bn.num_batches_tracked.add_(1)
            factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
        use_batch = bn.training or bn.running_mean is None
        mean, var = take(bn.running_mean, 0, sel), take(bn.running_var, 0, sel)
        out = F.batch_norm(
            x,
            mean if not bn.training or bn.track_running_stats else None,
            var if not bn.training or bn.track_running_stats else None,
            take(bn.weight, 0, sel),
            take(bn.bias, 0, sel),
            use_batch,
            factor,
            bn.eps,
        )
        if bn.training and isinstance(sel, torch.Tensor) and mean is not None:
            with torch.no_grad():
                bn.running_mean.index_copy_(0, sel.to(mean.device), mean)  # type: ignore[union-attr]
                bn.running_var.index_copy_(0, sel.to(var.device), var)  # type: ignore[union-attr]
        return out


class ElasticBatchNorm2d(_ElasticNorm, nn.BatchNorm2d):
    pass


class ElasticBatchNorm1d(_ElasticNorm, nn.BatchNorm1d):
    pass


ELASTIC = {
    nn.Conv2d: ElasticConv2d,
    nn.Linear: ElasticLinear,
    nn.BatchNorm2d: ElasticBatchNorm2d,
    nn.BatchNorm1d: ElasticBatchNorm1d,
}


def make_elastic(module: nn.Module) -> bool:
    """Turn ``module`` into its elastic class in place (same parameters and
    buffers, so the same state dict); False when it has none."""
    cls = ELASTIC.get(type(module))
    if cls is None:
        return False
    module.__class__ = cls
    return True


@torch.no_grad()
def plain_copy(module: nn.Module, in_sel: Selection, out_sel: Selection, kernel: int | None = None) -> nn.Module:
    """The standard layer computing the slice (``in_sel``, ``out_sel``,
    ``kernel``) of an elastic ``module``, weights copied."""
    if isinstance(module, ElasticConv2d):
        w, b, pad, groups = module.active_weights(in_sel, out_sel, kernel)
        out = nn.Conv2d(
            w.shape[1] * groups,
            w.shape[0],
            tuple(w.shape[2:]),
            module.stride,
            pad,
            module.dilation,
            groups,
            b is not None,
            module.padding_mode,
        )
        out.weight.copy_(w)
        if b is not None:
            out.bias.copy_(b)
        return out.train(module.training)
    if isinstance(module, ElasticLinear):
        w = take(take(module.weight, 0, out_sel), 1, in_sel)
        b = take(module.bias, 0, out_sel)
        lin = nn.Linear(w.shape[1], w.shape[0], b is not None)
        lin.weight.copy_(w)
        if b is not None:
            lin.bias.copy_(b)
        return lin.train(module.training)
    if isinstance(module, _ElasticNorm):
        bn: nn.modules.batchnorm._BatchNorm = module  # type: ignore[assignment]
        n = count(in_sel, bn.num_features)
        cls = nn.BatchNorm2d if isinstance(module, nn.BatchNorm2d) else nn.BatchNorm1d
        new = cls(n, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
        for name in ("weight", "bias", "running_mean", "running_var"):
            src = getattr(bn, name)
            if src is not None:
                getattr(new, name).copy_(take(src, 0, in_sel))
        if bn.num_batches_tracked is not None:
            new.num_batches_tracked.copy_(bn.num_batches_tracked)
        return new.train(module.training)
    raise TypeError(f"{type(module).__name__} is not an elastic layer")


def selection_of(layout: Layout, channels: dict[int, int]) -> Selection:
    """Which entries of a tensor of ``layout`` the active sub-network keeps."""
    if all(channels[s] == c for s, c, _ in layout):
        return None
    if len(layout) == 1:
        s, _, inner = layout[0]
        return channels[s] * inner
    idx, off = [], 0
    for s, c, inner in layout:
        idx.append(torch.arange(off, off + channels[s] * inner))
        off += c * inner
    return torch.cat(idx)


def attribute(module: nn.Module, target: str) -> Any:
    """The submodule, parameter or buffer at the dotted ``target`` of ``module``."""
    for p in target.split("."):
        module = getattr(module, p)
    return module


def replace_attribute(gm: nn.Module, target: str, value: Any) -> None:
    """Set the submodule, parameter or buffer ``target`` of ``gm``."""
    *prefix, field = target.split(".")
    setattr(attribute(gm, ".".join(prefix)) if prefix else gm, field, value)
