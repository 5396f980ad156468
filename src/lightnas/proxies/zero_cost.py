"""Zero-cost proxies of any PyTorch classifier, from one mini-batch.

Every proxy is computed on a copy of the network (the caller's module is never
changed), re-initialised from ``seed`` unless ``reinit=False`` (to score the
weights as they are, e.g. inherited from a super-network). "Weighted layers"
are ``nn.Conv2d`` and ``nn.Linear``. Definitions (higher is better for all):

- ``synflow``: ``log(1 + sum |w * dR/dw|)`` over weighted layers, where ``R``
  is the sum of the outputs of the network with every weight replaced by its
  absolute value, BatchNorm removed, float64, on one all-ones input (Tanaka
  et al. 2020; data-independent). The log keeps the value finite in float32.
- ``naswot``: ``log|det K|`` with ``K[i, j]`` the number of ReLU-type units
  (inputs of ``relu``/``relu6``/``hardswish``/``gelu``/``silu``, as modules
  or functions) on which images ``i`` and ``j`` agree in sign (Mellor et al.
  2021).
- ``grad_norm``: sum over weighted layers of the L2 norm of the cross-entropy
  gradient of the batch.
- ``snip``: ``sum |w * dL/dw|`` (Lee et al. 2019).
- ``fisher``: sum over the output channels of weighted layers of
  ``0.5 * mean_n (sum_hw a * dL/da)^2`` (Turner et al. 2020).
- ``jacob_cov``: ``-sum_k (log(l_k + 1e-5) + 1 / (l_k + 1e-5))`` over the
  eigenvalues of the correlation matrix of the per-image input gradients of
  the summed outputs (Mellor et al. 2020).
- ``zen``: ``log mean_n |f(x) - f(x + 0.01 e)|`` of the input to the last
  ``nn.Linear`` (the pooled features), Gaussian ``x`` and ``e``, plus the sum
  over BatchNorm layers of ``log sqrt(mean batch variance)`` (Lin et al. 2021).
- ``params`` (count) and ``macs`` (multiply-accumulates at batch 1).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from lightnas.errors import LightnasError
from lightnas.hardware.cost import count_cost

PROXIES = ("synflow", "naswot", "grad_norm", "snip", "fisher", "jacob_cov", "zen", "params", "macs")
_WEIGHTED = (nn.Conv2d, nn.Linear)
_ACTIVATION_FUNCTIONS = {F.relu, F.relu6, F.hardswish, F.gelu, F.silu, torch.relu, torch.relu_, F.relu_}
_BN = (nn.BatchNorm1d, nn.BatchNorm2d)


def _weighted(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, _WEIGHTED)]


def _fresh(model: nn.Module, seed: int, reinit: bool) -> nn.Module:
    net = copy.deepcopy(model).cpu().float()
    if reinit:
        torch.manual_seed(seed)
        for m in net.modules():
            if m is not net and hasattr(m, "reset_parameters"):
                m.reset_parameters()
    return net


def _without_bn(net: nn.Module) -> nn.Module:
    for name, child in net.named_children():
        if isinstance(child, _BN):
            setattr(net, name, nn.Identity())
        else:
            _without_bn(child)
    return net


def _saliency(net: nn.Module) -> float:
    """``sum |w * dw|`` over the weighted layers that received a gradient."""
    with torch.no_grad():
        return sum(float((m.weight * m.weight.grad).abs().sum()) for m in _weighted(net) if m.weight.grad is not None)


def synflow(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    net = _without_bn(net).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    net.zero_grad()
    net(torch.ones((1, *x.shape[1:]), dtype=torch.float64)).sum().backward()
    return math.log1p(_saliency(net))


class _ActivationCodes(TorchFunctionMode):
    """Records the sign pattern of every ReLU-type activation's input, whether
    called as a module or functionally (``F.relu`` inside ``forward``)."""

    def __init__(self) -> None:
        super().__init__()
        self.codes: list[torch.Tensor] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        if func in _ACTIVATION_FUNCTIONS and args and isinstance(args[0], torch.Tensor):
            self.codes.append((args[0] > 0).flatten(1).double())
        return func(*args, **(kwargs or {}))


def naswot(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad(), _ActivationCodes() as mode:
        net.train()(x)
    if not mode.codes:
        raise LightnasError("naswot needs ReLU-type activations in the network")
    c = torch.cat(mode.codes, dim=1)
    k = c @ c.T + (1 - c) @ (1 - c).T
    return float(torch.linalg.slogdet(k)[1])


def _loss_backward(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    net.train().zero_grad()
    F.cross_entropy(net(x), y).backward()


def grad_norm(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    _loss_backward(net, x, y)
    return sum(float(m.weight.grad.norm()) for m in _weighted(net) if m.weight.grad is not None)


def snip(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    _loss_backward(net, x, y)
    return _saliency(net)


def fisher(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    acts: list[torch.Tensor] = []

    def hook(mod: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if output.requires_grad:
            output.retain_grad()
            acts.append(output)

    handles = [m.register_forward_hook(hook) for m in _weighted(net)]
    try:
        _loss_backward(net, x, y)
    finally:
        for h in handles:
            h.remove()
    total = 0.0
    for a in acts:
        if a.grad is None:
            continue
        prod = (a * a.grad).detach()
        per_channel = prod.flatten(2).sum(2) if prod.dim() > 2 else prod
        total += float(0.5 * per_channel.pow(2).mean(0).sum())
    return total


def jacob_cov(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    x = x.clone().requires_grad_(True)
    net.train().zero_grad()
    net(x).sum().backward()
    jac = x.grad.flatten(1).double().numpy()
    corr = np.nan_to_num(np.corrcoef(jac), nan=0.0)
    eig = np.linalg.eigvalsh(corr)
    k = 1e-5
    return float(-np.sum(np.log(np.abs(eig) + k) + 1.0 / (np.abs(eig) + k)))


def zen(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    heads = [m for m in net.modules() if isinstance(m, nn.Linear)]
    if not heads:
        raise LightnasError("zen needs an nn.Linear head")
    with torch.no_grad():
        for m in _weighted(net):
            nn.init.normal_(m.weight)
    feats: list[torch.Tensor] = []
    bn_var: list[float] = []
    h1 = heads[-1].register_forward_pre_hook(lambda mod, inputs: feats.append(inputs[0]))
    h2 = [
        m.register_forward_pre_hook(
            lambda mod, inputs: bn_var.append(float(inputs[0].transpose(0, 1).flatten(1).var(1).mean()))
        )
        for m in net.modules()
        if isinstance(m, _BN)
    ]
    g = torch.Generator().manual_seed(0)
    z = torch.randn(x.shape, generator=g)
    e = torch.randn(x.shape, generator=g)
    try:
        with torch.no_grad():
            net.train()(z)
            net(z + 0.01 * e)
    finally:
        h1.remove()
        for h in h2:
            h.remove()
    delta = float((feats[0] - feats[1]).abs().mean())
    n_bn = len(bn_var) // 2
    return math.log(delta + 1e-12) + sum(0.5 * math.log(v + 1e-12) for v in bn_var[:n_bn])


def _params(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float(sum(p.numel() for p in net.parameters()))


def _macs(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return count_cost(net, tuple(x.shape[1:]))["macs"]


_FUNCTIONS: dict[str, Callable[[nn.Module, torch.Tensor, torch.Tensor], float]] = {
    "synflow": synflow,
    "naswot": naswot,
    "grad_norm": grad_norm,
    "snip": snip,
    "fisher": fisher,
    "jacob_cov": jacob_cov,
    "zen": zen,
    "params": _params,
    "macs": _macs,
}


def compute_proxies(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    names: Sequence[str] = PROXIES,
    seed: int = 0,
    reinit: bool = True,
) -> dict[str, float]:
    """Zero-cost proxies of ``model`` on one mini-batch ``x`` (N, C, H, W)
    with integer labels ``y`` (N,); returns ``{name: score}`` (definitions in
    the module docstring; higher is better). Each proxy runs on its own copy
    of the model, re-initialised from ``seed`` when ``reinit``; the same
    inputs and seed give the same scores. The caller's module is unchanged."""
    unknown = [n for n in names if n not in _FUNCTIONS]
    if unknown:
        raise LightnasError(f"unknown zero-cost proxy {unknown[0]!r} (choose from {', '.join(PROXIES)})")
    if x.dim() < 2 or len(x) != len(y):
        raise LightnasError(f"proxies need a batch and one label per image (got {tuple(x.shape)} and {len(y)} labels)")
    x, y = x.detach().cpu().float(), y.detach().cpu().long()
    out = {}
    with torch.random.fork_rng():
        for name in names:
            out[name] = float(_FUNCTIONS[name](_fresh(model, seed, reinit), x, y))
    return out
