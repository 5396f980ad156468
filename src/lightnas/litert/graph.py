"""The bookkeeping of an ONNX graph translated to LiteRT: tensors, layouts, constants, paddings, fusion."""

from __future__ import annotations

from typing import Any

import numpy as np

from lightnas.errors import LightnasError
from lightnas.litert.flatbuffer import Writer, litert, same_pads

NCHW_TO_NHWC = {0: 0, 1: 3, 2: 1, 3: 2}
"""An ONNX (NCHW) axis -> the LiteRT (NHWC) axis of a 4-D activation."""
_FUSABLE = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "MUL", "SUB"}


class Graph:
    """One ONNX graph being written as LiteRT operators: each ONNX name's
    LiteRT tensor, whether it is NHWC, the constants known here; subclasses
    add one ``op_<OnnxType>`` method per operator."""

    def __init__(self, onnx_bytes: bytes):
        import onnx
        from onnx import numpy_helper, shape_inference

        self.schema, _ = litert()
        model = shape_inference.infer_shapes(onnx.load_from_string(onnx_bytes))
        self.g = model.graph
        self.w = Writer(self.schema)
        self.consts = {i.name: numpy_helper.to_array(i) for i in self.g.initializer}
        self.shapes = _measured_shapes(model)
        self.t: dict[str, int] = {}  # ONNX name -> LiteRT tensor
        self.nhwc: set[str] = set()  # names whose LiteRT tensor is 4-D NHWC
        self.readers: dict[str, int] = {}
        for n in self.g.node:
            for i in n.input:
                self.readers[i] = self.readers.get(i, 0) + 1
        self.outputs = {o.name for o in self.g.output}

    def attrs(self, node: Any) -> dict[str, Any]:
        from onnx import helper

        return {a.name: helper.get_attribute_value(a) for a in node.attribute}

    def out(self, node: Any, shape: list[int], nhwc: bool) -> int:
        name = node.output[0]
        idx = self.w.tensor(shape, name)
        self.t[name] = idx
        if nhwc:
            self.nhwc.add(name)
        return idx

    def lite_shape(self, name: str) -> list[int]:
        s = self.shapes[name]
        return [s[0], s[2], s[3], s[1]] if len(s) == 4 else s

    def operand(self, name: str, like: str) -> int:
        """A LiteRT tensor for ``name``: an activation, or a constant laid out as ``like`` is."""
        if name in self.t:
            return self.t[name]
        c = self.consts[name].astype(np.float32)
        if like in self.nhwc and c.ndim >= 3:  # (C, 1, 1) or (1, C, 1, 1) beside an NHWC tensor
            c = c.reshape((1,) * (4 - c.ndim) + c.shape).transpose(0, 2, 3, 1)
        return self.w.const(c, name)

    def convert(self) -> bytes:
        (inp,) = [i for i in self.g.input if i.name not in self.consts]
        n, c, h, w = self.shapes[inp.name]
        self.t[inp.name] = self.w.tensor([1, h, w, c], inp.name)
        self.w.tensors[-1].shapeSignature = [-1, h, w, c]
        self.nhwc.add(inp.name)
        gelu, inner = _gelu_patterns(self.g)
        for node in self.g.node:
            if node.name in inner or self.fold(node):
                continue
            if node.name in gelu:  # x * 0.5 * (1 + erf(x / sqrt 2)): LiteRT's GELU
                self.unary(node, "GELU", gelu[node.name])
                continue
            handler = getattr(self, f"op_{node.op_type}", None)
            if handler is None:
                raise LightnasError(f"LiteRT export does not support the ONNX operator {node.op_type} ({node.name})")
            handler(node, self.attrs(node))
        outs = []
        for o in self.g.output:
            if o.name in self.nhwc:  # a 4-D output goes back to the ONNX layout
                self.to_nchw(o.name)
            outs.append(self.t[o.name])
        return self.w.finish([self.t[inp.name]], outs, "lightnas: converted from its ONNX export")

    def fold(self, node: Any) -> bool:
        """Compute ``node`` here when it is shape arithmetic: ``Shape`` of an
        activation (batch 1: a ``RESHAPE`` keeps the batch free), or any
        operator whose inputs are all constants (ONNX's reference evaluator)."""
        if node.op_type == "Shape":
            self.consts[node.output[0]] = np.array(self.shapes[node.input[0]], np.int64)
            return True
        if node.op_type == "Constant" or not all(i in self.consts or not i for i in node.input):
            return False
        from onnx import helper
        from onnx.reference import ReferenceEvaluator

        ins = [i for i in node.input if i]
        graph = helper.make_graph(
            [node],
            "fold",
            [
                helper.make_tensor_value_info(i, helper.np_dtype_to_tensor_dtype(self.consts[i].dtype), None)
                for i in ins
            ],
            [helper.make_tensor_value_info(o, 0, None) for o in node.output],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        results = ReferenceEvaluator(model).run(None, {i: self.consts[i] for i in ins})
        self.consts.update(zip(node.output, (np.asarray(r) for r in results), strict=True))
        return True

    # -- operators -------------------------------------------------------------------------

    def alias(self, name: str, source: str) -> None:
        if source in self.consts:
            self.consts[name] = self.consts[source]
            return
        self.t[name] = self.t[source]
        if source in self.nhwc:
            self.nhwc.add(name)

    def pad_input(self, name: str, pads: list[int], value: float = 0.0) -> int:
        """``name`` (NHWC) padded by ONNX ``pads`` (top, left, bottom, right)."""
        t, left, b, r = pads
        shape = self.lite_shape(name)
        shape = [shape[0], shape[1] + t + b, shape[2] + left + r, shape[3]]
        out = self.w.tensor(shape, f"{name}/pad")
        paddings = self.w.const(np.array([[0, 0], [t, b], [left, r], [0, 0]]), f"{name}/paddings", "int32")
        if value == 0.0:
            self.w.op("PAD", [self.t[name], paddings], [out], self.w.options("PadOptions"), "PadOptions")
        else:
            fill = self.w.const(np.array(value, np.float32), f"{name}/fill")
            self.w.op("PADV2", [self.t[name], paddings, fill], [out], self.w.options("PadV2Options"), "PadV2Options")
        return out

    def window(self, node: Any, a: dict[str, Any], k: tuple[int, int], fill: float = 0.0) -> tuple[int, int]:
        """The operator's input and its LiteRT padding (``SAME``, ``VALID``, or an explicit ``PAD`` first)."""
        if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            raise LightnasError(f"LiteRT export: {node.name} uses auto_pad")
        x = node.input[0]
        self.to_nhwc(x)
        pads = list(a.get("pads", [0, 0, 0, 0]))
        strides, dil = a.get("strides", [1, 1]), a.get("dilations", [1, 1])
        _, h, w, _ = self.lite_shape(x)
        same = [*same_pads(h, k[0], strides[0], dil[0]), *same_pads(w, k[1], strides[1], dil[1])]
        P = self.schema.Padding
        if not any(pads):
            return self.t[x], P.VALID
        if [pads[0], pads[2], pads[1], pads[3]] == same and fill == 0.0:
            return self.t[x], P.SAME
        return self.pad_input(x, pads, fill), P.VALID

    def activation(self, node: Any, kind: str, fused: int) -> None:
        """Fuse into the producer where LiteRT can, else an operator of its own."""
        src = node.input[0]
        prod = self.w.producer.get(self.t.get(src, -1))
        if (
            prod is not None
            and prod.kind in _FUSABLE
            and self.readers.get(src, 0) == 1
            and src not in self.outputs
            and prod.builtinOptions is not None
            and getattr(prod.builtinOptions, "fusedActivationFunction", 1) == 0
        ):
            prod.builtinOptions.fusedActivationFunction = fused
            self.alias(node.output[0], src)
            return
        out = self.out(node, self.lite_shape(src), nhwc=src in self.nhwc)
        self.w.op(kind, [self.t[src]], [out])

    def to_nchw(self, name: str) -> int:
        """``name``'s tensor in the ONNX layout (a ``TRANSPOSE`` where it is NHWC)."""
        if name not in self.nhwc:
            return self.t[name]
        out = self.w.tensor(self.shapes[name], f"{name}/nchw")
        perm = self.w.const(np.array([0, 3, 1, 2]), f"{name}/perm", "int32")
        self.w.op("TRANSPOSE", [self.t[name], perm], [out], self.w.options("TransposeOptions"), "TransposeOptions")
        self.t[name] = out
        self.nhwc.discard(name)
        return out

    def to_nhwc(self, name: str) -> int:
        """``name``'s 4-D tensor in LiteRT's image layout (a ``TRANSPOSE`` where it is in ONNX's)."""
        if name in self.nhwc:
            return self.t[name]
        out = self.w.tensor(self.lite_shape(name), f"{name}/nhwc")
        perm = self.w.const(np.array([0, 2, 3, 1]), f"{name}/perm", "int32")
        self.w.op("TRANSPOSE", [self.t[name], perm], [out], self.w.options("TransposeOptions"), "TransposeOptions")
        self.t[name] = out
        self.nhwc.add(name)
        return out


def _dtype(value: np.ndarray) -> int:
    from onnx import helper

    return helper.np_dtype_to_tensor_dtype(value.dtype)


def _gelu_patterns(graph: Any) -> tuple[dict[str, str], set[str]]:
    """The exact GELU as ``torch.onnx`` writes it (Div by sqrt 2, Erf, Add 1,
    Mul by the input, Mul by 0.5): the last Mul's name -> the input's, and
    the names of the nodes it replaces."""
    by_output = {o: n for n in graph.node for o in n.output}
    readers: dict[str, list[Any]] = {}
    for n in graph.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)

    def only_reader(name: str, op: str) -> Any:
        r = readers.get(name, [])
        return r[0] if len(r) == 1 and r[0].op_type == op else None

    gelu, inner = {}, set()
    for erf in (n for n in graph.node if n.op_type == "Erf"):
        div = by_output.get(erf.input[0])
        add = only_reader(erf.output[0], "Add")
        mul = add and only_reader(add.output[0], "Mul")
        half = mul and only_reader(mul.output[0], "Mul")
        if div is None or div.op_type != "Div" or half is None or div.input[0] not in mul.input:
            continue
        gelu[half.name] = div.input[0]
        inner |= {div.name, erf.name, add.name, mul.name}
    return gelu, inner


def _measured_shapes(model: Any) -> dict[str, list[int]]:
    """Every value's shape at batch 1, measured by running the graph once in
    ONNX Runtime (shape inference leaves the dimensions of reshapes computed
    in the graph unknown)."""
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    known = {o.name for o in probe.graph.output}
    probe.graph.output.extend(v for v in model.graph.value_info if v.name not in known)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 3
    sess = ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    x = np.zeros([1, *inp.shape[1:]], np.float32)
    names = [o.name for o in sess.get_outputs()]
    shapes = {n: list(np.shape(v)) for n, v in zip(names, sess.run(names, {inp.name: x}), strict=True)}
    shapes[inp.name] = list(x.shape)
    return shapes
