"""Quantization searched with the architecture: precision as search dimensions
(:mod:`~lightnas.quantization.policy`, torch-free), ONNX Runtime static INT8
(:mod:`~lightnas.quantization.onnx_int8`), and one wrapper that adds the
precision dimensions to any super-network (:mod:`~lightnas.quantization.wrapper`)."""

from lightnas.quantization.policy import PRECISIONS, PREFIX, check_precision, precision_space, split_policy

__all__ = ["PRECISIONS", "PREFIX", "check_precision", "precision_space", "split_policy"]
