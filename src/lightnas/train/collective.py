"""What the processes of distributed training share, step by step (see
:mod:`lightnas.train.distributed`); every function is a no-op with one process."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch import nn

from lightnas.supernets.blocks import SYNC, ElasticBN


def sum_over_processes(tensors: list[torch.Tensor | None], world: int) -> None:
    """Sum ``tensors`` in place over the ``world`` processes (one message; nothing with one process)."""
    live = [t for t in tensors if t is not None]
    if world == 1 or not live:
        return

    flat = torch.cat([t.reshape(-1) for t in live])
    dist.all_reduce(flat)
    offset = 0
    for t in live:
        t.copy_(flat[offset : offset + t.numel()].view_as(t))
        offset += t.numel()


def barrier(world: int) -> None:
    if world > 1:
        dist.barrier()


@contextlib.contextmanager
def synced_batch_norm(world: int) -> Iterator[None]:
    """Within: BatchNorm layers share their statistics over the processes (when there are several)."""

    if world == 1:
        yield
        return

    SYNC.group = dist.group.WORLD
    try:
        yield
    finally:
        SYNC.group = None


def share_batch_norm(net: nn.Module) -> None:
    """Make every plain ``BatchNorm2d`` of ``net`` an ``ElasticBN`` (the same
    computation over all its channels, same state), so that it too shares
    its statistics in distributed training."""

    for m in net.modules():
        if type(m) is nn.BatchNorm2d:
            m.__class__ = ElasticBN


class GlobalBatchDropout:
    """Dropout masks drawn for the global batch from the step's seed, each
    process keeping its rows: several processes drop exactly what one
    process would, and a resumed run what the uninterrupted one did.

    Hooks every module of ``dropouts`` (``torch.nn.Dropout``); inside
    :meth:`rows` their training-mode outputs are replaced, elsewhere left as
    they are (calibration, evaluation)."""

    def __init__(self, dropouts: list[torch.nn.Module]):
        self._rows: tuple[int, int, int, int] | None = None
        for m in dropouts:
            m.register_forward_hook(self._hook)

    @contextlib.contextmanager
    def rows(self, lo: int, hi: int, total: int, seed: int) -> Iterator[None]:
        """Within: this process holds rows ``lo:hi`` of a global batch of ``total``; masks from ``seed``."""
        self._rows = (lo, hi, total, seed * 64)
        try:
            yield
        finally:
            self._rows = None

    def _hook(self, module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> torch.Tensor:
        if self._rows is None or not module.training or module.p == 0:
            return out
        x = inputs[0]
        lo, hi, total, seed = self._rows
        self._rows = (lo, hi, total, seed + 1)  # the next dropout call of the step draws afresh
        g = torch.Generator(device=x.device).manual_seed(seed)
        keep = torch.rand((total, *x.shape[1:]), generator=g, device=x.device)[lo:hi] >= module.p
        return x * keep / (1 - module.p)
