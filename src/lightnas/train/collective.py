"""What the processes of distributed training share, step by step (see
:mod:`lightnas.train.distributed`); every function is a no-op with one process."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


def sum_over_processes(tensors: list[torch.Tensor | None], world: int) -> None:
    """Sum ``tensors`` in place over the ``world`` processes (one message; nothing with one process)."""
    live = [t for t in tensors if t is not None]
    if world == 1 or not live:
        return
    import torch.distributed as dist

    flat = torch.cat([t.reshape(-1) for t in live])
    dist.all_reduce(flat)
    offset = 0
    for t in live:
        t.copy_(flat[offset : offset + t.numel()].view_as(t))
        offset += t.numel()


def barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


@contextlib.contextmanager
def synced_batch_norm(world: int) -> Iterator[None]:
    """Within: BatchNorm layers share their statistics over the processes (when there are several)."""
    from lightnas.supernets.blocks import SYNC

    if world == 1:
        yield
        return
    import torch.distributed as dist

    SYNC.group = dist.group.WORLD
    try:
        yield
    finally:
        SYNC.group = None


def share_batch_norm(net: nn.Module) -> None:
    """Make every plain ``BatchNorm2d`` of ``net`` an ``ElasticBN`` (the same
    computation over all its channels, same state), so that it too shares
    its statistics in distributed training."""
    from lightnas.supernets.blocks import ElasticBN

    for m in net.modules():
        if type(m) is nn.BatchNorm2d:
            m.__class__ = ElasticBN
