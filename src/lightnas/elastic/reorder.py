"""Order every elastic channel group by importance, leaving the network's function unchanged.

A channel's importance is the L1 norm of its filters in every layer that
produces the group, each scaled by the BatchNorm that follows it
(``|gamma| / sqrt(var + eps)``: the filter's weight in the normalised output)
and divided by the layer's mean so that layers count alike. The same
permutation is applied to every layer that produces, normalises or reads the
group, so the largest sub-network computes exactly what it did while the
leading channels (those a narrower sub-network keeps) are the most important.
"""

from __future__ import annotations

import torch
from torch import fx, nn

from lightnas.elastic.modules import ElasticConv2d, ElasticLinear
from lightnas.elastic.structure import Layout, Structure


def importance(gm: fx.GraphModule, structure: Structure, calls: dict[str, fx.Node], space: int) -> torch.Tensor:
    """The importance of each channel of ``space`` (higher: kept longer)."""
    total = torch.zeros(structure.space_sizes[space])
    for name in structure.producers[space]:
        node = calls[name]
        w = gm.get_submodule(name).weight.detach().float()
        score = w.abs().flatten(1).sum(1)
        users = list(node.users)
        if len(users) == 1 and users[0].op == "call_module":
            bn = gm.get_submodule(str(users[0].target))
            if isinstance(bn, nn.modules.batchnorm._BatchNorm) and bn.affine and bn.running_var is not None:
                score = score * (bn.weight.detach().abs() / torch.sqrt(bn.running_var + bn.eps))
        total += score / score.mean().clamp_min(1e-12)
    return total


def layout_permutation(layout: Layout, perms: dict[int, torch.Tensor]) -> torch.Tensor | None:
    """The permutation of a tensor's channel axis of ``layout`` (None: identity)."""
    if not any(s in perms for s, _, _ in layout):
        return None
    idx, off = [], 0
    for s, c, inner in layout:
        p = perms.get(s, torch.arange(c))
        idx.append((p.view(-1, 1) * inner + torch.arange(inner)).flatten() + off)
        off += c * inner
    return torch.cat(idx)


@torch.no_grad()
def reorder_channels(gm: fx.GraphModule, structure: Structure, calls: dict[str, fx.Node]) -> None:
    """Permute every elastic group of ``gm`` (its elastic layers, first call
    each) most important channel first."""
    perms = {
        s: torch.argsort(importance(gm, structure, calls, s), descending=True, stable=True) for s in structure.elastic
    }
    for name, node in calls.items():
        layer = gm.get_submodule(name)
        p_in = layout_permutation(structure.layouts[node.args[0].name], perms)
        p_out = layout_permutation(structure.layouts[node.name], perms)
        if isinstance(layer, ElasticConv2d | ElasticLinear) and not getattr(layer, "depthwise", False):
            if p_out is not None:
                layer.weight.copy_(layer.weight[p_out])
                if layer.bias is not None:
                    layer.bias.copy_(layer.bias[p_out])
            if p_in is not None:
                layer.weight.copy_(layer.weight[:, p_in])
            continue
        if p_in is None:
            continue
        for t in (getattr(layer, k, None) for k in ("weight", "bias", "running_mean", "running_var")):
            if t is not None:
                t.copy_(t[p_in])
