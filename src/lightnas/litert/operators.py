"""ONNX operators as LiteRT builtin operators: :func:`onnx_to_tflite`."""

from __future__ import annotations

from typing import Any

import numpy as np

from lightnas.errors import LightnasError
from lightnas.litert.graph import NCHW_TO_NHWC, Graph


class Converter(Graph):
    """The operators of lightnas's convolutional exports (module docstring of :mod:`lightnas.litert`)."""

    def op_Constant(self, node: Any, a: dict[str, Any]) -> None:
        from onnx import numpy_helper

        self.consts[node.output[0]] = numpy_helper.to_array(a["value"])

    def op_Identity(self, node: Any, a: dict[str, Any]) -> None:
        self.alias(node.output[0], node.input[0])

    op_Dropout = op_Identity

    def op_Conv(self, node: Any, a: dict[str, Any]) -> None:
        weight = self.consts[node.input[1]].astype(np.float32)
        o, ig, kh, kw = weight.shape
        c_in = self.lite_shape(node.input[0])[3]
        bias = self.consts[node.input[2]] if len(node.input) > 2 else np.zeros(o, np.float32)
        x, padding = self.window(node, a, (kh, kw))
        strides, dil, group = a.get("strides", [1, 1]), a.get("dilations", [1, 1]), a.get("group", 1)
        common = {
            "padding": padding,
            "strideH": strides[0],
            "strideW": strides[1],
            "dilationHFactor": dil[0],
            "dilationWFactor": dil[1],
        }
        out = self.out(node, self.lite_shape(node.output[0]), nhwc=True)
        b = self.w.const(bias, f"{node.name}/bias")
        if group == 1:
            f = self.w.const(weight.transpose(0, 2, 3, 1), f"{node.name}/filter")
            self.w.op("CONV_2D", [x, f, b], [out], self.w.options("Conv2DOptions", **common), "Conv2DOptions")
        elif group == c_in and ig == 1:
            f = self.w.const(weight.reshape(o, kh, kw).transpose(1, 2, 0)[None], f"{node.name}/filter")
            opts = self.w.options("DepthwiseConv2DOptions", depthMultiplier=o // c_in, **common)
            self.w.op("DEPTHWISE_CONV_2D", [x, f, b], [out], opts, "DepthwiseConv2DOptions")
        else:
            raise LightnasError(f"LiteRT export does not support grouped convolutions ({node.name}, {group} groups)")

    def op_Relu(self, node: Any, a: dict[str, Any]) -> None:
        self.activation(node, "RELU", self.schema.ActivationFunctionType.RELU)

    def op_Clip(self, node: Any, a: dict[str, Any]) -> None:
        lo, hi = (float(self.consts[n]) if n else None for n in (list(node.input[1:]) + ["", ""])[:2])
        if lo == 0.0 and hi == 6.0:
            return self.activation(node, "RELU6", self.schema.ActivationFunctionType.RELU6)
        if lo == 0.0 and hi is None:
            return self.op_Relu(node, a)
        raise LightnasError(f"LiteRT export supports Clip only as ReLU or ReLU6 ({node.name}: {lo}..{hi})")

    def unary(self, node: Any, kind: str, src: str = "") -> None:
        """``kind`` applied to ``src`` (default: the node's first input), element by element."""
        src = src or node.input[0]
        out = self.out(node, self.lite_shape(src), nhwc=src in self.nhwc)
        self.w.op(kind, [self.t[src]], [out])

    def op_HardSwish(self, node: Any, a: dict[str, Any]) -> None:
        self.unary(node, "HARD_SWISH")

    def op_Sigmoid(self, node: Any, a: dict[str, Any]) -> None:
        self.unary(node, "LOGISTIC")

    def op_Tanh(self, node: Any, a: dict[str, Any]) -> None:
        self.unary(node, "TANH")

    def op_HardSigmoid(self, node: Any, a: dict[str, Any]) -> None:
        """clip(alpha x + beta, 0, 1) as a multiplication, an addition and ``RELU_0_TO_1``."""
        src = node.input[0]
        shape, nhwc = self.lite_shape(src), src in self.nhwc
        scaled, shifted = (self.w.tensor(shape, f"{node.name}/{s}") for s in ("scaled", "shifted"))
        alpha = self.w.const(np.array(a.get("alpha", 0.2), np.float32), f"{node.name}/alpha")
        beta = self.w.const(np.array(a.get("beta", 0.5), np.float32), f"{node.name}/beta")
        self.w.op("MUL", [self.t[src], alpha], [scaled], self.w.options("MulOptions"), "MulOptions")
        self.w.op("ADD", [scaled, beta], [shifted], self.w.options("AddOptions"), "AddOptions")
        self.w.op("RELU_0_TO_1", [shifted], [self.out(node, shape, nhwc)])

    def binary(self, node: Any, kind: str) -> None:
        x, y = node.input
        if x in self.consts and y in self.consts:
            fn = {"ADD": np.add, "MUL": np.multiply, "SUB": np.subtract, "DIV": np.divide}[kind]
            self.consts[node.output[0]] = fn(self.consts[x], self.consts[y])
            return
        like = x if x in self.t else y
        nhwc = like in self.nhwc
        shape = self.lite_shape(node.output[0]) if nhwc else self.shapes[node.output[0]]
        ins = [self.operand(x, like), self.operand(y, like)]
        name = kind.capitalize()
        self.w.op(kind, ins, [self.out(node, shape, nhwc)], self.w.options(f"{name}Options"), f"{name}Options")

    def op_Add(self, node: Any, a: dict[str, Any]) -> None:
        self.binary(node, "ADD")

    def op_Mul(self, node: Any, a: dict[str, Any]) -> None:
        self.binary(node, "MUL")

    def op_Sub(self, node: Any, a: dict[str, Any]) -> None:
        self.binary(node, "SUB")

    def op_Div(self, node: Any, a: dict[str, Any]) -> None:
        self.binary(node, "DIV")

    def mean(self, node: Any, axes: list[int], keep: bool) -> None:
        src = node.input[0]
        nhwc = src in self.nhwc
        lite_axes = sorted(NCHW_TO_NHWC[ax % 4] for ax in axes) if nhwc else axes
        shape = self.lite_shape(node.output[0]) if nhwc and keep else self.shapes[node.output[0]]
        ax = self.w.const(np.array(lite_axes), f"{node.name}/axes", "int32")
        out = self.out(node, shape, nhwc and keep)
        self.w.op("MEAN", [self.t[src], ax], [out], self.w.options("ReducerOptions", keepDims=keep), "ReducerOptions")

    def op_GlobalAveragePool(self, node: Any, a: dict[str, Any]) -> None:
        self.mean(node, [2, 3], keep=True)

    def op_ReduceMean(self, node: Any, a: dict[str, Any]) -> None:
        axes = list(a["axes"]) if "axes" in a else [int(v) for v in self.consts[node.input[1]]]
        self.mean(node, axes, keep=bool(a.get("keepdims", 1)))

    def pool(self, node: Any, a: dict[str, Any], kind: str, fill: float) -> None:
        if a.get("ceil_mode", 0) or any(d != 1 for d in a.get("dilations", [1, 1])):
            raise LightnasError(f"LiteRT export: {node.name} pools with ceil_mode or dilation")
        kh, kw = a["kernel_shape"]
        if kind == "AVERAGE_POOL_2D" and any(a.get("pads", [0])) and a.get("count_include_pad", 0):
            raise LightnasError(f"LiteRT export: {node.name} averages over its padding")
        x, padding = self.window(node, a, (kh, kw), fill)
        if kind == "AVERAGE_POOL_2D" and padding == self.schema.Padding.VALID and any(a.get("pads", [0])):
            raise LightnasError(f"LiteRT export: {node.name} pads otherwise than LiteRT's SAME")
        strides = a.get("strides", [1, 1])
        opts = self.w.options(
            "Pool2DOptions", padding=padding, strideH=strides[0], strideW=strides[1], filterHeight=kh, filterWidth=kw
        )
        self.w.op(kind, [x], [self.out(node, self.lite_shape(node.output[0]), nhwc=True)], opts, "Pool2DOptions")

    def op_MaxPool(self, node: Any, a: dict[str, Any]) -> None:
        self.pool(node, a, "MAX_POOL_2D", -3.4e38)

    def op_AveragePool(self, node: Any, a: dict[str, Any]) -> None:
        self.pool(node, a, "AVERAGE_POOL_2D", 0.0)

    def reshape(self, node: Any, shape: list[int]) -> None:
        """``RESHAPE`` to ``shape`` (ONNX layout, batch first and kept free). Between
        a map of 1x1 positions and its channels no transpose is needed; a 4-D
        result is NHWC again."""
        src = node.input[0]
        s = self.shapes[src]
        x = self.t[src] if src in self.nhwc and s[2] == s[3] == 1 else self.to_nchw(src)
        to_map = len(shape) == 4 and shape[2] == shape[3] == 1  # a per-channel map (a gate): NHWC again
        lite = [shape[0], shape[2], shape[3], shape[1]] if to_map else shape
        direct = True
        target = [-1, *(lite if direct else shape)[1:]]
        out = self.w.tensor(lite if direct else shape, f"{node.name}/out") if not direct else None
        opts = self.w.options("ReshapeOptions", newShape=target)
        new_shape = self.w.const(np.array(target), f"{node.name}/shape", "int32")
        if direct:
            self.w.op("RESHAPE", [x, new_shape], [self.out(node, lite, nhwc=to_map)], opts, "ReshapeOptions")
            return
        self.w.op("RESHAPE", [x, new_shape], [out], opts, "ReshapeOptions")
        perm = self.w.const(np.array([0, 2, 3, 1]), f"{node.name}/perm", "int32")
        opts = self.w.options("TransposeOptions")
        self.w.op("TRANSPOSE", [out, perm], [self.out(node, lite, nhwc=True)], opts, "TransposeOptions")

    def op_Flatten(self, node: Any, a: dict[str, Any]) -> None:
        if a.get("axis", 1) != 1:
            raise LightnasError(f"LiteRT export: {node.name} flattens from another axis than 1")
        s = self.shapes[node.input[0]]
        self.reshape(node, [s[0], int(np.prod(s[1:]))])

    def op_Reshape(self, node: Any, a: dict[str, Any]) -> None:
        s, target = self.shapes[node.input[0]], [int(v) for v in self.consts[node.input[1]]]
        target = [s[i] if v == 0 else v for i, v in enumerate(target)]
        if -1 in target:
            known = int(np.prod([v for v in target if v != -1]))
            target[target.index(-1)] = int(np.prod(s)) // known
        self.reshape(node, target)

    def op_Gemm(self, node: Any, a: dict[str, Any]) -> None:
        if a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0 or a.get("transA", 0):
            raise LightnasError(f"LiteRT export: {node.name} is a Gemm other than a linear layer")
        weight = self.consts[node.input[1]]
        weight = weight if a.get("transB", 0) else weight.T
        self.fully_connected(node, weight, self.consts[node.input[2]] if len(node.input) > 2 else None)

    def op_MatMul(self, node: Any, a: dict[str, Any]) -> None:
        x, y = node.input
        if y in self.consts and self.consts[y].ndim == 2:  # features times a weight matrix
            return self.fully_connected(node, self.consts[y].T, None)
        if x in self.consts or y in self.consts:
            raise LightnasError(f"LiteRT export: {node.name} multiplies by a constant of other than 2 dimensions")
        opts = self.w.options("BatchMatMulOptions", adjX=False, adjY=False)
        ins = [self.to_nchw(x), self.to_nchw(y)]
        out = self.out(node, self.shapes[node.output[0]], nhwc=False)
        self.w.op("BATCH_MATMUL", ins, [out], opts, "BatchMatMulOptions")

    def fully_connected(self, node: Any, weight: np.ndarray, bias: np.ndarray | None) -> None:
        src = node.input[0]
        ins = [self.to_nchw(src), self.w.const(weight.astype(np.float32), f"{node.name}/weight")]
        if bias is not None:
            ins.append(self.w.const(bias.astype(np.float32), f"{node.name}/bias"))
        opts = self.w.options("FullyConnectedOptions", keepNumDims=len(self.shapes[src]) > 2)
        out = self.out(node, self.shapes[node.output[0]], nhwc=False)
        self.w.op("FULLY_CONNECTED", ins, [out], opts, "FullyConnectedOptions")

    def op_Concat(self, node: Any, a: dict[str, Any]) -> None:
        nhwc = all(i in self.nhwc for i in node.input)
        if not nhwc:
            for i in node.input:
                self.to_nchw(i)
        axis = NCHW_TO_NHWC[a["axis"] % 4] if nhwc else a["axis"]
        shape = self.lite_shape(node.output[0]) if nhwc else self.shapes[node.output[0]]
        opts = self.w.options("ConcatenationOptions", axis=axis)
        out = self.out(node, shape, nhwc)
        self.w.op("CONCATENATION", [self.t[i] for i in node.input], [out], opts, "ConcatenationOptions")

    def op_Softmax(self, node: Any, a: dict[str, Any]) -> None:
        src = node.input[0]
        if src in self.nhwc or a.get("axis", -1) not in (-1, len(self.shapes[src]) - 1):
            raise LightnasError(f"LiteRT export: {node.name} is a softmax over another axis than the last")
        out = self.out(node, self.shapes[node.output[0]], nhwc=False)
        self.w.op("SOFTMAX", [self.t[src]], [out], self.w.options("SoftmaxOptions", beta=1.0), "SoftmaxOptions")

    def op_Transpose(self, node: Any, a: dict[str, Any]) -> None:
        src = node.input[0]
        perm = list(a.get("perm", reversed(range(len(self.shapes[src])))))
        p = self.w.const(np.array(perm), f"{node.name}/perm", "int32")
        out = self.out(node, self.shapes[node.output[0]], nhwc=False)
        self.w.op("TRANSPOSE", [self.to_nchw(src), p], [out], self.w.options("TransposeOptions"), "TransposeOptions")

    def op_Squeeze(self, node: Any, a: dict[str, Any]) -> None:
        self.reshape(node, self.shapes[node.output[0]])

    op_Unsqueeze = op_Squeeze

    def op_Split(self, node: Any, a: dict[str, Any]) -> None:
        src = node.input[0]
        shape = self.shapes[src]
        axis = a.get("axis", 0) % len(shape)
        sizes = [int(v) for v in self.consts[node.input[1]]] if len(node.input) > 1 and node.input[1] else None
        sizes = sizes or list(a.get("split", [shape[axis] // len(node.output)] * len(node.output)))
        ins = [self.to_nchw(src), self.w.const(np.array(sizes), f"{node.name}/sizes", "int32")]
        ins.append(self.w.const(np.array(axis), f"{node.name}/axis", "int32"))
        outs = []
        for name in node.output:
            outs.append(self.w.tensor(self.shapes[name], name))
            self.t[name] = outs[-1]
        opts = self.w.options("SplitVOptions", numSplits=len(sizes))
        self.w.op("SPLIT_V", ins, outs, opts, "SplitVOptions")

    def op_LayerNormalization(self, node: Any, a: dict[str, Any]) -> None:
        """(x - mean) / sqrt(var + eps) * scale + bias over the last axis, in LiteRT's elementwise operators."""
        src, scale, bias = node.input[:3]
        shape = self.shapes[src]
        if a.get("axis", -1) % len(shape) != len(shape) - 1:
            raise LightnasError(f"LiteRT export: {node.name} normalises over other than the last axis")
        x = self.to_nchw(src)
        t = lambda tag, s=shape: self.w.tensor(s, f"{node.name}/{tag}")  # noqa: E731
        axes = self.w.const(np.array([len(shape) - 1]), f"{node.name}/axes", "int32")
        reduced = [*shape[:-1], 1]
        mean, centred, square, var, shifted, inv, normal, scaled = (
            t("mean", reduced), t("centred"), t("square"), t("var", reduced), t("shifted", reduced),
            t("inv", reduced), t("normal"), t("scaled"),
        )  # fmt: skip
        eps = self.w.const(np.array(a.get("epsilon", 1e-5), np.float32), f"{node.name}/eps")
        keep = self.w.options("ReducerOptions", keepDims=True)
        self.w.op("MEAN", [x, axes], [mean], keep, "ReducerOptions")
        self.w.op("SUB", [x, mean], [centred], self.w.options("SubOptions"), "SubOptions")
        self.w.op("MUL", [centred, centred], [square], self.w.options("MulOptions"), "MulOptions")
        self.w.op("MEAN", [square, axes], [var], self.w.options("ReducerOptions", keepDims=True), "ReducerOptions")
        self.w.op("ADD", [var, eps], [shifted], self.w.options("AddOptions"), "AddOptions")
        self.w.op("RSQRT", [shifted], [inv])
        self.w.op("MUL", [centred, inv], [normal], self.w.options("MulOptions"), "MulOptions")
        self.w.op("MUL", [normal, self.operand(scale, src)], [scaled], self.w.options("MulOptions"), "MulOptions")
        out = self.out(node, shape, nhwc=False)
        self.w.op("ADD", [scaled, self.operand(bias, src)], [out], self.w.options("AddOptions"), "AddOptions")


def onnx_to_tflite(onnx_bytes: bytes) -> bytes:
    """The ``.tflite`` flatbuffer computing the float32 ONNX graph ``onnx_bytes``
    (one input ``(N, C, H, W)`` taken as ``(N, H, W, C)``); see the module docstring."""
    return Converter(onnx_bytes).convert()
