"""Inverted-residual blocks (MobileNetV2/V3): elastic, plain, and the copy between them.

An :class:`ElasticConvBlock` holds the weights of the largest block (1x1 expand,
k x k depthwise, 1x1 project, residual when shapes allow) and computes any
smaller one: leading input, hidden and output channels, and kernel sizes that
are the transformed centres of the next larger kernel (Once-for-All's kernel
transformation). :meth:`ElasticConvBlock.copy_to` fills a :class:`PlainBlock`
with the slices. Shared by the CNN super-networks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def stage_width(channels: int, ratio: float) -> int:
    """Active output channels of a stage at width ``ratio`` (even, at least 4)."""
    return max(4, int(round(channels * ratio / 2.0)) * 2)


def receptive_field(layers: list[tuple[int, int]]) -> int:
    """Receptive field, in input pixels along one side, of a chain of
    convolutions given as ``(kernel, stride)`` in order (1x1 layers may be
    left out: they add nothing)."""
    field, jump = 1, 1
    for kernel, stride in layers:
        field += (kernel - 1) * jump
        jump *= stride
    return field


# -- elastic operators -----------------------------------------------------------------
class ElasticBN(nn.BatchNorm2d):
    """BatchNorm over the leading ``c`` channels of the input.

    While :data:`SYNC` holds a process group (distributed training, see
    :mod:`lightnas.train.distributed`), a training-mode forward normalises
    with the statistics of the whole global batch, summed over the processes
    (autograd flows through the sum), as one process would over that batch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        momentum = self.momentum
        if self.training:
            self.num_batches_tracked.add_(1)
            if momentum is None:  # cumulative average, used by BN recalibration
                momentum = 1.0 / float(self.num_batches_tracked)
            if SYNC.group is not None:
                return _synced_batch_norm(self, x, float(momentum))
        return F.batch_norm(
            x,
            self.running_mean[:c],
            self.running_var[:c],
            self.weight[:c],
            self.bias[:c],
            self.training,
            momentum or 0.0,
            self.eps,
        )


class _Sync:
    group: object | None = None


SYNC = _Sync()
"""The process group whose BatchNorm statistics are shared (``None``: each process alone)."""


def _synced_batch_norm(bn: nn.BatchNorm2d, x: torch.Tensor, momentum: float) -> torch.Tensor:
    """Two passes over the processes, as precise as one process's batch norm:
    the global mean, then the global mean squared deviation from it."""
    # only multi-process training synchronises BatchNorm
    import warnings

    from torch.distributed.nn.functional import all_reduce

    c = x.shape[1]
    with warnings.catch_warnings():  # the autograd-aware all_reduce is marked deprecated, with no successor yet
        warnings.simplefilter("ignore", FutureWarning)
        total = all_reduce(torch.cat([x.sum((0, 2, 3)), x.new_full((1,), x.numel() / c)]), group=SYNC.group)
        n = total[-1]
        mean = total[:c] / n
        centred = x - mean[None, :, None, None]
        var = all_reduce((centred * centred).sum((0, 2, 3)), group=SYNC.group) / n
    with torch.no_grad():
        bn.running_mean[:c].mul_(1 - momentum).add_(mean, alpha=momentum)
        bn.running_var[:c].mul_(1 - momentum).add_(var * (n / (n - 1).clamp_min(1)), alpha=momentum)
    scale = bn.weight[:c] * torch.rsqrt(var + bn.eps)
    return centred * scale[None, :, None, None] + bn.bias[:c][None, :, None, None]


class ElasticConvBlock(nn.Module):
    """Inverted residual block with elastic kernel, expansion and channels."""

    def __init__(
        self, max_in: int, max_out: int, max_expand: int, kernels: tuple[int, ...], stride: int, transform: bool
    ):
        super().__init__()
        hidden = max_in * max_expand
        self.stride = stride
        self.kernels = tuple(sorted(kernels))
        max_kernel = self.max_kernel = self.kernels[-1]
        self.expand = nn.Conv2d(max_in, hidden, 1, bias=False)
        self.bn1 = ElasticBN(hidden)
        self.dw = nn.Conv2d(hidden, hidden, max_kernel, stride, max_kernel // 2, groups=hidden, bias=False)
        self.bn2 = ElasticBN(hidden)
        self.project = nn.Conv2d(hidden, max_out, 1, bias=False)
        self.bn3 = ElasticBN(max_out)
        self.active: tuple[int, int, int] = (3, max_out, max_expand)  # kernel, out, expand

        # Once-for-All's kernel transformation: a smaller kernel is the centre of
        # the next larger one times a learned (k*k x k*k) matrix shared by the
        # block's channels, starting at the identity
        self.transforms = nn.ParameterDict(
            {str(k): nn.Parameter(torch.eye(k * k)) for k in self.kernels[:-1]} if transform else {}
        )

    def dw_weight(self, hidden: int, kernel: int) -> torch.Tensor:
        """The depthwise kernel of size ``kernel`` for the leading ``hidden`` channels."""
        w = self.dw.weight[:hidden]
        for k in reversed(self.kernels[:-1]):
            if k < kernel:
                break
            lo = (w.shape[-1] - k) // 2
            w = w[:, :, lo : lo + k, lo : lo + k]
            if str(k) in self.transforms:
                w = (w.reshape(hidden, k * k) @ self.transforms[str(k)]).reshape(hidden, 1, k, k)
        return w

    @torch.no_grad()
    def copy_to(self, p: PlainBlock, c_in: int, out: int, expand: int, kernel: int) -> None:
        """Copy the sub-block (``c_in`` -> ``out`` channels, ``expand``, ``kernel``) into ``p``."""
        hidden = c_in * expand
        p.expand.weight.copy_(self.expand.weight[:hidden, :c_in])
        copy_bn(p.bn1, self.bn1, hidden)
        p.dw.weight.copy_(self.dw_weight(hidden, kernel))
        copy_bn(p.bn2, self.bn2, hidden)
        p.project.weight.copy_(self.project.weight[:out, :hidden])
        copy_bn(p.bn3, self.bn3, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel, out, expand = self.active
        c_in = x.shape[1]
        hidden = c_in * expand
        h = F.conv2d(x, self.expand.weight[:hidden, :c_in])
        h = F.relu(self.bn1(h))
        h = F.conv2d(h, self.dw_weight(hidden, kernel), None, self.stride, kernel // 2, 1, hidden)
        h = F.relu(self.bn2(h))
        h = self.bn3(F.conv2d(h, self.project.weight[:out, :hidden]))
        if self.stride == 1 and c_in == out:
            h = h + x
        return h


def copy_bn(dst: nn.BatchNorm2d, src: nn.BatchNorm2d, c: int) -> None:
    dst.weight.copy_(src.weight[:c])
    dst.bias.copy_(src.bias[:c])
    dst.running_mean.copy_(src.running_mean[:c])
    dst.running_var.copy_(src.running_var[:c])
    dst.eps = src.eps


class PlainBlock(nn.Module):
    """An ordinary inverted residual block."""

    def __init__(self, c_in: int, c_out: int, expand: int, kernel: int, stride: int):
        super().__init__()
        hidden = c_in * expand
        self.expand = nn.Conv2d(c_in, hidden, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.dw = nn.Conv2d(hidden, hidden, kernel, stride, kernel // 2, groups=hidden, bias=False)
        self.bn2 = nn.BatchNorm2d(hidden)
        self.project = nn.Conv2d(hidden, c_out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c_out)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.expand(x)))
        h = F.relu(self.bn2(self.dw(h)))
        h = self.bn3(self.project(h))
        return h + x if self.residual else h
