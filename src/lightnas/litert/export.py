"""The LiteRT files of an exported model and its card section (:class:`~lightnas.artefacts.LiteRT`)."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable

import numpy as np
import torch

from lightnas.artefacts import LiteRT
from lightnas.errors import LightnasError
from lightnas.litert.arena import c_array, memory
from lightnas.litert.runtime import interpreter, litert_logits, tflite_bytes
from lightnas.tensors import predict

TOL = 1e-4
"""Largest logit difference from PyTorch a ``.tflite`` may have (float32)."""


def installed() -> bool:
    """Whether LiteRT's runtime (``ai-edge-litert``, the ``litert`` extra) is importable."""
    return importlib.util.find_spec("ai_edge_litert") is not None


def litert_files(
    fp32: torch.nn.Module,
    shape: tuple[int, ...],
    batches: Iterable[np.ndarray],
    y_test: np.ndarray,
    key: str,
    check_images: int,
) -> tuple[LiteRT | None, dict[str, bytes]]:
    """``fp32`` (inputs of ``shape``, C x H x W) as ``model.tflite`` and
    ``model_data.cc``/``.h``, with its card section: LiteRT's logits over
    the test images of ``batches`` (their accuracy is the card's), checked
    against PyTorch on the first ``check_images`` within :data:`TOL` (an error
    beyond). ``(None, {})`` without LiteRT's runtime; a section that says why
    where the model holds an operator the conversion does not write."""
    if not installed():
        return None, {}
    try:
        tfl = tflite_bytes(fp32, shape)
    except LightnasError as exc:
        return LiteRT(skipped=str(exc)), {}
    interp = interpreter(tfl, torch.get_num_threads())
    parts, diff, n = [], 0.0, 0
    for x in batches:
        out = litert_logits(interp, x)
        parts.append(out)
        k = min(len(x), check_images - n)
        if k > 0:
            ref = predict(fp32, torch.from_numpy(x[:k])).numpy()
            diff, n = max(diff, float(np.abs(out[:k] - ref).max())), n + k
    if diff > TOL:
        raise LightnasError(f"LiteRT differs from PyTorch by {diff:.2e} for {key}")
    logits = np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)
    accuracy = 100.0 * float((logits.argmax(1) == y_test).mean()) if len(logits) else 0.0
    mem = memory(tfl)
    source, header = c_array(tfl)
    section = LiteRT(
        test_accuracy=accuracy,
        max_abs_diff=diff,
        checked_images=n,
        tflite_bytes=len(tfl),
        sram_bytes=mem["sram_bytes"],
        sram_lower_bound_bytes=mem["sram_lower_bound_bytes"],
        flash_bytes=mem["flash_bytes"],
        memory_how=mem["how"],
    )
    return section, {"model.tflite": tfl, "model_data.cc": source.encode(), "model_data.h": header.encode()}
