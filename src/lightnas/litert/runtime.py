"""LiteRT's interpreter: logits over images, and the ``litert`` latency backend."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
from torch import nn

from lightnas.errors import LightnasError
from lightnas.hardware.latency import LATENCY_BACKENDS, BackendUnavailable
from lightnas.hardware.onnx_graph import deployed_onnx
from lightnas.litert.arena import memory
from lightnas.litert.flatbuffer import litert
from lightnas.litert.operators import onnx_to_tflite
from lightnas.litert.quantize import structural_int8


def tflite_bytes(model: nn.Module, input_shape: tuple[int, ...]) -> bytes:
    """``model``'s deployed ONNX graph (float32) as a ``.tflite`` flatbuffer."""
    if getattr(model, "int8_modules", ()):
        raise LightnasError("LiteRT export of lightnas's INT8 models is not supported: export them in float32")
    return onnx_to_tflite(deployed_onnx(model, input_shape))


def interpreter(tflite: bytes, threads: int) -> Any:
    """LiteRT's interpreter over ``tflite`` (XNNPACK, ``threads`` threads), tensors allocated."""
    _, lite = litert()
    with _quiet_stderr():  # LiteRT logs "INFO: Created ... XNNPACK delegate" on the process's stderr once
        interp = lite.Interpreter(model_content=tflite, num_threads=threads)
        interp.allocate_tensors()
    return interp


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """File descriptor 2 sent to the null device for the duration (native code's logging)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def litert_logits(interp: Any, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """LiteRT's outputs over ``x`` ((N, C, H, W) float32, as for ONNX Runtime), ``batch_size`` at a time."""
    inp, out = interp.get_input_details()[0]["index"], interp.get_output_details()[0]["index"]
    chunks, current = [], None
    for i in range(0, len(x), batch_size):
        xb = np.ascontiguousarray(x[i : i + batch_size].transpose(0, 2, 3, 1), dtype=np.float32)
        if current != xb.shape:
            interp.resize_tensor_input(inp, list(xb.shape))
            interp.allocate_tensors()
            current = xb.shape
        interp.set_tensor(inp, xb)
        interp.invoke()
        chunks.append(interp.get_tensor(out).copy())
    return np.concatenate(chunks) if chunks else np.zeros((0, 0), np.float32)


def mcu_memory(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, float]:
    """``sram_bytes`` and ``flash_bytes`` of ``model`` on a microcontroller: those
    of its full-integer INT8 ``.tflite`` (:func:`lightnas.litert.arena.memory`)."""
    mem = memory(structural_int8(tflite_bytes(model, input_shape), tuple(input_shape)))
    return {"sram_bytes": float(mem["sram_bytes"]), "flash_bytes": float(mem["flash_bytes"])}


def _prepared(tflite: Any, input_shape: tuple[int, ...], threads: int, batch: int, device: str) -> Any:
    """One invocation of the ``.tflite`` ``tflite()`` writes, at ``batch`` seeded random images."""
    if device != "cpu":
        raise LightnasError(f"the LiteRT backends measure on the CPU, not {device}")
    try:
        interp = interpreter(tflite(), threads)
    except LightnasError as exc:
        raise BackendUnavailable(str(exc)) from None
    inp = interp.get_input_details()[0]["index"]
    c, h, w = input_shape
    interp.resize_tensor_input(inp, [batch, h, w, c])
    interp.allocate_tensors()
    interp.set_tensor(inp, np.random.default_rng(0).standard_normal((batch, h, w, c)).astype(np.float32))
    return interp.invoke


@LATENCY_BACKENDS.register("litert")
def _litert(model: nn.Module, input_shape: tuple[int, ...], threads: int, batch: int, device: str) -> Any:
    """LiteRT's interpreter (XNNPACK) on the CPU, the float32 model converted once."""
    return _prepared(lambda: tflite_bytes(model, input_shape), input_shape, threads, batch, device)


@LATENCY_BACKENDS.register("litert-int8")
def _litert_int8(model: nn.Module, input_shape: tuple[int, ...], threads: int, batch: int, device: str) -> Any:
    """LiteRT's interpreter (XNNPACK) on the CPU, the full-integer INT8 model
    (its structure: ranges from two random images; the time does not depend on them)."""
    shape = tuple(input_shape)
    return _prepared(lambda: structural_int8(tflite_bytes(model, shape), shape), shape, threads, batch, device)


_litert.check = _litert_int8.check = litert  # type: ignore[attr-defined]  # preflight: the runtime is installed
