"""Which dimensions of a traced model can be made elastic, and which cannot (and why).

Channels. Every convolution or linear layer opens a *channel space* (its
output channels); layers that act channel by channel (BatchNorm, activations,
pooling, a depthwise convolution) pass their input's space on; an addition or
a multiplication of two tensors *ties* the spaces of its operands (the
residual stream of a stage is one space, and so is a squeeze-excitation
gate with the features it scales); a concatenation along the channels lays
its inputs' spaces side by side, and a flatten repeats each channel over the
spatial positions. So a tensor's channel axis is a :data:`Layout`: runs of
leading channels of spaces. Every space whose channels can be cut to a prefix
without changing any shape the model's code fixes is elastic; the image's
channels, the logits and the channels of anything the analysis cannot follow
stay fixed, each said in one line naming the module.

Depth. An addition ``x + f(x)`` whose branch ``f`` reads only ``x`` and is
read only by the addition, with equal shapes on both sides, can be dropped
(the sum becomes ``x``, as in stochastic depth). The skippable blocks on one
residual stream form a stage; its depth keeps the first ones.

Kernels. A depthwise convolution with an odd square kernel of 5 or more,
stride any, "same" padding and no dilation can use the centre crops of its
kernel (3, 5, ...).
"""

from __future__ import annotations

import operator
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from lightnas.elastic.structure import Block, Layout, Spaces, Structure

_UNARY_MODULES = (
    nn.ReLU,
    nn.ReLU6,
    nn.SiLU,
    nn.GELU,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Sigmoid,
    nn.Tanh,
    nn.LeakyReLU,
    nn.ELU,
    nn.Mish,
    nn.Dropout,
    nn.Dropout2d,
    nn.Identity,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
)
_UNARY_FUNCTIONS = {
    F.relu,
    F.relu6,
    F.silu,
    F.gelu,
    F.hardswish,
    F.hardsigmoid,
    F.leaky_relu,
    F.elu,
    F.mish,
    F.dropout,
    F.max_pool2d,
    F.avg_pool2d,
    F.adaptive_avg_pool2d,
    F.adaptive_max_pool2d,
    torch.relu,
    torch.sigmoid,
    torch.tanh,
    torch.clamp,
}
_UNARY_METHODS = {"relu", "relu_", "sigmoid", "tanh", "clamp", "clamp_", "contiguous", "clone", "float"}
_BINARY_FUNCTIONS = {
    operator.add,
    operator.iadd,
    operator.mul,
    operator.imul,
    operator.sub,
    operator.truediv,
    torch.add,
    torch.mul,
    torch.sub,
}
_BINARY_METHODS = {"add", "add_", "mul", "mul_", "sub", "div"}
_ADDITIONS = {operator.add, operator.iadd, torch.add, "add", "add_"}
_REDUCTIONS = {torch.mean, torch.sum, torch.amax, "mean", "sum", "amax"}
_RESHAPES = {torch.flatten, torch.reshape, "flatten", "view", "reshape"}


def _shape(node: Any) -> tuple[int, ...] | None:
    meta = node.meta.get("tensor_meta") if isinstance(node, fx.Node) else None
    return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None


class _Analysis:
    def __init__(self, gm: fx.GraphModule, opaque: dict[str, str]):
        self.gm, self.opaque = gm, opaque
        self.modules = dict(gm.named_modules())
        self.spaces = Spaces()
        self.layouts: dict[str, Layout] = {}
        self.calls: dict[str, tuple[Layout, Layout]] = {}  # module -> (input, output) layouts of its first call
        self.notes: dict[str, None] = {}
        for q, why in opaque.items():
            kind = type(self.modules[q]).__name__
            self.notes[f"module {q} ({kind}) cannot be traced ({why}): its channels stay fixed"] = None

    def run(self) -> None:
        for node in self.gm.graph.nodes:
            out = self.visit(node)
            if out is not None:
                self.layouts[node.name] = out

    def layout(self, arg: Any) -> Layout | None:
        return self.layouts.get(arg.name) if isinstance(arg, fx.Node) else None

    def tensor_args(self, node: fx.Node) -> list[fx.Node]:
        return [a for a in node.all_input_nodes if a.name in self.layouts]

    def constants(self, node: fx.Node) -> list[fx.Node]:
        """Tensor inputs of ``node`` with more than one element and no channel layout (parameters, buffers)."""
        return [
            a
            for a in node.all_input_nodes
            if a.name not in self.layouts and _shape(a) is not None and torch.Size(_shape(a)).numel() > 1
        ]

    def fixed(self, node: fx.Node, reason: str, note: bool = True) -> Layout | None:
        """The inputs' channels fixed (said in one note); the output a fixed space of its own."""
        for a in self.tensor_args(node):
            self.spaces.fix(self.layouts[a.name], reason)
        if note:
            self.notes[f"{reason}: its channels stay fixed"] = None
        shape = _shape(node)
        if shape is None or len(shape) < 2:
            return None
        return ((self.spaces.new(shape[1], fixed=reason), shape[1], 1),)

    def visit(self, node: fx.Node) -> Layout | None:
        if node.op == "placeholder":
            shape = _shape(node)
            return ((self.spaces.new(shape[1], fixed="the image"), shape[1], 1),) if shape and len(shape) > 1 else None
        if node.op == "output":
            self.spaces.fix(self.layout(node.args[0]), "the model's output")
            return None
        if node.op == "get_attr":
            return None
        meta = node.meta.get("tensor_meta")
        target = node.target if node.op == "call_function" else str(node.target)
        where = f"{_describe(node)}{self.where(node)}"
        if meta is None:  # no tensor comes out: a size, a shape, a number
            if target in ("size", "dim") or target is getattr or not self.tensor_args(node):
                return None
            return self.fixed(node, f"{where} turns a tensor into a value the code reads")
        if not hasattr(meta, "shape"):  # several tensors come out (chunk, split)
            return self.fixed(node, f"{where} splits a tensor")
        if node.op == "call_module":
            return self.visit_module(node, self.modules[str(node.target)])
        first = self.layout(node.args[0]) if node.args else None
        if self.constants(node):
            return self.fixed(node, f"{where} combines the channels with a stored tensor")
        if target in _UNARY_FUNCTIONS or target in _UNARY_METHODS:
            if first is not None and len(self.tensor_args(node)) == 1:
                return first
        elif target in _BINARY_FUNCTIONS or target in _BINARY_METHODS:
            return self.binary(node, where)
        elif target is torch.cat:
            return self.concat(node, where)
        elif target in _RESHAPES and first is not None:
            return self.reshape(node, first, where)
        elif target in _REDUCTIONS and first is not None:
            src = _shape(node.args[0]) or ()
            dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
            dims = [d % len(src) for d in _flat_args([dims]) if isinstance(d, int)] if src else []
            if len(src) >= 3 and dims and not {0, 1} & set(dims):  # over positions only
                return first
        return self.fixed(node, f"{where} is not followed")

    def where(self, node: fx.Node) -> str:
        stack = node.meta.get("nn_module_stack") or {}
        if node.op == "call_module":
            return ""
        if not stack:
            return f" in {type(self.gm).__name__}.forward"
        qualname, cls = list(stack.values())[-1]
        return f" in module {qualname} ({getattr(cls, '__name__', cls)})"

    def visit_module(self, node: fx.Node, m: nn.Module) -> Layout | None:
        name = str(node.target)
        arg = self.layout(node.args[0]) if len(node.args) == 1 and not node.kwargs else None
        if name in self.opaque:
            return self.fixed(node, f"module {name}", note=False)
        if arg is None:
            return self.fixed(node, f"module {name} ({type(m).__name__}) is called with other than one tensor")
        out = self.module_output(node, m, name, arg)
        if out is None or name not in self.calls:
            if out is not None:
                self.calls[name] = (arg, out)
            return out
        first_in, first_out = self.calls[name]  # a layer called twice: both calls slice it alike
        if _same_structure(first_in, arg) and _same_structure(first_out, out):
            for a, b in [*zip(first_in, arg, strict=True), *zip(first_out, out, strict=True)]:
                self.spaces.union(a[0], b[0])
            return out
        self.spaces.fix(first_in + first_out, f"module {name}")
        return self.fixed(node, f"module {name} is called on tensors of different channel layouts")

    def module_output(self, node: fx.Node, m: nn.Module, name: str, arg: Layout) -> Layout | None:
        kind = type(m)
        if kind is nn.Conv2d and m.groups == 1:
            return ((self.spaces.new(m.out_channels, name), m.out_channels, 1),)
        if kind is nn.Conv2d and m.groups == m.in_channels == m.out_channels:
            return arg
        if kind is nn.Conv2d:
            return self.fixed(node, f"module {name} is a grouped convolution ({m.groups} groups)")
        if kind is nn.Linear and len(_shape(node.args[0]) or ()) == 2:
            return ((self.spaces.new(m.out_features, name), m.out_features, 1),)
        if kind in (nn.BatchNorm2d, nn.BatchNorm1d) and len(_shape(node) or ()) in (2, 4):
            return arg
        if kind in _UNARY_MODULES:
            return arg
        if kind is nn.Flatten:
            return self.reshape(node, arg, f"module {name}")
        return self.fixed(node, f"module {name} ({kind.__name__}) is not followed")

    def binary(self, node: fx.Node, where: str) -> Layout | None:
        tensors = self.tensor_args(node)
        if len(tensors) == 1:
            return self.layouts[tensors[0].name]
        shape = _shape(node) or ()
        if len(tensors) == 2 and len(shape) >= 2:
            a, b = tensors
            la, lb = self.layouts[a.name], self.layouts[b.name]
            sa, sb = _shape(a) or (), _shape(b) or ()
            if len(sa) == len(sb) == len(shape):
                if sa[1] == 1 and sb[1] == shape[1]:
                    return lb
                if sb[1] == 1 and sa[1] == shape[1]:
                    return la
                if _same_structure(la, lb):
                    for x, y in zip(la, lb, strict=True):
                        self.spaces.union(x[0], y[0])
                    return la
        return self.fixed(node, f"{where} combines tensors of different channel layouts")

    def concat(self, node: fx.Node, where: str) -> Layout | None:
        tensors = node.args[0] if node.args else node.kwargs.get("tensors", ())
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        shape = _shape(node) or ()
        parts = [self.layout(t) for t in tensors]
        if len(shape) >= 2 and dim in (1, 1 - len(shape)) and parts and all(p is not None for p in parts):
            return tuple(seg for p in parts for seg in p)  # type: ignore[union-attr]
        return self.fixed(node, f"{where} concatenates along another axis than the channels")

    def reshape(self, node: fx.Node, layout: Layout, where: str) -> Layout | None:
        """A flatten from axis 1 (or a view to ``(batch, -1)``) repeats each
        channel over the positions; a view written with a channel count fixes them."""
        src, shape = _shape(node.args[0]) or (), _shape(node) or ()
        if node.op == "call_module":
            m = self.modules[str(node.target)]
            ok = m.start_dim == 1 and m.end_dim == -1
        elif node.target in (torch.flatten, "flatten"):
            start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
            end = node.args[2] if len(node.args) > 2 else node.kwargs.get("end_dim", -1)
            ok = start == 1 and end == -1
        else:  # a view or reshape: the sizes come from the tensor (traced), or are -1 or 1
            sizes = _flat_args(node.args[1:]) + _flat_args(node.kwargs.values())
            ok = not any(isinstance(a, int) and a > 1 for a in sizes)
        if ok and len(src) >= 2 and len(shape) >= 2 and src[0] == shape[0]:
            if len(shape) == 2:
                inner = int(torch.Size(src[2:]).numel())
                return tuple((s, c, i * inner) for s, c, i in layout)
            if shape[:2] == src[:2] and all(v == 1 for v in shape[2:]):
                return layout
        return self.fixed(node, f"{where} reshapes the channels to sizes written in the code")

    # -- depth and kernels -----------------------------------------------------------------
    def blocks(self) -> list[list[Block]]:
        """The skippable residual blocks, grouped by the residual stream they add to."""
        ancestors: dict[str, set[str]] = {}
        for n in self.gm.graph.nodes:
            ancestors[n.name] = set()
            for a in n.all_input_nodes:
                ancestors[n.name] |= ancestors[a.name] | {a.name}
        taken: set[str] = set()
        stages: dict[tuple[int, ...], list[Block]] = {}
        by_name = {n.name: n for n in self.gm.graph.nodes}
        for n in self.gm.graph.nodes:
            target = n.target if n.op == "call_function" else str(n.target)
            tensors = self.tensor_args(n)
            if n.op not in ("call_function", "call_method") or target not in _ADDITIONS or len(tensors) != 2:
                continue
            if not all(_shape(t) == _shape(n) for t in tensors):
                continue
            for skip, other in (tensors, tensors[::-1]):
                branch = (ancestors[other.name] | {other.name}) - ancestors[skip.name] - {skip.name}
                if not branch or branch & taken or not self._private(branch, skip.name, n.name, by_name):
                    continue
                if not any(by_name[b].op == "call_module" for b in branch):
                    continue
                taken |= branch | {n.name}
                key = tuple(self.spaces.find(s) for s, _, _ in self.layouts[skip.name])
                stages.setdefault(key, []).append(Block(n.name, skip.name, frozenset(branch)))
                break
        return list(stages.values())

    @staticmethod
    def _private(branch: set[str], skip: str, add: str, by_name: dict[str, fx.Node]) -> bool:
        """Every node of ``branch`` reads only the branch and ``skip``, and only the branch and ``add`` read it."""
        for name in branch:
            node = by_name[name]
            if any(u.name not in branch and u.name != add for u in node.users):
                return False
            if any(a.name not in branch and a.name != skip for a in node.all_input_nodes):
                return False
        return True

    def kernels(self) -> dict[str, int]:
        out = {}
        for n in self.gm.graph.nodes:
            m = self.modules.get(str(n.target)) if n.op == "call_module" else None
            if type(m) is not nn.Conv2d or not (m.groups == m.in_channels == m.out_channels) or str(n.target) in out:
                continue
            k = m.kernel_size[0]
            if (
                m.kernel_size == (k, k)
                and k >= 5
                and k % 2
                and m.dilation == (1, 1)
                and m.padding == (k // 2, k // 2)
                and m.padding_mode == "zeros"
            ):
                out[str(n.target)] = k
        return out


def analyse(gm: fx.GraphModule, opaque: dict[str, str]) -> Structure:
    """The elastic structure of a traced model (see the module docstring)."""
    a = _Analysis(gm, opaque)
    a.run()
    sp = a.spaces
    layouts = {k: tuple((sp.find(s), c, i) for s, c, i in v) for k, v in a.layouts.items()}
    roots = sorted({s for v in layouts.values() for s, _, _ in v})
    elastic = [s for s in roots if s not in sp.fixed and sp.size[s] >= 2 and sp.producers.get(s)]
    return Structure(
        layouts=layouts,
        space_sizes={s: sp.size[s] for s in roots},
        elastic=elastic,
        producers={s: sp.producers.get(s, []) for s in roots},
        stages=a.blocks(),
        kernels=a.kernels(),
        notes=list(a.notes),
    )


def _same_structure(a: Layout, b: Layout) -> bool:
    return [(c, i) for _, c, i in a] == [(c, i) for _, c, i in b]


def _flat_args(args: Any) -> list[Any]:
    out: list[Any] = []
    for a in args:
        out.extend(_flat_args(a) if isinstance(a, tuple | list) else [a])
    return out


def _describe(node: fx.Node) -> str:
    if node.op == "call_module":
        return f"module {node.target}"
    if node.op == "call_method":
        return f"x.{node.target}()"
    return f"{getattr(node.target, '__name__', node.target)}()"
