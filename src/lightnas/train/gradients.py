"""Gradients of a super-network step: the students' projected off the largest's where they conflict."""

from __future__ import annotations

import torch


def take_grads(params: list[torch.nn.Parameter]) -> list[torch.Tensor | None]:
    """Remove and return the accumulated gradients."""
    grads = [p.grad for p in params]
    for p in params:
        p.grad = None
    return grads


@torch.no_grad()
def add_projected(params: list[torch.nn.Parameter], largest: list[torch.Tensor | None]) -> None:
    """Set each gradient to ``largest + students``, where the students'
    gradient (what ``params`` hold) first loses its component against the
    largest's when the two conflict (negative dot product over all weights):
    a first-order guarantee that the step that teaches the students does not
    undo what it teaches the largest (gradient projection, as NASViT does
    for the same conflict; PCGrad in multi-task learning). Computed without a
    host synchronisation (one fused reduction per list), so a GPU never waits."""
    both = [(p.grad, g) for p, g in zip(params, largest, strict=True) if g is not None and p.grad is not None]
    given = [g for g in largest if g is not None]
    if not given:
        return
    sq = torch.stack(torch._foreach_norm(given)).square().sum()
    dot = torch.stack([torch.vdot(a.flatten(), b.flatten()) for a, b in both]).sum() if both else sq.new_zeros(())
    scale = torch.where((dot < 0) & (sq > 0), dot / sq.clamp_min(torch.finfo(sq.dtype).tiny), 0.0)
    keep = 1.0 - scale
    for p, g in zip(params, largest, strict=True):
        if g is None:
            continue
        if p.grad is None:
            p.grad = g
        else:
            p.grad.add_(g * keep)
