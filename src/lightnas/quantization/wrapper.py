"""One wrapper that gives any super-network a precision per block group.

:class:`PrecisionSupernet` presents a registered super-network with the
``q_<group>`` dimensions of :func:`~lightnas.quantization.policy.precision_space`
added to its space, and answers the rest of the contract from the wrapped
network: ``set_active`` and ``forward`` run the float32 sub-network (the
reference the INT8 model is compared with), ``extract`` returns the deployed
model (a :class:`QuantizedModule` when any group is INT8), latency parts carry
their precision, so a latency table prices quantized sub-networks too.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from lightnas.errors import LightnasError
from lightnas.hardware.onnx_graph import to_onnx_bytes
from lightnas.quantization.onnx_int8 import Int8Graph, in_modules, int8_settings
from lightnas.quantization.policy import PRECISIONS, precision_space, split_policy
from lightnas.space import Arch
from lightnas.supernets.base import PrecisionGroup, Supernet, resize_input, trained_like

PART_CALIB_IMAGES = 16  # random inputs calibrating a latency part (its timing does not depend on them)
CACHED_GRAPHS = 16


class QuantizedModule(nn.Module):
    """A plain float32 sub-network and the modules of it that run in INT8.

    ``forward`` is the float32 module's (the reference); :meth:`deployed_onnx`
    is the graph that ships: ONNX Runtime's static INT8 quantization of
    ``int8_modules`` (qualified names, ``""``: all) with everything else in
    float32. :func:`lightnas.hardware.onnx_graph.deployed_onnx` is what is measured.
    """

    def __init__(self, plain: nn.Module, int8_modules: Sequence[str], graph: Int8Graph):
        super().__init__()
        self.plain = plain
        self.int8_modules = tuple(int8_modules)
        self.graph = graph

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.plain(x)

    def deployed_onnx(self, input_shape: tuple[int, ...]) -> bytes:
        return self.graph.build(self.int8_modules)

    def bytes_per_value(self, module_name: str) -> int:
        """Bytes of one weight or activation value of ``module_name`` as deployed."""
        return 1 if in_modules(module_name, self.int8_modules) else 4


class PrecisionSupernet:
    """``net`` with a ``{fp32, int8}`` dimension per precision group.

    ``calib``: preprocessed training images (N, C, H, W) the INT8 activation
    ranges are calibrated on; ``bn_calib``: those the BatchNorm statistics of
    an extracted sub-network are re-estimated on (the evaluator's), so that
    :meth:`extract` is the model as deployed. ``method``: the range
    calibration (minmax, percentile, entropy).
    """

    def __init__(
        self,
        net: Supernet,
        calib: torch.Tensor | None = None,
        bn_calib: torch.Tensor | None = None,
        method: str = "minmax",
    ):
        if calib is not None and len(calib) < 1:
            raise LightnasError("INT8 calibration needs at least one training image")
        self.net = net
        self.bn_calib = bn_calib
        self.space = precision_space(net.space, net.precision_groups())
        self.calib = calib
        self.method = method
        self._graphs: OrderedDict[Arch, tuple[nn.Module, Int8Graph]] = OrderedDict()

    # -- what is not about precision is the wrapped network's ------------------------
    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["net"], name)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def eval(self) -> PrecisionSupernet:
        self.net.eval()
        return self

    def to(self, *args: Any, **kwargs: Any) -> PrecisionSupernet:
        self.net.to(*args, **kwargs)
        return self

    # -- the policy -------------------------------------------------------------------
    def base(self, arch: Arch) -> Arch:
        """The architecture without its precision dimensions."""
        return self.net.space.make(split_policy(self.space.make(dict(arch)))[0])

    def policy(self, arch: Arch) -> dict[str, str]:
        """Group -> precision, for the groups present in ``arch``."""
        arch = self.space.make(dict(arch))
        chosen = split_policy(arch)[1]
        return {g.name: chosen[g.name] for g in self.net.precision_plan(self.base(arch))}

    def int8_modules(self, arch: Arch) -> tuple[str, ...]:
        policy = self.policy(arch)
        plan = self.net.precision_plan(self.base(arch))
        return tuple(m for g in plan if policy[g.name] == "int8" for m in g.modules)

    # -- the contract -------------------------------------------------------------------
    def set_active(self, arch: Arch) -> None:
        arch = self.space.make(dict(arch))
        self.net.set_active(self.base(arch))
        self.active_arch = arch

    @torch.no_grad()
    def extract(self, arch: Arch) -> nn.Module:
        """The sub-network as deployed: BatchNorm calibrated on ``bn_calib``, float32
        where the policy says so, a :class:`QuantizedModule` when any group is INT8."""
        base = self.base(arch)
        if self.calib is None or self.bn_calib is None:
            raise LightnasError("extracting a quantized sub-network needs calibration images")
        if base not in self._graphs:
            saved = getattr(self.net, "active_arch", None)
            self.net.set_active(base)
            self.net.calibrate(self.bn_calib.to(next(self.net.parameters()).device))
            plain = self.net.extract(base).eval().cpu()
            if saved is not None:
                self.net.set_active(saved)
            shape = self.net.input_shape_for(base)
            calib = resize_input(self.calib.cpu(), shape).numpy()
            graph = Int8Graph(to_onnx_bytes(plain, shape), calib, self.method)
            self._graphs[base] = (plain, graph)
            while len(self._graphs) > CACHED_GRAPHS:
                self._graphs.popitem(last=False)
        self._graphs.move_to_end(base)
        plain, graph = self._graphs[base]
        modules = self.int8_modules(arch)
        plain = copy.deepcopy(plain)  # a module of its own; the cached graph is of these weights
        return QuantizedModule(plain, modules, graph) if modules else plain

    def requantize(self, plain: nn.Module, int8_modules: Sequence[str], arch: Arch | None = None) -> QuantizedModule:
        """``plain`` (changed weights, e.g. fine-tuned: the sub-network ``arch``,
        default the largest) deployed with ``int8_modules`` in INT8, calibrated afresh."""
        shape = self.input_shape_for(arch if arch is not None else self.space.largest())
        if self.calib is None:
            raise LightnasError("quantizing a sub-network needs calibration images")
        calib = resize_input(self.calib.cpu(), shape).numpy()
        graph = Int8Graph(lambda: to_onnx_bytes(plain, shape), calib, self.method)
        return QuantizedModule(plain.eval(), int8_modules, graph)

    def input_shape_for(self, arch: Arch) -> tuple[int, int, int]:
        return self.net.input_shape_for(self.base(arch))

    def latency_parts(self, arch: Arch) -> list[Hashable]:
        """The wrapped network's parts, each with its group's precision last."""
        base = self.base(arch)
        parts = list(self.net.latency_parts(base))
        policy = self.policy(arch)
        precision = ["fp32"] * len(parts)
        for g in self.net.precision_plan(base):
            for i in g.parts:
                precision[i] = policy[g.name]
        return [(*p, q) for p, q in zip(parts, precision, strict=True)]

    def precision_plan(self, arch: Arch) -> list[PrecisionGroup]:
        return self.net.precision_plan(self.base(arch))

    def arch_features(self, arch: Arch) -> dict[str, float]:
        return self.net.arch_features(self.base(arch))

    def all_latency_parts(self) -> list[Hashable]:
        return [(*p, q) for p in self.net.all_latency_parts() for q in PRECISIONS]

    def build_part(self, part: Hashable) -> tuple[nn.Module, tuple[int, ...]]:
        *spec, precision = part  # type: ignore[misc]
        module, shape = self.net.build_part(tuple(spec))
        if precision == "fp32":
            return module, shape
        module = trained_like(module)  # fresh statistics export degenerate constants that INT8 kernels cannot fuse
        x = np.random.default_rng(0).standard_normal((PART_CALIB_IMAGES, *shape)).astype(np.float32)
        graph = Int8Graph(lambda: to_onnx_bytes(module, shape), x, self.method)
        return QuantizedModule(module, ("",), graph), shape

    def describe_part(self, part: Hashable) -> str:
        *spec, precision = part  # type: ignore[misc]
        return f"{self.net.describe_part(tuple(spec))} ({precision})"

    def describe(self) -> dict[str, Any]:
        """How INT8 sub-networks are made (cards, the store)."""
        groups = list(self.net.precision_groups())
        n = 0 if self.calib is None else len(self.calib)
        return {"precisions": list(PRECISIONS), "groups": groups, **int8_settings(n, self.method)}


Searchable = Supernet | PrecisionSupernet  # what the search evaluates and export extracts from
