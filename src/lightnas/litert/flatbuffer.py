"""The ``.tflite`` flatbuffer written with LiteRT's own schema (``ai_edge_litert.schema_py_generated``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from lightnas.errors import LightnasError

INSTALL = "LiteRT needs its runtime: pip install 'lightnas[litert]' (ai-edge-litert)"


def litert() -> Any:
    """``ai_edge_litert``'s schema and interpreter modules, or a one-line error naming the extra."""
    try:
        from ai_edge_litert import interpreter, schema_py_generated
    except ImportError:
        raise LightnasError(INSTALL) from None
    return schema_py_generated, interpreter


class Writer:
    """The tensors, buffers, operator codes and operators of one subgraph."""

    def __init__(self, schema: Any):
        self.s = schema
        self.tensors: list[Any] = []
        self.buffers: list[Any] = [schema.BufferT()]  # buffer 0: the empty buffer of every activation
        self.codes: dict[int, int] = {}
        self.ops: list[Any] = []
        self.producer: dict[int, Any] = {}  # tensor -> the operator writing it

    def tensor(self, shape: list[int], name: str, data: np.ndarray | None = None, dtype: str = "float32") -> int:
        t = self.s.TensorT()
        t.shape = [int(v) for v in shape]
        t.name = name
        t.type = {"float32": self.s.TensorType.FLOAT32, "int32": self.s.TensorType.INT32}[dtype]
        t.buffer = 0
        if data is not None:
            b = self.s.BufferT()
            # a uint8 array (not bytes): the schema's Pack writes an array in one copy, bytes one by one
            b.data = np.frombuffer(np.ascontiguousarray(data.astype(dtype)).tobytes(), np.uint8)
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
        self.tensors.append(t)
        return len(self.tensors) - 1

    def const(self, data: np.ndarray, name: str, dtype: str = "float32") -> int:
        data = np.asarray(data)
        return self.tensor(list(data.shape), name, data, dtype)

    def op(self, kind: str, inputs: list[int], outputs: list[int], options: Any = None, options_type: str = "") -> Any:
        code = getattr(self.s.BuiltinOperator, kind)
        if code not in self.codes:
            self.codes[code] = len(self.codes)
        o = self.s.OperatorT()
        o.opcodeIndex = self.codes[code]
        o.inputs, o.outputs = list(inputs), list(outputs)
        if options is not None:
            o.builtinOptionsType = getattr(self.s.BuiltinOptions, options_type)
            o.builtinOptions = options
        o.kind = kind  # read back by activation fusion; not serialised
        self.ops.append(o)
        for t in outputs:
            self.producer[t] = o
        return o

    def options(self, name: str, **fields: Any) -> Any:
        opt = getattr(self.s, f"{name}T")()
        for k, v in fields.items():
            setattr(opt, k, v)
        return opt

    def finish(self, inputs: list[int], outputs: list[int], description: str) -> bytes:
        import flatbuffers

        sub = self.s.SubGraphT()
        sub.tensors, sub.inputs, sub.outputs, sub.name = self.tensors, inputs, outputs, "main"
        for o in self.ops:
            del o.kind
        sub.operators = self.ops
        model = self.s.ModelT()
        model.version = 3
        model.description = description
        model.subgraphs = [sub]
        model.buffers = self.buffers
        codes = []
        for code in sorted(self.codes, key=self.codes.get):
            c = self.s.OperatorCodeT()
            c.builtinCode, c.deprecatedBuiltinCode, c.version = code, min(code, 127), 1
            codes.append(c)
        model.operatorCodes = codes
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())


def same_pads(size: int, k: int, stride: int, dilation: int) -> tuple[int, int]:
    """LiteRT's ``SAME`` padding (before, after) of one axis."""
    extent = (k - 1) * dilation + 1
    total = max((-(-size // stride) - 1) * stride + extent - size, 0)
    return total // 2, total - total // 2
