"""Full-integer INT8 ``.tflite`` models, calibrated by LiteRT's own post-training quantizer.

The float32 ``.tflite`` is run over calibration images by LiteRT's
calibration wrapper (the one TensorFlow's converter drives), which records
every activation's range, then rewritten with INT8 weights (per channel) and
activations, INT32 biases; the model keeps float32 input and output (a
quantize and a dequantize at its ends), so it takes what the float32 model
takes. A microcontroller runs this model: its arena and flash are what
``--max-sram-kb`` and ``--max-flash-kb`` bound.
"""

from __future__ import annotations

import numpy as np

from lightnas.litert.flatbuffer import litert


def int8_tflite(tflite: bytes, calib: np.ndarray) -> bytes:
    """``tflite`` (float32) quantized to INT8 after calibration on ``calib``
    ((N, C, H, W) float32 images, normalised as the model's inputs are)."""
    litert()  # a one-line error without the runtime
    from ai_edge_litert import _pywrap_tensorflow_lite_calibration_wrapper as wrapper

    cal = wrapper.CalibrationWrapper(tflite, [], [])
    images = np.ascontiguousarray(calib.transpose(0, 2, 3, 1), dtype=np.float32)
    cal.Prepare([[1, *images.shape[1:]]])
    for x in images:
        cal.FeedTensor([x[None]])
    f32, i8, i32 = (np.dtype(t).num for t in (np.float32, np.int8, np.int32))
    return bytes(cal.QuantizeModel(f32, f32, False, i8, i32, False, False))


def structural_int8(tflite: bytes, shape: tuple[int, ...]) -> bytes:
    """The INT8 model's layout for memory figures: calibrated on two seeded
    random images (tensor types and sizes do not depend on the ranges)."""
    return int8_tflite(tflite, np.random.default_rng(0).standard_normal((2, *shape)).astype(np.float32))
