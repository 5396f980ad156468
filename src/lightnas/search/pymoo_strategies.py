"""pymoo's NSGA-II and AGE-MOEA behind the ask/tell contract.

pymoo proposes a whole population at a time; the wrapper hands it out in
pieces, answers proposals that were already evaluated from its own history
(so they never reach the runner again), and tells pymoo once every member
has metrics. Architectures are integer vectors (``SearchSpace.encode``)
varied by SBX crossover and polynomial mutation with rounding repair.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lightnas.objectives import Constraint, Objective
from lightnas.search.base import Strategy, register_strategy
from lightnas.space import Arch, SearchSpace

BIG = 1e12  # objective/violation of an architecture a constraint rejected unevaluated


def penalised(
    metrics: Mapping[str, float], objectives: Sequence[Objective], constraints: Sequence[Constraint]
) -> tuple[list[float], list[float]]:
    """(objective values in minimisation form, signed constraint values g <= 0)."""
    f = [o.as_min(float(metrics[o.metric])) if o.metric in metrics else BIG for o in objectives]
    g = []
    for c in constraints:
        v = metrics.get(c.metric)
        g.append(BIG if v is None else (v - c.bound if c.op == "<=" else c.bound - v))
    return f, g


def integer_operators(eliminate_duplicates: bool) -> dict[str, Any]:
    """pymoo's recommended operators for integer vectors: random integer
    sampling, SBX crossover and polynomial mutation with rounding repair."""
    # pymoo takes 0.6 s to import: paid by the strategies that use it
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM
    from pymoo.operators.repair.rounding import RoundingRepair
    from pymoo.operators.sampling.rnd import IntegerRandomSampling

    return {
        "sampling": IntegerRandomSampling(),
        "crossover": SBX(prob=0.9, eta=15, vtype=float, repair=RoundingRepair()),
        "mutation": PM(eta=20, vtype=float, repair=RoundingRepair()),
        "eliminate_duplicates": eliminate_duplicates,
    }


@dataclass(frozen=True)
class PymooOptions:
    """``pop_size``: the genetic algorithm's population."""

    pop_size: int = 20


class _PymooStrategy(Strategy):
    max_generations_per_ask = 100
    Options = PymooOptions

    def __init__(
        self,
        space: SearchSpace,
        objectives: Sequence[Objective],
        constraints: Sequence[Constraint] = (),
        seed: int = 0,
        options: PymooOptions | None = None,
    ):
        super().__init__(space, objectives, constraints, seed, options)
        pop_size = self.options.pop_size
        # pymoo takes 0.6 s to import: paid by the strategies that use it
        from pymoo.core.problem import Problem

        problem = Problem(
            n_var=space.n_dims,
            n_obj=len(objectives),
            n_ieq_constr=len(constraints),
            xl=np.zeros(space.n_dims),
            xu=space.cardinalities - 1.0,
            vtype=int,
        )
        self.algorithm = self._make(pop_size)
        self.algorithm.setup(problem, termination=("n_gen", 10**9), seed=seed, verbose=False)
        self._pop: Any = None
        self._pop_archs: list[Arch] = []
        self._known: dict[Arch, dict[str, float]] = {}

    def _make(self, pop_size: int) -> Any:
        raise NotImplementedError

    def _operators(self) -> dict[str, Any]:
        return integer_operators(eliminate_duplicates=True)

    def _ask(self, n: int) -> list[Arch]:
        for _ in range(self.max_generations_per_ask):
            if self._pop is None:
                self._pop = self.algorithm.ask()
                self._pop_archs = [self.space.decode(x) for x in self._pop.get("X")]
            new = [a for a in dict.fromkeys(self._pop_archs) if self.is_new(a)]
            if new:
                return new[:n]
            if any(a not in self._known for a in self._pop_archs):
                return []  # the rest is pending: wait for tell
            self._finish_generation()
        return self.random_new(n)

    def _tell(self, archs: list[Arch], metrics: list[dict[str, float]]) -> None:
        for a, m in zip(archs, metrics, strict=True):
            self._known[a] = m
        if self._pop is not None and all(a in self._known for a in self._pop_archs):
            self._finish_generation()

    def _finish_generation(self) -> None:
        fg = [penalised(self._known[a], self.objectives, self.constraints) for a in self._pop_archs]
        self._pop.set("F", np.array([f for f, _ in fg], dtype=float))
        if self.constraints:
            self._pop.set("G", np.array([g for _, g in fg], dtype=float))
        self.algorithm.tell(infills=self._pop)
        self._pop = None


@register_strategy("nsga2")
class NSGA2Strategy(_PymooStrategy):
    """NSGA-II (Deb et al. 2002) through pymoo."""

    def _make(self, pop_size: int) -> Any:
        # pymoo takes 0.6 s to import: paid by the strategies that use it
        from pymoo.algorithms.moo.nsga2 import NSGA2

        return NSGA2(pop_size=pop_size, **self._operators())


@register_strategy("agemoea")
class AGEMOEAStrategy(_PymooStrategy):
    """AGE-MOEA (Panichella 2019) through pymoo."""

    def _make(self, pop_size: int) -> Any:
        # pymoo takes 0.6 s to import: paid by the strategies that use it
        from pymoo.algorithms.moo.age import AGEMOEA

        return AGEMOEA(pop_size=pop_size, **self._operators())
