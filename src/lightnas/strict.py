"""Strict reading of dataclasses from JSON-like values (torch-free).

One parser for everything lightnas reads back from a file or a user: the run
configuration, super-network configurations, the checkpoint and the run
folder's artefacts. :func:`build` makes ``cls`` from a mapping: an unknown or
a missing key, or a value that is not of its field's annotated type, is a
:class:`LightnasError` of one line that names ``where``. Annotations it knows:
``bool``, ``int`` (not a bool), ``float`` (any finite number, stored as float),
``str``, ``X | None``, ``tuple[X, ...]``, ``tuple[X, Y]``, ``list[X]``,
``dict[str, X]``, nested dataclasses (a mapping, or an instance) and ``Any`` (taken as it is).
:func:`plain` is the way back: a JSON-able value (tuples become lists).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, TypeVar

from lightnas.errors import LightnasError

T = TypeVar("T")


def build(cls: type[T], d: object, where: str) -> T:
    """An instance of the dataclass ``cls`` from the mapping ``d`` (see the module)."""
    if not isinstance(d, dict):
        raise LightnasError(f"{where}: expected a mapping for {cls.__name__}, found {type(d).__name__}")
    hints = typing.get_type_hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]
    names = {f.name for f in fields}
    unknown = sorted(set(d) - names)
    if unknown:
        raise LightnasError(f"{where}: unknown setting {unknown[0]!r} in {cls.__name__}")
    missing = [
        f.name
        for f in fields
        if f.name not in d and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise LightnasError(f"{where}: {cls.__name__} has no {missing[0]!r}")
    values = {k: convert(hints[k], v, f"{where}: {k}") for k, v in d.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise LightnasError(f"{where}: malformed {cls.__name__}: {exc}") from None


def convert(tp: Any, v: object, where: str) -> Any:
    """``v`` as the annotated type ``tp``; a one-line error naming ``where`` otherwise."""
    origin = typing.get_origin(tp)
    args = [a for a in typing.get_args(tp) if a is not Ellipsis]
    if tp is Any or tp is object:
        return v
    if dataclasses.is_dataclass(tp):
        return v if isinstance(v, tp) else build(tp, v, where)  # type: ignore[arg-type]
    if origin in (typing.Union, types.UnionType):
        if v is None and type(None) in args:
            return None
        kinds = [a for a in args if a is not type(None)]
        if len(kinds) == 1:
            return convert(kinds[0], v, where)
        for kind in kinds:  # the first that fits
            try:
                return convert(kind, v, where)
            except LightnasError:
                continue
        raise LightnasError(f"{where} must be one of {' or '.join(_name(k) for k in kinds)}, not {v!r}")
    if origin in (tuple, list):
        if not isinstance(v, list | tuple):
            raise LightnasError(f"{where} must be a list, not {v!r}")
        if origin is tuple and len(args) > 1 and Ellipsis not in typing.get_args(tp):
            if len(v) != len(args):
                raise LightnasError(f"{where} must have {len(args)} items, not {len(v)}")
            return tuple(convert(a, x, where) for a, x in zip(args, v, strict=True))
        items = [convert(args[0], x, where) for x in v] if args else list(v)
        return tuple(items) if origin is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(v, dict):
            raise LightnasError(f"{where} must be a mapping, not {v!r}")
        value = args[1] if len(args) == 2 else Any
        return {k: convert(value, x, f"{where}.{k}") for k, x in v.items()}
    return _scalar(tp, v, where)


def _scalar(tp: Any, v: object, where: str) -> Any:
    if tp is bool and not isinstance(v, bool):
        raise LightnasError(f"{where} must be true or false, not {v!r}")
    if tp is int and (isinstance(v, bool) or not isinstance(v, int)):
        raise LightnasError(f"{where} must be an integer, not {v!r}")
    if tp is float:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise LightnasError(f"{where} must be a finite number, not {v!r}")
        return float(v)
    if tp is str and not isinstance(v, str):
        raise LightnasError(f"{where} must be a string, not {v!r}")
    return v


def _name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def plain(x: Any) -> Any:
    """A JSON-able copy of ``x``: dataclasses become dicts, tuples lists."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: plain(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if isinstance(x, dict):
        return {k: plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [plain(v) for v in x]
    return x
