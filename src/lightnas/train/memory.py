"""Activation memory of a training step, and the budget that bounds it.

Autograd keeps tensors of the forward pass for the backward pass; for a
convolutional network at 224 px these dominate a training process's memory
(the largest MobileNet sub-network keeps 2.2 GiB at batch 32). When the
teacher's step would keep more than the budget, the super-network recomputes
its blocks' activations in the backward pass instead
(:meth:`lightnas.supernets.base.Supernet.block`): about one more forward per
step, for memory that no longer grows with the blocks' depth.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from lightnas.supernets.base import Supernet

MIB = 1 << 20
CPU_BUDGET_MIB = 1024.0
"""The default budget on the CPU: a training process well under 3 GB."""


def saved_bytes(net: nn.Module, x: torch.Tensor) -> int:
    """Bytes of the distinct storages autograd saves in one training forward of
    ``net`` on ``x`` (parameters included); ``net``'s buffers are restored."""
    sizes: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        sizes[storage.data_ptr()] = storage.nbytes()
        return t

    buffers = [b.clone() for b in net.buffers()]
    was_training = net.training
    net.train()
    try:
        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            net(x)
    finally:
        net.train(was_training)
        with torch.no_grad():
            for b, v in zip(net.buffers(), buffers, strict=True):
                b.copy_(v)
    return sum(sizes.values())


def step_activation_bytes(net: nn.Module, x: torch.Tensor, batch: int) -> int:
    """Bytes one training forward of ``net`` keeps at ``batch`` images like
    ``x``, from forwards of 2 and 4 of them (what is saved grows linearly with
    the batch; the weights are counted once), so that the estimate never
    allocates what it is there to avoid."""
    small, large = saved_bytes(net, x[:2]), saved_bytes(net, x[:4])
    return int(small + (large - small) / 2 * (batch - 2))


def activation_budget(budget_mib: float, device: torch.device) -> float:
    """The budget in bytes: ``budget_mib`` when given (> 0), else
    :data:`CPU_BUDGET_MIB` on the CPU and half the GPU's free memory on a GPU."""
    if budget_mib > 0:
        return budget_mib * MIB
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0] / 2
    return CPU_BUDGET_MIB * MIB


def choose_recompute(net: Supernet, x: torch.Tensor, batch: int, budget_mib: float) -> dict[str, float | bool]:
    """Set ``net.recompute`` (a :class:`~lightnas.supernets.base.Supernet`
    with its teacher active) when a training step at ``batch`` images like
    ``x`` (at least 4) would keep more than the budget
    (:func:`activation_budget`); returns the estimate, the budget (MiB) and
    the choice, as the checkpoint's history records them."""
    keeps = step_activation_bytes(net, x, batch)
    budget = activation_budget(budget_mib, x.device)
    net.recompute = keeps > budget
    return {"activation_mib": round(keeps / MIB, 1), "budget_mib": round(budget / MIB, 1), "recompute": net.recompute}


@cache
def _malloc_trim() -> Any:
    """glibc's ``malloc_trim``, or None where the C library has none."""
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


def release_free_memory() -> None:
    """Return the C heap's free pages to the OS (glibc's ``malloc_trim``; a
    no-op elsewhere). Sub-networks of other shapes, one after the other,
    leave freed activations behind as fragments that stay resident: on 224-px
    images at batch 32, trimmed after each sub-network, the resident memory
    between steps stays at 0.4 GB where it otherwise grows past 1.8 GB."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
