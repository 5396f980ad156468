"""ONNX graphs of PyTorch modules and ONNX Runtime sessions on them.

:func:`to_onnx_bytes` exports a module at batch 1 with a dynamic batch axis
(opset 17, the TorchScript exporter: its node names carry the module scopes
INT8 policies select by); :func:`deployed_onnx` is the graph that ships (an
INT8 model's own); :func:`onnx_session` and :func:`onnx_logits` run one on
the CPU or ONNX Runtime's CUDA provider.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from lightnas.errors import LightnasError


def onnx_session(onnx_bytes: bytes, threads: int, device: str = "cpu") -> Any:
    """An ONNX Runtime session with ``threads`` intra-op threads, on the CPU
    or (``device`` ``cuda[:N]``) on ONNX Runtime's CUDA execution provider."""

    providers: list[Any] = ["CPUExecutionProvider"]
    if device != "cpu":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise LightnasError(f"onnxruntime has no CUDA execution provider here for --target {device}")
        index = int(device.partition(":")[2] or 0)
        providers = [("CUDAExecutionProvider", {"device_id": index})]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    return ort.InferenceSession(onnx_bytes, opts, providers=providers)


def onnx_logits(sess: Any, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Outputs of an ONNX Runtime session over ``x`` (N, C, H, W float32), ``batch_size`` images at a time."""
    chunks = [
        sess.run(None, {"input": np.ascontiguousarray(x[i : i + batch_size])})[0] for i in range(0, len(x), batch_size)
    ]
    return np.concatenate(chunks) if chunks else np.zeros((0, 0), np.float32)


def to_onnx_bytes(model: nn.Module, input_shape: tuple[int, ...]) -> bytes:
    """Export ``model`` (eval mode) at batch 1 with a dynamic batch axis."""

    buf = io.BytesIO()
    model.eval()
    torch.onnx.export(
        model,
        (torch.zeros(1, *input_shape),),
        buf,
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    return buf.getvalue()


def deployed_onnx(model: nn.Module, input_shape: tuple[int, ...]) -> bytes:
    """The ONNX graph that ships for ``model``: its own ``deployed_onnx(input_shape)``
    where it has one (an INT8 policy, :mod:`lightnas.quantization`), else its float32 export."""
    own = getattr(model, "deployed_onnx", None)
    return own(input_shape) if own is not None else to_onnx_bytes(model, input_shape)
