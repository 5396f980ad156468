"""The tensor arena a microcontroller runtime plans for a ``.tflite`` model, read from the flatbuffer itself.

LiteRT for Microcontrollers keeps every activation of a model in one arena
(SRAM), placed ahead of time: a tensor lives from the operator that writes it
(the graph's inputs from the start) to the last operator that reads it (the
graph's outputs to the end), and its default planner places tensors in
decreasing size, each at the lowest offset where it overlaps no placed tensor
that is alive at the same time (:func:`plan_arena`). Weights stay in flash
(the ``.tflite`` file). The reference kernels of the operators lightnas
writes need no scratch buffers, so none are added; every tensor is its own
buffer (no in-place reshapes). :func:`live_lower_bound` is the most bytes
alive at any operator: no placement can use less.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from lightnas.litert.flatbuffer import litert

_ITEM_BYTES = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 9: 1, 7: 2}
"""TensorType -> bytes per element (FLOAT32, FLOAT16, INT32, UINT8, INT64, INT8, INT16)."""


@dataclasses.dataclass(frozen=True)
class Buffer:
    """One activation: ``size`` bytes alive from operator ``first`` to ``last`` (inclusive)."""

    size: int
    first: int
    last: int


def activations(tflite: bytes) -> list[Buffer]:
    """The activations of ``tflite``'s main subgraph (tensors without constant data), with their lifetimes."""
    schema, _ = litert()
    model = schema.ModelT.InitFromPackedBuf(tflite, 0)
    sub = model.subgraphs[0]
    constant = {i for i, t in enumerate(sub.tensors) if model.buffers[t.buffer].data is not None}
    n = len(sub.operators)
    first = {i: 0 for i in sub.inputs}
    last = {i: n - 1 for i in sub.outputs}
    for k, op in enumerate(sub.operators):
        for t in op.outputs:
            first.setdefault(int(t), k)
        for t in op.inputs:
            if t >= 0:
                last[int(t)] = max(last.get(int(t), k), k)
    out = []
    for t, start in first.items():
        if t in constant:
            continue
        tensor = sub.tensors[t]
        size = int(np.prod(tensor.shape)) * _ITEM_BYTES.get(int(tensor.type), 4)
        out.append(Buffer(size, start, last.get(t, start)))
    return out


def plan_arena(buffers: list[Buffer]) -> int:
    """Arena bytes of the greedy planner: largest first, each at the lowest
    offset clear of every placed buffer alive at the same time."""
    placed: list[tuple[int, Buffer]] = []
    top = 0
    for b in sorted(buffers, key=lambda b: (-b.size, b.first)):
        clashes = sorted(((o, p) for o, p in placed if p.first <= b.last and b.first <= p.last), key=lambda c: c[0])
        offset = 0
        for o, p in clashes:
            if offset + b.size <= o:
                break
            offset = max(offset, o + p.size)
        placed.append((offset, b))
        top = max(top, offset + b.size)
    return top


def live_lower_bound(buffers: list[Buffer]) -> int:
    """The most bytes alive at once at any operator."""
    if not buffers:
        return 0
    end = max(b.last for b in buffers)
    return max(sum(b.size for b in buffers if b.first <= k <= b.last) for k in range(end + 1))


def memory(tflite: bytes) -> dict[str, Any]:
    """``sram_bytes`` (the planned arena), ``sram_lower_bound_bytes``, ``flash_bytes`` (the file) and how."""
    buffers = activations(tflite)
    return {
        "sram_bytes": plan_arena(buffers),
        "sram_lower_bound_bytes": live_lower_bound(buffers),
        "flash_bytes": len(tflite),
        "how": "SRAM: the tensor arena of LiteRT for Microcontrollers' greedy planner over the .tflite graph "
        "(activations live from their producer to their last reader, largest placed first; no scratch "
        "buffers: reference kernels); flash: the .tflite file",
    }


def c_array(tflite: bytes, name: str = "g_model") -> tuple[str, str]:
    """``model_data.cc`` and ``model_data.h`` holding ``tflite`` as a 16-byte aligned C array for a firmware build."""
    header = (
        "#ifndef MODEL_DATA_H_\n#define MODEL_DATA_H_\n\n"
        f"extern const unsigned char {name}[];\nextern const unsigned int {name}_len;\n\n#endif  // MODEL_DATA_H_\n"
    )
    rows = [", ".join(f"0x{b:02x}" for b in tflite[i : i + 12]) for i in range(0, len(tflite), 12)]
    body = ",\n  ".join(rows)
    source = (
        '#include "model_data.h"\n\n'
        f"alignas(16) const unsigned char {name}[] = {{\n  {body}\n}};\n"
        f"const unsigned int {name}_len = {len(tflite)};\n"
    )
    return source, header
