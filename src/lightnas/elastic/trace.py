"""A user's trained model as a graph: import its factory, load its weights, trace it.

The model is named ``package.module:factory`` (a callable taking no argument
that returns the :class:`torch.nn.Module`); its weights are a state dict
loaded with ``torch.load(..., weights_only=True)``. Tracing uses
:mod:`torch.fx`: every ``torch.nn`` layer is a leaf, the user's own modules are
traced through, and a module whose ``forward`` the tracer cannot follow
(Python control flow on a tensor, an unsupported call) becomes an opaque leaf,
reported by name, instead of failing the whole model.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from lightnas.errors import LightnasError
from lightnas.tensors import safe_load


def load_factory(spec: str) -> Callable[[], nn.Module]:
    """The callable named by ``package.module:factory`` (the current folder is
    searched too, as ``python -m`` would); one-line errors otherwise."""
    mod_name, sep, attr = spec.partition(":")
    if not sep or not mod_name or not attr:
        raise LightnasError(f"model {spec!r} must be given as package.module:factory")
    cwd = str(Path.cwd())
    added = cwd not in sys.path
    if added:
        sys.path.append(cwd)
    try:
        module = importlib.import_module(mod_name)
    except Exception as exc:  # noqa: BLE001 - any failure to import the user's code is one line
        raise LightnasError(f"cannot import {mod_name!r} for model {spec!r}: {_first_line(exc)}") from None
    finally:
        if added:
            sys.path.remove(cwd)
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise LightnasError(f"{mod_name!r} has no callable {attr!r} (model {spec!r})")
    return factory


def build_model(spec: str) -> nn.Module:
    """``factory()`` of ``spec``, checked to be a module."""
    try:
        model = load_factory(spec)()
    except LightnasError:
        raise
    except Exception as exc:  # noqa: BLE001 - the user's factory failing is one line
        raise LightnasError(f"model factory {spec!r} failed: {_first_line(exc)}") from None
    if not isinstance(model, nn.Module):
        raise LightnasError(f"model factory {spec!r} returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def load_weights(model: nn.Module, path: str | Path, spec: str) -> None:
    """Load the state dict at ``path`` (``weights_only``; a checkpoint that
    nests it under ``state_dict`` or ``model`` works too) into ``model``; a
    one-line error naming the first missing or unexpected key."""
    state: Any = safe_load(Path(path))
    for key in ("state_dict", "model"):
        if isinstance(state.get(key), dict):
            state = state[key]
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise LightnasError(f"{path} is not a state dict of tensors")
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise LightnasError(f"{path} does not fit model {spec!r}: {_first_line(exc)}") from None
    bad = [f"missing {k}" for k in result.missing_keys] + [f"unexpected {k}" for k in result.unexpected_keys]
    if bad:
        raise LightnasError(f"{path} does not fit model {spec!r}: {bad[0]} (and {len(bad) - 1} more)")


class _Tracer(fx.Tracer):
    """``torch.nn`` layers are leaves; a user module the tracer cannot follow
    becomes one too, with the reason kept in :attr:`opaque`."""

    def __init__(self) -> None:
        super().__init__()
        self.opaque: dict[str, str] = {}

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return qualname in self.opaque or super().is_leaf_module(m, qualname)

    def call_module(self, m: nn.Module, forward: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        qualname = self.path_of_module(m)
        depth = len(self.module_stack)
        n_nodes = len(self.graph.nodes)
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception as exc:  # noqa: BLE001 - any failure inside the module makes it a leaf
            if not qualname or qualname in self.opaque:
                raise
            while len(self.module_stack) > depth:  # the failed call's entries
                self.module_stack.popitem(last=True)
            for node in reversed(list(self.graph.nodes)[n_nodes:]):  # what it emitted before failing
                if not node.users:
                    self.graph.erase_node(node)
            self.opaque[qualname] = _first_line(exc)
            return self.create_proxy("call_module", qualname, args, kwargs)


def trace(model: nn.Module, input_shape: tuple[int, int, int], spec: str) -> tuple[fx.GraphModule, dict[str, str]]:
    """``model`` (eval mode) as a :class:`torch.fx.GraphModule` whose nodes
    carry their output shapes (``node.meta["tensor_meta"]``, for a batch of 2),
    and the modules traced as opaque leaves with the reason of each."""
    model.eval()
    tracer = _Tracer()
    try:
        graph = tracer.trace(model)
    except Exception as exc:  # noqa: BLE001 - the top-level forward itself cannot be followed
        raise LightnasError(f"cannot trace model {spec!r}: {_first_line(exc)}") from None
    gm = fx.GraphModule(model, graph, type(model).__name__)
    gm.graph.eliminate_dead_code()
    gm.recompile()
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        raise LightnasError(f"model {spec!r} must take one input tensor, not {len(placeholders)}")
    x = torch.zeros(2, *input_shape)
    try:  # run plainly first: ShapeProp prints a traceback of its own and wraps the error
        with torch.no_grad():
            gm(x)
    except Exception as exc:  # noqa: BLE001 - the model does not run on the data's images
        raise LightnasError(
            f"model {spec!r} does not run on images of shape {tuple(input_shape)}: {_first_line(exc)}"
        ) from None
    with torch.no_grad():
        ShapeProp(gm).propagate(x)
    return gm, dict(tracer.opaque)


def _first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (its class name when it has none)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
