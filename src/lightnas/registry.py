"""One registry pattern for every plug-in kind (torch-free).

A :class:`Registry` maps names to implementations (classes or functions) of
one kind: super-networks, strategies, predictors, training recipes, latency
backends, datasets. It imports no implementation itself:

- built-in implementations live in modules named by ``builtins`` (dotted
  paths), imported the first time a name is looked up, and register
  themselves with the ``@registry.register(name)`` decorator;
- other packages add implementations through the entry-point group
  ``group`` (for example ``lightnas.supernets``): an entry point either names
  a module that registers with the decorator on import, or an object that is
  registered under the entry point's name.

So ``lightnas.supernets`` can list the registered super-networks without
importing torch until one is built, and adding a plug-in needs no edit of
lightnas's source.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from lightnas.errors import LightnasError

T = TypeVar("T")


class Registry(Generic[T]):
    """Names -> implementations of one ``kind`` (used in error messages)."""

    def __init__(self, kind: str, builtins: Iterable[str] = (), group: str | None = None):
        self.kind = kind
        self.builtins = tuple(builtins)
        self.group = group
        self._items: dict[str, T] = {}
        self._loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: make ``obj`` available as ``name`` (sets ``obj.registry_name``
        where the object allows it). A name already taken by another object is
        an error naming both: a plug-in never silently replaces a built-in."""

        def deco(obj: T) -> T:
            if not name or any(c.isspace() for c in name):
                raise LightnasError(f"invalid {self.kind} name {name!r}")
            held = self._items.get(name)
            if held is not None and held is not obj and _qualname(held) != _qualname(obj):
                raise LightnasError(f"{self.kind} {name!r} is registered twice: {_qualname(held)} and {_qualname(obj)}")
            self._items[name] = obj
            with contextlib.suppress(AttributeError, TypeError):
                obj.registry_name = name  # type: ignore[attr-defined]
            return obj

        return deco

    def add(self, name: str, obj: T) -> T:
        """Register ``obj`` as ``name`` without a decorator."""
        return self.register(name)(obj)

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for module in self.builtins:
            importlib.import_module(module)
        if self.group is None:
            return
        for ep in entry_points(group=self.group):
            try:
                obj = ep.load()
            except Exception as exc:  # noqa: BLE001 - a broken plug-in must not break lightnas
                raise LightnasError(f"cannot load {self.kind} plug-in {ep.name!r} ({ep.value}): {exc}") from None
            if ep.name not in self._items and not isinstance(obj, type(importlib)):
                self.add(ep.name, obj)

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        self._load()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._items

    def get(self, name: str) -> T:
        """The implementation registered as ``name``; a one-line error naming
        the choices otherwise."""
        self._load()
        if name not in self._items:
            raise LightnasError(f"unknown {self.kind} {name!r} (choose from {', '.join(self.names())})")
        return self._items[name]

    def summary(self, name: str) -> str:
        """The first line of the implementation's docstring."""
        doc = getattr(self.get(name), "__doc__", None) or ""
        return doc.strip().splitlines()[0] if doc.strip() else ""

    def check(self, name: str) -> str:
        """``name`` when registered, else the one-line error of :meth:`get`."""
        self.get(name)
        return name

    def items(self) -> list[tuple[str, Any]]:
        self._load()
        return sorted(self._items.items())


def _qualname(obj: Any) -> str:
    """``module.Name`` of a registered object (the same after a module is imported again)."""
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__name__)}"
