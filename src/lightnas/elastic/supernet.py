"""``elastic``: a user's trained network as a super-network whose largest sub-network it is.

The config names the model (``package.module:factory``) and, for training,
its weights; the super-network traces the model, finds its elastic
dimensions (:mod:`lightnas.elastic.analysis`) and searches them:

- ``g{i}w``: the channel count of channel group ``i`` (the ``widths``
  fractions of its full count, multiples of 8 from 32 channels up);
- ``r{j}d``: how many of the skippable residual blocks of stage ``j`` run
  (the first ones);
- ``n{k}k``: the kernel of depthwise convolution ``k`` (centre crops).

:meth:`ElasticSupernet.dimensions` says which layers each dimension
changes. Fresh from its config the network has the factory's initial
weights; :meth:`ElasticSupernet.init_for_training` loads the user's and
orders every channel group by importance, so that the largest sub-network
computes what the user's model computes and leading slices keep the most
important channels. Sub-networks distil from the user's model itself
(:meth:`ElasticSupernet.distillation_teacher`).

Latency parts are the runs of the graph between the tensors that are alone
alive (block boundaries), each specified by the values of the dimensions it
reads.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
from collections.abc import Hashable
from typing import Any

import torch
from torch import fx, nn

from lightnas.elastic.analysis import analyse
from lightnas.elastic.modules import (
    ELASTIC,
    Selection,
    attribute,
    make_elastic,
    plain_copy,
    replace_attribute,
    selection_of,
)
from lightnas.elastic.reorder import reorder_channels
from lightnas.elastic.structure import Block, Structure
from lightnas.elastic.trace import build_model, load_weights, trace
from lightnas.errors import LightnasError
from lightnas.space import Arch, Choice, SearchSpace
from lightnas.supernets.base import Supernet, SupernetConfig
from lightnas.supernets.registry import register_supernet

_WEIGHT_LAYERS = tuple(ELASTIC.values())[:2]


@dataclasses.dataclass(frozen=True)
class ElasticConfig(SupernetConfig):
    """``model``: ``package.module:factory``; ``weights``: its state dict
    (loaded by :meth:`ElasticSupernet.init_for_training`); ``widths``:
    fractions of each channel group searched; ``depth``, ``kernel``: search
    those too."""

    model: str = ""
    weights: str = ""
    widths: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
    depth: bool = True
    kernel: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.model:
            raise LightnasError("the elastic super-network needs a model: --from-model package.module:factory")
        widths = tuple(sorted({float(w) for w in self.widths}))
        if not widths or widths[0] <= 0 or widths[-1] != 1.0:
            raise LightnasError(f"widths must be fractions in (0, 1] that include 1.0, not {list(self.widths)}")
        object.__setattr__(self, "widths", widths)


def channel_choices(full: int, widths: tuple[float, ...]) -> tuple[int, ...]:
    """The channel counts searched for a group of ``full`` channels."""
    step = 8 if full >= 32 else 1
    return tuple(sorted({max(step, min(full, round(full * w / step) * step)) for w in widths} | {full}))


@register_supernet("elastic")
class ElasticSupernet(Supernet):
    """A traced user model with elastic widths, depths and kernels (module docstring)."""

    config_class = ElasticConfig
    train_defaults: dict[str, object] = {"epochs": 4, "lr": 1e-3}
    """Fine-tuning, not training: half the epochs of a super-network trained from scratch, a quarter of its rate."""
    part_fields = {}
    needs_input = True

    def __init__(self, config: ElasticConfig):
        super().__init__(config)
        gm, opaque = trace(build_model(config.model), config.input_shape, config.model)
        out = gm.graph.find_nodes(op="output")[0].args[0]
        shape = tuple(out.meta["tensor_meta"].shape) if isinstance(out, fx.Node) and "tensor_meta" in out.meta else ()
        if shape != (2, config.n_classes):
            raise LightnasError(
                f"model {config.model!r} returns {shape[1:] or 'no tensor'} per image, not {config.n_classes} logits"
            )
        self.structure: Structure = analyse(gm, opaque)
        for n in gm.graph.nodes:
            if n.op == "call_module" and str(n.target) not in opaque:
                make_elastic(gm.get_submodule(str(n.target)))
        self.model = gm
        self._nodes = {n.name: n for n in gm.graph.nodes}
        self._calls = self._first_calls()
        self.space = SearchSpace(tuple(self._dims()), name="elastic")
        self._segments = self._cut()
        self._patterns: dict[frozenset[str], fx.GraphModule] = {}
        self.set_active(self.space.largest())

    # -- the space ---------------------------------------------------------------------------
    def _first_calls(self) -> dict[str, fx.Node]:
        """Each elastic layer's first call (a layer called twice is sliced alike in both)."""
        calls: dict[str, fx.Node] = {}
        for n in self.model.graph.nodes:
            if n.op == "call_module" and type(self.model.get_submodule(str(n.target))) in ELASTIC.values():
                calls.setdefault(str(n.target), n)
        return calls

    def _dims(self) -> list[Choice]:
        st, cfg = self.structure, self.config
        self.depth_of: dict[str, tuple[str, int]] = {}  # add node -> (depth dimension, block index)
        self.width_of: dict[int, str] = {}
        self.kernel_of: dict[str, str] = {}
        self._about: dict[str, str] = {}
        dims: list[Choice] = []
        inside: dict[str, tuple[str, int]] = {}  # node -> the (depth dimension, depth) it needs
        for j, blocks in enumerate(st.stages if cfg.depth else []):
            name = f"r{j}d"
            dims.append(Choice(name, tuple(range(len(blocks) + 1)), ordinal=True))
            self._about[name] = "residual blocks run of " + ", ".join(self._owner(b.add) or b.add for b in blocks)
            for i, b in enumerate(blocks):
                self.depth_of[b.add] = (name, i)
                inside.update({n: (name, i + 1) for n in b.branch})
        for i, s in enumerate(st.elastic):
            name = f"g{i}w"
            producers = st.producers[s]
            conds = {inside.get(self._calls[p].name) if p in self._calls else None for p in producers}
            cond = conds.pop() if len(conds) == 1 else None
            dims.append(Choice(name, channel_choices(st.space_sizes[s], cfg.widths), cond, ordinal=True))
            self.width_of[s] = name
            self._about[name] = "output channels of " + ", ".join(producers)
        for k, (conv, size) in enumerate(st.kernels.items() if cfg.kernel else []):
            name = f"n{k}k"
            dims.append(Choice(name, tuple(range(3, size + 1, 2)), inside.get(self._calls[conv].name), ordinal=True))
            self.kernel_of[conv] = name
            self._about[name] = f"kernel of depthwise convolution {conv}"
        if not dims:
            raise LightnasError(f"model {cfg.model!r} has no dimension that can be made elastic")
        return dims

    def _owner(self, node: str) -> str:
        """The innermost module of the user's that holds ``node`` (containers
        and the layer a node calls aside; ``""``: the model's own forward)."""
        n = self._nodes[node]
        for path, cls in reversed(list((n.meta.get("nn_module_stack") or {}).values())):
            if path != n.target and cls not in (nn.Sequential, nn.ModuleList, nn.ModuleDict):
                return path
        return ""

    def dimensions(self) -> dict[str, str]:
        """Every dimension -> what it changes, in words."""
        return dict(self._about)

    def elastic_groups(self) -> dict[str, str]:
        kinds = {"d": "depth", "w": "width", "k": "kernel"}
        return {d.name: kinds[d.name[-1]] for d in self.space.dims}

    # -- activation ---------------------------------------------------------------------------
    def _active(self, arch: Arch) -> tuple[dict[int, int], frozenset[str], dict[str, int]]:
        """(channels per space, the skipped additions, the kernel per convolution) of ``arch``."""
        st = self.structure
        channels = {s: int(arch[self.width_of[s]]) if s in self.width_of else n for s, n in st.space_sizes.items()}
        skipped = frozenset(a for a, (d, i) in self.depth_of.items() if int(arch[d]) <= i)
        kernels = {c: int(arch[d]) for c, d in self.kernel_of.items()}
        return channels, skipped, kernels

    def _selections(self, arch: Arch) -> dict[str, tuple[Selection, Selection, int | None]]:
        """Per elastic layer: (input selection, output selection, kernel)."""
        channels, _, kernels = self._active(arch)
        layouts = self.structure.layouts
        out: dict[str, tuple[Selection, Selection, int | None]] = {}
        for name, node in self._calls.items():
            layer = self.model.get_submodule(name)
            in_sel = selection_of(layouts[node.args[0].name], channels)
            out_sel = None
            if isinstance(layer, _WEIGHT_LAYERS) and not getattr(layer, "depthwise", False):
                out_sel = selection_of(layouts[node.name], channels)
            out[name] = (in_sel, out_sel, kernels.get(name))
        return out

    def set_active(self, arch: Arch) -> None:
        arch = self.space.make(dict(arch))
        for name, (in_sel, out_sel, kernel) in self._selections(arch).items():
            layer = self.model.get_submodule(name)
            layer.in_sel, layer.out_sel, layer.kernel = in_sel, out_sel, kernel
        skipped = self._active(arch)[1]
        if skipped not in self._patterns:
            self._patterns[skipped] = self._graph_module(self._graph(skipped))
        object.__setattr__(self, "_forward", self._patterns[skipped])  # shares the layers: not a submodule
        self.active_arch = arch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(x)

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Moving the weights rebuilds the cached graphs (they hold buffers read by name)."""
        self._patterns = {}
        out = super()._apply(fn, *args, **kwargs)
        if hasattr(self, "active_arch"):
            self.set_active(self.active_arch)
        return out

    # -- graphs -----------------------------------------------------------------------------
    def _graph(self, skipped: frozenset[str], segment: int | None = None) -> fx.Graph:
        """The traced graph without the branches of the ``skipped`` additions
        (each becomes its skip input); with ``segment``, that latency part only."""
        dead: set[str] = set()
        alias: dict[str, str] = {}
        for blocks in self.structure.stages:
            for b in blocks:
                if b.add in skipped:
                    dead |= b.branch
                    alias[b.add] = b.skip
        g, env = fx.Graph(), {}
        nodes = list(self.model.graph.nodes)
        if segment is not None:
            start, names = self._segments[segment]
            env[start] = g.placeholder("x")
            nodes = [self._nodes[n] for n in names]

        def arg(a: fx.Node) -> fx.Node:
            if a.name not in env:  # a parameter read in another part
                env[a.name] = g.node_copy(a, arg)
            return env[a.name]

        for node in nodes:
            if node.name in dead:
                continue
            env[node.name] = env[alias[node.name]] if node.name in alias else g.node_copy(node, arg)
        if segment is not None:
            g.output(env[nodes[-1].name])
        return g

    def _graph_module(self, graph: fx.Graph) -> fx.GraphModule:
        return fx.GraphModule(self.model, graph, type(self.model).__name__)

    # -- extraction --------------------------------------------------------------------------
    def _plain(self, arch: Arch, segment: int | None = None) -> fx.GraphModule:
        arch = self.space.make(dict(arch))
        sels = self._selections(arch)
        gm = self._graph_module(self._graph(self._active(arch)[1], segment))
        targets = {str(n.target): n.op for n in gm.graph.nodes if n.op in ("call_module", "get_attr")}
        for name, op in targets.items():
            if op == "call_module":
                layer = self.model.get_submodule(name)
                new = plain_copy(layer, *sels[name]) if name in sels else copy.deepcopy(layer)
            else:  # a parameter or buffer the code reads itself
                new = copy.deepcopy(attribute(self.model, name))
            replace_attribute(gm, name, new)
        return gm.eval()

    def extract(self, arch: Arch) -> nn.Module:
        """A plain copy of ``arch``: the traced graph without its skipped
        branches, every layer cut to its active channels and kernel."""
        return self._plain(arch)

    # -- training ----------------------------------------------------------------------------
    @torch.no_grad()
    def init_for_training(self) -> None:
        """The user's weights (when the config names them), every channel
        group then ordered by importance; the largest sub-network is the user's model."""
        if not self.config.weights:
            return
        load_weights(self.model, self.config.weights, self.config.model)
        reorder_channels(self.model, self.structure, self._calls)
        self.set_active(self.active_arch)

    def distillation_teacher(self) -> nn.Module | None:
        """The user's model with its weights (eval mode, frozen); none without weights."""
        if not self.config.weights:
            return None
        model = build_model(self.config.model)
        load_weights(model, self.config.weights, self.config.model)
        return model.eval().requires_grad_(False)

    # -- latency parts -----------------------------------------------------------------------
    def _cut(self) -> list[tuple[str, list[str]]]:
        """The parts of the full graph: (the tensor that enters, its nodes).

        A part ends at a node whose output is the only value alive and where
        the module that owns the nodes changes, or before a weight layer once
        it holds two."""
        nodes = [n for n in self.model.graph.nodes if n.op not in ("get_attr", "output")]
        pos = {n.name: i for i, n in enumerate(nodes)}
        reach, cuts = -1, []
        for i, n in enumerate(nodes):
            if reach <= i and n.name in self.structure.layouts:
                cuts.append(i)
            reach = max(reach, *(pos.get(u.name, len(nodes)) for u in n.users)) if n.users else reach
        segments: list[tuple[str, list[str]]] = []
        start, weights = nodes[0].name, 0
        current: list[str] = []
        for i, n in enumerate(nodes[1:], start=1):
            is_weight = n.op == "call_module" and isinstance(self.model.get_submodule(str(n.target)), _WEIGHT_LAYERS)
            boundary = current and (i - 1) in cuts
            if boundary and (self._owner(nodes[i - 1].name) != self._owner(n.name) or (is_weight and weights >= 2)):
                segments.append((start, current))
                start, current, weights = nodes[i - 1].name, [], 0
            current.append(n.name)
            weights += is_weight
        segments.append((start, current))
        return segments

    def _reads(self, segment: int) -> list[str]:
        """The dimensions a part may read (whether or not its blocks run)."""
        start, names = self._segments[segment]
        spaces = {s for n in (start, *names) for s, _, _ in self.structure.layouts.get(n, ())}
        dims = {self.width_of[s] for s in spaces if s in self.width_of}
        dims |= {self.depth_of[n][0] for n in names if n in self.depth_of}
        targets = {str(self._nodes[n].target) for n in names}
        dims |= {self.kernel_of[t] for t in targets if t in self.kernel_of}
        return [d.name for d in self.space.dims if d.name in dims]

    def _part(self, segment: int, arch: Arch) -> tuple:
        channels, skipped, kernels = self._active(arch)
        start, names = self._segments[segment]
        dead = {n for blocks in self.structure.stages for b in blocks if b.add in skipped for n in b.branch}
        live = [n for n in names if n not in dead]
        spaces = {s for n in (start, *live) for s, _, _ in self.structure.layouts.get(n, ())}
        spec: list[Any] = ["seg", segment]
        for s in sorted(spaces, key=lambda s: self.width_of.get(s, "")):
            if s in self.width_of:
                spec += [self.width_of[s], channels[s]]
        for n in names:
            if n in self.depth_of:
                spec += [f"{self.depth_of[n][0]}@{self.depth_of[n][1]}", int(n not in skipped)]
            target = str(self._nodes[n].target)
            if n in live and target in self.kernel_of:
                spec += [self.kernel_of[target], kernels[target]]
        return tuple(spec)

    def latency_parts(self, arch: Arch) -> list[Hashable]:
        arch = self.space.make(dict(arch))
        return [self._part(k, arch) for k in range(len(self._segments))]

    def all_latency_parts(self) -> list[Hashable]:
        parts: set[tuple] = set()
        largest = dict(self.space.largest())
        for k in range(len(self._segments)):
            reads = self._reads(k)
            choices = [self.space.dims[self.space._by_name[d]].values for d in reads]
            for values in itertools.product(*choices):
                parts.add(self._part(k, self.space.make({**largest, **dict(zip(reads, values, strict=True))})))
        return sorted(parts, key=str)

    def _arch_of(self, part: tuple) -> Arch:
        values: dict[str, Any] = dict(self.space.largest())
        pairs = dict(zip(part[2::2], part[3::2], strict=True))
        for key, v in pairs.items():
            if "@" in key:
                dim, i = key.split("@")
                values[dim] = int(i) + 1 if v else int(i)
        values.update({k: v for k, v in pairs.items() if "@" not in k})
        return self.space.make(values)

    def build_part(self, part: Hashable) -> tuple[nn.Module, tuple[int, ...]]:
        segment = int(part[1])  # type: ignore[index]
        arch = self._arch_of(part)  # type: ignore[arg-type]
        start = self._segments[segment][0]
        channels = self._active(arch)[0]
        shape = list(self._nodes[start].meta["tensor_meta"].shape[1:])
        shape[0] = sum(channels[s] * inner for s, _, inner in self.structure.layouts[start])
        return self._plain(arch, segment), tuple(shape)


__all__ = ["Block", "ElasticConfig", "ElasticSupernet", "channel_choices"]
