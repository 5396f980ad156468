"""Static cost of a module: parameters, MACs, serialized bytes, peak activations."""

from __future__ import annotations

import io

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@torch.no_grad()
def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> float:
    """Multiply-accumulates of one forward pass at batch 1 (as in :func:`count_cost`)."""
    counter = FlopCounterMode(display=False)
    with counter:
        model.eval()(torch.zeros(1, *input_shape))
    return float(counter.get_total_flops()) / 2.0


@torch.no_grad()
def count_cost(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, float]:
    """Cost of one forward pass at batch 1.

    Returns ``params`` (count), ``macs`` (multiply-accumulates, half the FLOPs
    that ``torch.utils.flop_counter`` reports for convolutions and matmuls),
    ``bytes`` (size of the serialized float32 state dict, less 3 bytes per
    weight a quantized module stores in INT8) and ``peak_act_bytes`` (the
    largest sum of an op's input and output activations at batch 1, 4 bytes a
    value, 1 in INT8 modules: the working memory an MCU-style runtime needs).
    A module with a ``bytes_per_value(module_name)`` method (an INT8 policy,
    :class:`lightnas.quantization.wrapper.QuantizedModule`) says which of its
    modules store 1-byte values; its ``plain`` attribute is the float32 network.
    """
    per_value = getattr(model, "bytes_per_value", None)
    model = getattr(model, "plain", model) if per_value is not None else model
    size = per_value or (lambda name: 4)
    model.eval()
    x = torch.zeros(1, *input_shape)
    counter = FlopCounterMode(display=False)
    peak = [x.numel() * 4]
    names = {m: n for n, m in model.named_modules()}

    def hook(mod: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if len(list(mod.children())) == 0 and isinstance(output, torch.Tensor):
            n = sum(int(t.numel()) for t in inputs if isinstance(t, torch.Tensor)) + int(output.numel())
            peak[0] = max(peak[0], n * size(names[mod]))

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        with counter:
            model(x)
    finally:
        for h in handles:
            h.remove()
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    saved = sum(
        (4 - size(name)) * p.numel()
        for name, mod in model.named_modules()
        for p in mod.parameters(recurse=False)
        if p.dim() > 1
    )
    return {
        "params": float(sum(p.numel() for p in model.parameters())),
        "macs": float(counter.get_total_flops()) / 2.0,
        "bytes": float(buf.getbuffer().nbytes - saved),
        "peak_act_bytes": float(peak[0]),
    }
