"""Objectives and hard constraints over metric dictionaries (torch-free)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from lightnas.errors import LightnasError


@dataclass(frozen=True)
class Objective:
    """Optimise ``metric`` in ``direction`` ("min" or "max")."""

    metric: str
    direction: str = "min"

    def __post_init__(self) -> None:
        if self.direction not in ("min", "max"):
            raise LightnasError(f"objective direction must be 'min' or 'max', not {self.direction!r}")

    def as_min(self, value: float) -> float:
        """The value in minimisation form (negated for "max")."""
        return value if self.direction == "min" else -value


RUN_OBJECTIVES = (Objective("accuracy", "max"), Objective("latency_ms", "min"))
"""What ``lightnas run`` optimises: the task's metric and the target's latency."""

TABLE_LATENCY = "latency_ms@"
"""Prefix of the latency a device's table prices (``latency_ms@pixel3``)."""


def run_objectives(tables: Sequence[str] = ()) -> list[Objective]:
    """:data:`RUN_OBJECTIVES`, then the latency of each named device table:
    the run searches one front per device, (accuracy, that device's latency)."""
    return [*RUN_OBJECTIVES, *(Objective(TABLE_LATENCY + name, "min") for name in tables)]


def run_fronts(objectives: Sequence[Objective]) -> list[tuple[int, int]]:
    """The fronts of :func:`run_objectives`: accuracy with each latency."""
    return [(0, i) for i in range(1, len(objectives))]


_OPS = {"<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b}


@dataclass(frozen=True)
class Constraint:
    """A hard constraint ``metric op bound`` with op in {"<=", ">="}."""

    metric: str
    op: str
    bound: float

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise LightnasError(f"constraint operator must be '<=' or '>=', not {self.op!r}")
        if not isinstance(self.bound, int | float) or not math.isfinite(self.bound):
            raise LightnasError(f"constraint bound for {self.metric!r} must be a finite number")

    def satisfied(self, metrics: Mapping[str, float]) -> bool:
        """True when the metric is present and meets the bound."""
        value = metrics.get(self.metric)
        return value is not None and bool(_OPS[self.op](value, self.bound))

    def violation(self, metrics: Mapping[str, float]) -> float:
        """Amount by which the bound is exceeded (0 when satisfied, inf when missing)."""
        value = metrics.get(self.metric)
        if value is None:
            return math.inf
        gap = value - self.bound if self.op == "<=" else self.bound - value
        return max(float(gap), 0.0)

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}"


_CONSTRAINT_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*(?:@[A-Za-z0-9_.-]+)?)\s*(<=|>=)\s*([-+0-9.eE]+)\s*$")


def parse_constraint(text: str) -> Constraint:
    """Parse ``"latency_ms<=1.5"``; a one-line error for anything else."""
    m = _CONSTRAINT_RE.match(text)
    if not m:
        raise LightnasError(f"malformed constraint {text!r} (expected e.g. 'latency_ms<=1.5')")
    try:
        bound = float(m.group(3))
    except ValueError:
        raise LightnasError(f"malformed constraint bound in {text!r}") from None
    return Constraint(m.group(1), m.group(2), bound)


def parse_objective(text: str) -> Objective:
    """Parse ``"accuracy:max"`` or ``"latency_ms"`` (min by default)."""
    metric, _, direction = text.partition(":")
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", metric):
        raise LightnasError(f"malformed objective {text!r} (expected e.g. 'accuracy:max')")
    return Objective(metric, direction or "min")


def feasible(metrics: Mapping[str, float], constraints: Sequence[Constraint]) -> bool:
    return all(c.satisfied(metrics) for c in constraints)


def objective_matrix(metrics: Sequence[Mapping[str, float]], objectives: Sequence[Objective]) -> np.ndarray:
    """(n, m) matrix of objective values in minimisation form."""
    return np.array([[o.as_min(float(m[o.metric])) for o in objectives] for m in metrics], dtype=float).reshape(
        len(metrics), len(objectives)
    )
