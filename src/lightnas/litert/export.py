"""The LiteRT files of an exported model and its card section (:class:`~lightnas.artefacts.LiteRT`)."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable

import numpy as np
import torch

from lightnas.artefacts import LiteRT
from lightnas.data.sources import Dataset
from lightnas.errors import LightnasError
from lightnas.litert.arena import c_array, memory
from lightnas.litert.quantize import int8_tflite
from lightnas.litert.runtime import interpreter, litert_logits, tflite_bytes
from lightnas.supernets.base import resize_input
from lightnas.tensors import INT8_CALIB_IMAGES, predict, to_tensor

TOL = 1e-4
"""Largest logit difference from PyTorch a float32 ``.tflite`` may have."""
LITERT_FILES = {"tflite": "model.tflite", "tflite_int8": "model.int8.tflite", "c_array": "model_data.cc"}
"""The card's ``files`` entries of the LiteRT files."""


def installed() -> bool:
    """Whether LiteRT's runtime (``ai-edge-litert``, the ``litert`` extra) is importable."""
    return importlib.util.find_spec("ai_edge_litert") is not None


def litert_files(
    fp32: torch.nn.Module,
    shape: tuple[int, ...],
    data: Dataset,
    batches: Iterable[np.ndarray],
    key: str,
    check_images: int,
) -> tuple[LiteRT | None, dict[str, bytes]]:
    """``fp32`` (inputs of ``shape``, C x H x W) as ``model.tflite``,
    ``model.int8.tflite`` (calibrated on the first ``INT8_CALIB_IMAGES`` training
    images of ``data``) and ``model_data.cc``/``.h``, with its card section:
    both models' logits over the test images of ``batches`` (scored against
    ``data``'s test labels), the float32 one checked against PyTorch on
    the first ``check_images`` within :data:`TOL` (an error beyond).
    ``(None, {})`` without LiteRT's runtime; a section that says why where the
    model holds an operator the conversion does not write."""
    if not installed():
        return None, {}
    try:
        tfl = tflite_bytes(fp32, shape)
    except LightnasError as exc:
        return LiteRT(skipped=str(exc)), {}
    calib = resize_input(to_tensor(data.x_train[:INT8_CALIB_IMAGES], data), shape).numpy()
    q8 = int8_tflite(tfl, calib)
    y_test = data.y_test
    runs = [interpreter(m, torch.get_num_threads()) for m in (tfl, q8)]
    parts: list[list[np.ndarray]] = [[], []]
    diff, n = 0.0, 0
    for x in batches:
        for interp, out in zip(runs, parts, strict=True):
            out.append(litert_logits(interp, x))
        k = min(len(x), check_images - n)
        if k > 0:
            ref = predict(fp32, torch.from_numpy(x[:k])).numpy()
            diff, n = max(diff, float(np.abs(parts[0][-1][:k] - ref).max())), n + k
    if diff > TOL:
        raise LightnasError(f"LiteRT differs from PyTorch by {diff:.2e} for {key}")
    f32, i8 = (np.concatenate(p) if p else np.zeros((0, 0), np.float32) for p in parts)
    mem = memory(q8)
    source, header = c_array(q8)
    section = LiteRT(
        test_accuracy=_top1(f32, y_test),
        max_abs_diff=diff,
        checked_images=n,
        tflite_bytes=len(tfl),
        int8_test_accuracy=_top1(i8, y_test),
        int8_top1_agreement=float((i8.argmax(1) == f32.argmax(1)).mean()) if len(f32) else 1.0,
        int8_tflite_bytes=len(q8),
        calibration_images=len(calib),
        sram_bytes=mem["sram_bytes"],
        sram_lower_bound_bytes=mem["sram_lower_bound_bytes"],
        flash_bytes=mem["flash_bytes"],
        memory_how=mem["how"],
    )
    files = {"model.tflite": tfl, "model.int8.tflite": q8}
    return section, {**files, "model_data.cc": source.encode(), "model_data.h": header.encode()}


def _top1(logits: np.ndarray, y: np.ndarray) -> float:
    return 100.0 * float((logits.argmax(1) == y).mean()) if len(logits) else 0.0
