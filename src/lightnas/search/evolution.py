"""Regularized (aging) evolution (Real et al. 2019), multi-objective.

A queue of the ``pop_size`` most recent evaluations; each child mutates the
winner of a tournament of ``sample_size`` members, the winner being the
member of best non-dominated rank (constraint violators last); the oldest
member leaves when a child arrives.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lightnas.objectives import Constraint, Objective
from lightnas.search.base import Strategy, register_strategy
from lightnas.search.pareto import nondominated_ranks
from lightnas.search.pymoo_strategies import penalised
from lightnas.space import Arch, SearchSpace


@dataclass(frozen=True)
class EvolutionOptions:
    """``pop_size``: the living population; ``sample_size``: the tournament drawn from it per child."""

    pop_size: int = 30
    sample_size: int = 10


@register_strategy("evolution")
class RegularizedEvolution(Strategy):
    """Regularized (aging) evolution (Real et al. 2019), multi-objective by non-dominated rank."""

    Options = EvolutionOptions

    def __init__(
        self,
        space: SearchSpace,
        objectives: Sequence[Objective],
        constraints: Sequence[Constraint] = (),
        seed: int = 0,
        options: EvolutionOptions | None = None,
    ):
        super().__init__(space, objectives, constraints, seed, options)
        self.pop_size = self.options.pop_size
        self.sample_size = self.options.sample_size
        self.population: deque[tuple[Arch, np.ndarray, float]] = deque(maxlen=self.pop_size)

    def _ask(self, n: int) -> list[Arch]:
        missing = self.pop_size - len(self.population) - len(self._pending)
        if missing > 0:
            return self.random_new(min(n, missing))
        if len(self.population) < self.pop_size:
            return []  # the first population is still being evaluated
        out: list[Arch] = []
        for _ in range(20 * n):
            if len(out) == n:
                break
            idx = self.rng.choice(len(self.population), size=min(self.sample_size, len(self.population)), replace=False)
            members = [self.population[i] for i in idx]
            F = np.array([m[1] for m in members])
            viol = np.array([m[2] for m in members])
            ranks = nondominated_ranks(F) + (viol > 0) * (len(F) + 1)
            best = np.flatnonzero(ranks == ranks.min())
            parent = members[int(best[self.rng.integers(len(best))])][0]
            child = self.space.mutate(parent, self.rng)
            if self.is_new(child) and child not in out:
                out.append(child)
        return out

    def _tell(self, archs: list[Arch], metrics: list[dict[str, float]]) -> None:
        for a, m in zip(archs, metrics, strict=True):
            f, g = penalised(m, self.objectives, self.constraints)
            self.population.append((a, np.array(f), float(sum(max(v, 0.0) for v in g))))
