"""The strategy contract and registry (torch-free).

A strategy proposes architectures (``ask``) and learns their metrics
(``tell``). Contract, checked by ``tests/search/test_conformance.py`` for
every registered strategy:

- ``ask(n)`` returns an :class:`Asked`: between 1 and ``n`` architectures,
  all distinct, none already told or still pending (state ``candidates``);
  or none, with state ``wait`` (nothing worth proposing before a pending
  evaluation is told: asynchronous runners collect one and ask again) or
  ``exhausted`` (nothing left to propose). A strategy's ``_ask`` returns
  what it would choose; when that is nothing new, ``ask`` waits while
  evaluations are pending and otherwise substitutes uniform samples (the
  strategy can learn nothing more by waiting), so no strategy ever stalls
  and none substitutes random samples for results it is waiting for.
- ``tell(archs, metrics)`` takes every asked architecture exactly once, with
  its metric dictionary (which may hold only the cheap metrics of an
  architecture a constraint rejected before evaluation).
- the strategy owns a ``numpy.random.Generator`` seeded from ``seed``: the
  same seed and the same told metrics give the same sequence of asks.
- its settings are one frozen dataclass, the class's ``Options`` (default:
  none), given as ``options``; :func:`create_strategy` builds it strictly from
  the user's ``--search-option NAME=VALUE`` pairs (:mod:`lightnas.strict`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from lightnas.errors import LightnasError
from lightnas.objectives import Constraint, Objective, feasible
from lightnas.registry import Registry
from lightnas.space import Arch, SearchSpace
from lightnas.strict import build

STRATEGIES: Registry[type[Strategy]] = Registry(
    "strategy",
    builtins=tuple(
        f"lightnas.search.{m}" for m in ("guided", "random_search", "evolution", "linas", "pymoo_strategies")
    ),
    group="lightnas.strategies",
)


CANDIDATES, WAIT, EXHAUSTED = "candidates", "wait", "exhausted"


class Asked(tuple):
    """What :meth:`Strategy.ask` returns: a tuple of architectures and its
    ``state``, one of ``candidates``, ``wait`` or ``exhausted``."""

    state: str

    def __new__(cls, archs: Sequence[Arch] = (), state: str = CANDIDATES) -> Asked:
        self = super().__new__(cls, archs)
        self.state = state
        return self


def register_strategy(name: str) -> Callable[[type[Strategy]], type[Strategy]]:
    """Class decorator that makes a strategy available by ``name``."""

    def deco(cls: type[Strategy]) -> type[Strategy]:
        cls.name = name
        return STRATEGIES.add(name, cls)

    return deco


def list_strategies() -> list[str]:
    return STRATEGIES.names()


def create_strategy(
    name: str,
    space: SearchSpace,
    objectives: Sequence[Objective],
    constraints: Sequence[Constraint] = (),
    seed: int = 0,
    **options: object,
) -> Strategy:
    """The front door: build a registered strategy by name; ``options`` are
    the fields of its ``Options`` (a one-line error names an unknown or
    malformed one)."""
    cls = STRATEGIES.get(name)
    return cls(space, objectives, constraints, seed, build(cls.Options, options, f"options of strategy {name!r}"))


@dataclass(frozen=True)
class NoOptions:
    """The options of a strategy that has none."""


class Strategy(ABC):
    """Base class: bookkeeping of told and pending architectures."""

    name: str = "base"
    Options: ClassVar[type] = NoOptions

    def __init__(
        self,
        space: SearchSpace,
        objectives: Sequence[Objective],
        constraints: Sequence[Constraint] = (),
        seed: int = 0,
        options: object | None = None,
    ):
        if not objectives:
            raise LightnasError("a search needs at least one objective")
        if options is not None and not isinstance(options, self.Options):
            raise LightnasError(f"strategy {self.name!r} takes {self.Options.__name__}, not {type(options).__name__}")
        self.options = options if options is not None else self.Options()
        self.space = space
        self.objectives = tuple(objectives)
        self.constraints = tuple(constraints)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.archs: list[Arch] = []  # told, in order
        self.metrics: list[dict[str, float]] = []
        self._told: set[Arch] = set()
        self._pending: set[Arch] = set()
        self.known: Callable[[Arch], Mapping[str, float]] | None = None
        self.fronts: list[tuple[int, ...]] = [tuple(range(len(self.objectives)))]

    def use_known_metrics(self, fn: Callable[[Arch], Mapping[str, float]]) -> None:
        """Give the strategy the evaluator's ``known_metrics`` (metrics known
        in microseconds for any architecture, such as table latency); the
        runner calls it. Strategies may use them instead of predictions."""
        self.known = fn

    def search_fronts(self, groups: Sequence[Sequence[int]]) -> None:
        """Search several fronts at once: each group of objective indices
        (e.g. accuracy with the latency of one device) is a front of its
        own, and a candidate is worth what it adds to all of them. The
        default is one front of every objective; strategies that do not
        support groups search every objective jointly."""
        m = len(self.objectives)
        if not groups or any(len(set(g)) < 2 or not all(0 <= i < m for i in g) for g in groups):
            raise LightnasError(f"fronts must be groups of at least 2 of the {m} objectives' indices")
        self.fronts = [tuple(g) for g in groups]

    # -- the contract ---------------------------------------------------------
    def ask(self, n: int) -> Asked:
        if n < 1:
            raise ValueError("ask(n) needs n >= 1")
        out: list[Arch] = []
        for a in self._ask(n):
            if len(out) == n:
                break
            if self.is_new(a) and a not in out:
                out.append(a)
        if not out:
            if self._pending:
                return Asked((), WAIT)
            out = self.random_new(n)
            if not out:
                return Asked((), EXHAUSTED)
        self._pending.update(out)
        return Asked(out)

    @property
    def pending(self) -> list[Arch]:
        """Architectures asked and not yet told, in a fixed order (by key)."""
        return sorted(self._pending, key=lambda a: a.key)

    def tell(self, archs: Sequence[Arch], metrics: Sequence[Mapping[str, float]]) -> None:
        if len(archs) != len(metrics):
            raise ValueError("tell() needs one metric dictionary per architecture")
        for a, m in zip(archs, metrics, strict=True):
            if a in self._told:
                raise ValueError(f"{a.key} was already told")
            self._pending.discard(a)
            self._told.add(a)
            self.archs.append(a)
            self.metrics.append(dict(m))
        self._tell(list(archs), [dict(m) for m in metrics])

    @abstractmethod
    def _ask(self, n: int) -> list[Arch]:
        """Propose up to ``n`` architectures; duplicates are filtered by
        ``ask``. Return nothing rather than random samples when nothing is
        worth proposing (``ask`` decides between waiting and sampling)."""

    def _tell(self, archs: list[Arch], metrics: list[dict[str, float]]) -> None:  # noqa: B027
        """Hook for subclasses; the base class has already recorded the data."""

    # -- helpers ----------------------------------------------------------------
    def is_new(self, arch: Arch) -> bool:
        return arch not in self._told and arch not in self._pending

    def random_new(self, n: int, max_tries: int = 1000) -> list[Arch]:
        """Up to ``n`` new uniform samples (bounded tries, then enumeration of
        small spaces); empty only when the space is exhausted."""
        out: list[Arch] = []
        for _ in range(max_tries):
            if len(out) == n:
                return out
            a = self.space.sample(self.rng)
            if self.is_new(a) and a not in out:
                out.append(a)
        codes = self.space.enumerate_codes(limit=200_000)
        if codes is not None:
            for i in self.rng.permutation(len(codes)):
                if len(out) == n:
                    break
                a = self.space.decode(codes[i])
                if self.is_new(a) and a not in out:
                    out.append(a)
        return out

    def is_feasible(self, metrics: Mapping[str, float]) -> bool:
        return feasible(metrics, self.constraints) and all(o.metric in metrics for o in self.objectives)

    def feasible_data(self) -> tuple[list[Arch], np.ndarray]:
        """Told feasible architectures and their (n, m) minimisation objectives."""
        idx = [i for i, m in enumerate(self.metrics) if self.is_feasible(m)]
        F = np.array(
            [[o.as_min(self.metrics[i][o.metric]) for o in self.objectives] for i in idx], dtype=float
        ).reshape(len(idx), len(self.objectives))
        return [self.archs[i] for i in idx], F
