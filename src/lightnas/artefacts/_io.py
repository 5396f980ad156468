"""Helpers of the artefact types: compact dictionaries, format checks, strict reads."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, TypeVar

from lightnas.errors import LightnasError

A = TypeVar("A")


def check_format(d: object, expected: str, where: str) -> None:
    found = d.get("format", expected) if isinstance(d, dict) else expected
    if found != expected:
        raise LightnasError(f"{where} is of format {found!r}; this lightnas reads {expected!r}")


def compact(obj: object) -> Any:
    """:func:`~lightnas.strict.plain`, leaving out the fields of dataclasses that hold their empty default."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {}
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            optional = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
            empty = v is None or v is False or (isinstance(v, list | dict) and not v)
            if optional and empty and f.name != "format":
                continue
            out[f.name] = compact(v)
        return out
    if isinstance(obj, dict):
        return {k: compact(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [compact(v) for v in obj]
    return obj


def read_as(cls: type[A], path: Path) -> A:
    try:
        return cls.from_dict(json.loads(path.read_text()), str(path))  # type: ignore[attr-defined]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LightnasError(f"cannot read {path}: {exc}") from None
