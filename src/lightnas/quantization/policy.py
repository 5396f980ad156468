"""Precision policies as ordinary search dimensions (torch-free).

A super-network names its precision groups (``Supernet.precision_groups``:
stages of a CNN, blocks of a Transformer); :func:`precision_space` adds one
``q_<group>`` dimension with the values :data:`PRECISIONS` per group to its
space, with the group's own condition, so strategies, the store, resume and
constraints see nothing but more dimensions. Inactive groups hold ``fp32``
(the first value), as every inactive dimension holds its first value.
"""

from __future__ import annotations

from collections.abc import Mapping

from lightnas.config import PRECISIONS, check_precision  # noqa: F401 - re-exported
from lightnas.errors import LightnasError
from lightnas.space import Choice, SearchSpace, Value

PREFIX = "q_"
"""Name prefix of the precision dimensions: ``q_s1`` is the precision of group ``s1``."""


def precision_space(space: SearchSpace, groups: Mapping[str, tuple[str, Value] | None]) -> SearchSpace:
    """``space`` plus a ``q_<group>`` dimension per group (values :data:`PRECISIONS`,
    active under the group's condition)."""
    clash = [d.name for d in space.dims if d.name.startswith(PREFIX)]
    if clash:
        raise LightnasError(f"the space already has dimensions named {PREFIX}*: {clash}")
    if not groups:
        raise LightnasError("the super-network names no precision groups")
    dims = [Choice(PREFIX + g, PRECISIONS, active_if=cond) for g, cond in groups.items()]
    return SearchSpace((*space.dims, *dims), name=f"{space.name}+precision")


def split_policy(arch: Mapping[str, Value]) -> tuple[dict[str, Value], dict[str, str]]:
    """An arch of a :func:`precision_space` -> (the architecture's own values, group -> precision)."""
    base = {k: v for k, v in arch.items() if not k.startswith(PREFIX)}
    policy = {k[len(PREFIX) :]: str(v) for k, v in arch.items() if k.startswith(PREFIX)}
    return base, policy
