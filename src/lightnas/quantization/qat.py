"""Quantization-aware fine-tuning of an exported sub-network's INT8 groups.

The scheme mirrors what ONNX Runtime's static quantization does to the
deployed graph, so the weights learn to live with it:

- **weights**: each convolution and linear layer of the INT8 modules is
  fake-quantized per output channel, symmetric INT8 on the levels this
  machine's kernels use (:func:`~lightnas.quantization.onnx_int8.weight_qmax`), *as ONNX folds it*: a
  convolution followed by a BatchNorm is quantized in its folded form
  ``w * gamma / sqrt(var + eps)`` (the BatchNorms are frozen at their
  calibrated statistics during fine-tuning, so the fold is constant);
- **activations**: the input of each of those layers is fake-quantized per
  tensor, UINT8 over the range its moving minimum and maximum have seen;
- gradients pass straight through the rounding.

:func:`finish` removes the fake quantization and leaves every weight on its
INT8 grid, so the static quantization that exports the model loses nothing
on the weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from lightnas.quantization import onnx_int8
from lightnas.quantization.onnx_int8 import in_modules

QUANTIZED = (nn.Conv2d, nn.Linear)
RANGE_MOMENTUM = 0.1


def _ste_round(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.round(x) - x).detach()


class FoldedWeightQuant(nn.Module):
    """Per-output-channel symmetric INT8 fake quantization of ``w * fold`` (``fold``: 1, or a BatchNorm's scale)."""

    def __init__(self, fold: torch.Tensor):
        super().__init__()
        self.qmax = float(onnx_int8.weight_qmax())
        fold = fold.detach().clone()
        self.register_buffer("fold", torch.where(fold.abs() < 1e-12, torch.ones_like(fold), fold))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        shape = (-1,) + (1,) * (w.dim() - 1)
        folded = w * self.fold.view(shape)
        scale = folded.detach().abs().flatten(1).amax(1).clamp_min(1e-12).view(shape) / self.qmax
        q = torch.clamp(_ste_round(folded / scale), -self.qmax, self.qmax) * scale
        return q / self.fold.view(shape)


class InputQuant:
    """A forward pre-hook fake-quantizing a layer's input to UINT8 over a moving range."""

    def __init__(self) -> None:
        self.lo: float | None = None
        self.hi: float | None = None

    def __call__(self, module: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        x = args[0]
        lo, hi = min(float(x.detach().min()), 0.0), max(float(x.detach().max()), 0.0)
        if module.training or self.lo is None:
            m = 1.0 if self.lo is None else RANGE_MOMENTUM
            self.lo = lo if self.lo is None else (1 - m) * self.lo + m * lo
            self.hi = hi if self.hi is None else (1 - m) * self.hi + m * hi
        scale = max(self.hi - self.lo, 1e-8) / 255.0
        zero = round(-self.lo / scale)
        q = (torch.clamp(_ste_round(x / scale) + zero, 0, 255) - zero) * scale
        return (q, *args[1:])


class QatModel(nn.Module):
    """``plain`` with fake quantization on ``int8_modules``; BatchNorms stay
    frozen (eval mode) whatever mode the model is put in."""

    def __init__(self, plain: nn.Module, int8_modules: Sequence[str], example: torch.Tensor):
        super().__init__()
        self.plain = plain
        self.hooks: list[Any] = []
        folds = _bn_folds(plain, example)
        for name, mod in plain.named_modules():
            if isinstance(mod, QUANTIZED) and in_modules(name, int8_modules):
                fold = folds.get(name, torch.ones(mod.weight.shape[0]))
                parametrize.register_parametrization(mod, "weight", FoldedWeightQuant(fold))
                self.hooks.append(mod.register_forward_pre_hook(InputQuant()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.plain(x)

    def train(self, mode: bool = True) -> QatModel:
        super().train(mode)
        for m in self.plain.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
        return self

    def finish(self) -> nn.Module:
        """The plain module, fake quantization removed, weights left on their INT8 grid."""
        for h in self.hooks:
            h.remove()
        for mod in self.plain.modules():
            if parametrize.is_parametrized(mod, "weight"):
                parametrize.remove_parametrizations(mod, "weight", leave_parametrized=True)
        return self.plain.eval()


@torch.no_grad()
def _bn_folds(plain: nn.Module, example: torch.Tensor) -> dict[str, torch.Tensor]:
    """Convolution name -> the per-channel scale of the BatchNorm that directly
    follows it in execution (the fold ONNX export applies)."""
    names = {m: n for n, m in plain.named_modules()}
    order: list[nn.Module] = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: order.append(m)) for m in plain.modules() if not list(m.children())
    ]
    try:
        plain.eval()(example)
    finally:
        for h in hooks:
            h.remove()
    folds = {}
    for a, b in zip(order, order[1:], strict=False):
        if isinstance(a, nn.Conv2d) and isinstance(b, nn.BatchNorm2d) and b.num_features == a.out_channels:
            folds[names[a]] = b.weight / torch.sqrt(b.running_var + b.eps)
    return folds
