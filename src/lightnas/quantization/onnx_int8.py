"""Static post-training INT8 quantization in ONNX Runtime, restricted to the
modules a precision policy names.

The scheme (recorded on every card): QDQ format, weights INT8 symmetric per
output channel, activations UINT8 (asymmetric, the u8s8 form x86 kernels
run), ranges calibrated on training images with MinMax (or percentile /
entropy). On an x86 CPU without VNNI the weights take 7 bits (levels -64..64,
ONNX Runtime's ``reduce_range``): there the u8s8 kernels (VPMADDUBSW) add
pairs of uint8 x int8 products in int16, and 8-bit weights saturate it
(2 x 255 x 127 > 32767), which costs whole points of accuracy; with 7 bits
the sum stays exact (2 x 255 x 64 < 32767). Nodes outside the policy's INT8 modules stay float32. The ranges of
one float32 graph are computed once and cached: every policy of the same
sub-network reuses them.
"""

from __future__ import annotations

import functools
import logging
import platform
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from lightnas.config import CALIB_METHODS
from lightnas.errors import LightnasError

CALIB_BATCH = 64
SCHEME = "static QDQ: int8 weights (symmetric, per channel), uint8 activations (calibrated ranges)"
X86 = ("x86_64", "amd64", "i386", "i686", "x86")
VNNI_FLAGS = ("avx512_vnni", "avx_vnni")


def _cpu_flags() -> set[str] | None:
    """The CPU's feature flags (Linux ``/proc/cpuinfo``), None where they cannot be read."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return None


@functools.cache
def reduced_weights() -> bool:
    """Whether this machine's INT8 kernels need 7-bit weights: an x86 CPU
    without VNNI, or one whose flags cannot be read (the safe choice)."""
    if platform.machine().lower() not in X86:
        return False  # Arm's int8 dot products accumulate in 32 bits
    flags = _cpu_flags()
    return flags is None or not any(f in flags for f in VNNI_FLAGS)


def weight_qmax() -> int:
    """The largest INT8 weight level on this machine: 127, or 64 with 7-bit weights."""
    return 64 if reduced_weights() else 127


def node_module(node_name: str) -> str:
    """The qualified module name an exported ONNX node belongs to.

    PyTorch's exporter names nodes by scope: ``/blocks/blocks.3/dw/Conv`` is
    the convolution of module ``blocks.3.dw`` (a list item's scope repeats its
    parent's name); ``/Relu`` belongs to the root (``""``)."""
    parts = node_name.strip("/").split("/")[:-1]
    qual: list[str] = []
    for p in parts:
        if qual and p.startswith(qual[-1] + "."):
            qual[-1] = p  # "blocks" then "blocks.3": the item of the list
        else:
            qual.append(p)
    return ".".join(qual)


def in_modules(name: str, modules: Sequence[str]) -> bool:
    """Whether qualified module ``name`` is one of ``modules`` or inside one (``""``: everything)."""
    return any(m == "" or name == m or name.startswith(m + ".") for m in modules)


def policy_nodes(onnx_bytes: bytes, modules: Sequence[str]) -> list[str]:
    """Names of the graph's nodes that lie in ``modules``."""
    # onnx and ONNX Runtime's quantization take 1.6 s to import: only INT8 runs need them
    import onnx

    graph = onnx.load_from_string(onnx_bytes).graph
    return [n.name for n in graph.node if n.name and in_modules(node_module(n.name), modules)]


class _Reader:
    """Calibration batches for ONNX Runtime's calibrator."""

    def __init__(self, x: np.ndarray):
        self.batches = [x[i : i + CALIB_BATCH] for i in range(0, len(x), CALIB_BATCH)]

    def get_next(self) -> dict[str, np.ndarray] | None:
        return {"input": self.batches.pop(0)} if self.batches else None

    def rewind(self) -> None:  # pragma: no cover - not called by static calibration
        pass


class Int8Graph:
    """One float32 sub-network's ONNX graph, quantized to INT8 under any policy.

    ``fp32``: the graph, or a function exporting it (called on first use);
    ``calib`` (N, C, H, W float32, preprocessed) are the calibration images;
    the ranges they give are computed on the first :meth:`build` and reused.
    """

    def __init__(self, fp32: bytes | Callable[[], bytes], calib: np.ndarray, method: str = "minmax"):
        if method not in CALIB_METHODS:
            raise LightnasError(f"unknown calibration method {method!r} (choose from {', '.join(CALIB_METHODS)})")
        if len(calib) < 1:
            raise LightnasError("INT8 calibration needs at least one image")
        self._fp32 = fp32
        self.calib = np.ascontiguousarray(calib, dtype=np.float32)
        self.method = method
        self.reduced = reduced_weights()
        self._dir = tempfile.TemporaryDirectory(prefix="lightnas-int8-")
        self._built: dict[tuple[str, ...], bytes] = {}

    @property
    def fp32(self) -> bytes:
        """The float32 graph (exported on first use when given as a function)."""
        if callable(self._fp32):
            self._fp32 = self._fp32()
        return self._fp32

    def build(self, modules: Sequence[str]) -> bytes:
        """The graph with the nodes of ``modules`` in INT8 (``()``: the float32 graph)."""
        key = tuple(sorted(modules))
        if not key:
            return self.fp32
        if key not in self._built:
            self._built[key] = self._quantize(policy_nodes(self.fp32, key))
        return self._built[key]

    def settings(self) -> dict[str, object]:
        """How this graph's INT8 versions are made (cards)."""
        return int8_settings(len(self.calib), self.method, self.reduced)

    def _quantize(self, nodes: list[str]) -> bytes:
        # onnx and ONNX Runtime's quantization take 1.6 s to import: only INT8 runs need them
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

        if not nodes:
            return self.fp32  # ORT reads an empty list as "every node"
        method = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile}.get(
            self.method, CalibrationMethod.Entropy
        )
        d = Path(self._dir.name)
        src, out = d / "fp32.onnx", d / f"int8-{len(self._built)}.onnx"
        if not src.exists():
            src.write_bytes(self.fp32)
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # ORT's pre-processing advice, once per call
        try:
            quantize_static(
                str(src),
                str(out),
                _Reader(self.calib),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                reduce_range=self.reduced,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                nodes_to_quantize=nodes,
                calibrate_method=method,
                calibration_cache_path=str(d / f"ranges-{self.method}.json"),
                extra_options={"WeightSymmetric": True, "ActivationSymmetric": False},
            )
        except (ValueError, RuntimeError, TypeError) as exc:
            raise LightnasError(f"ONNX Runtime cannot quantize this graph: {str(exc).splitlines()[0]}") from None
        finally:
            root.setLevel(level)
        data = out.read_bytes()
        out.unlink()
        return data


def int8_settings(images: int, method: str, reduced: bool | None = None) -> dict[str, object]:
    """How INT8 graphs are made (cards, the store): the scheme, the weights'
    bits (``reduced``: 7-bit weights; default this machine's) and the calibration."""
    bits = 7 if (reduced_weights() if reduced is None else reduced) else 8
    return {"scheme": SCHEME, "weight_bits": bits, "calibration_images": int(images), "calibration_method": method}
