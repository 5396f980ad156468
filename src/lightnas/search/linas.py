"""LINAS (DyNAS-T's Lightweight Iterative NAS), the reference to beat.

As in DyNAS-T: a random first population is evaluated; then, every
iteration, one predictor per objective is refit on all evaluations (SVR for
accuracy-like "max" objectives, ridge for cost objectives), an inner
NSGA-II runs ``inner_generations`` generations on the predictors alone, and
its final population is validated next. Unlike DyNAS-T, proposals already
evaluated are not validated again (the contract forbids it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lightnas.objectives import Constraint, Objective
from lightnas.predictors import create_predictor
from lightnas.search.base import Strategy, register_strategy
from lightnas.space import Arch, SearchSpace


@dataclass(frozen=True)
class LinasOptions:
    """``population`` and ``inner_generations`` of the NSGA-II run on the predictors per ask."""

    population: int = 50
    inner_generations: int = 100


@register_strategy("linas")
class LINAS(Strategy):
    """LINAS (DyNAS-T): predictors fitted on the evaluations guide an inner NSGA-II."""

    Options = LinasOptions

    def __init__(
        self,
        space: SearchSpace,
        objectives: Sequence[Objective],
        constraints: Sequence[Constraint] = (),
        seed: int = 0,
        options: LinasOptions | None = None,
    ):
        super().__init__(space, objectives, constraints, seed, options)
        self.population = self.options.population
        self.inner_generations = self.options.inner_generations
        self._queue: list[Arch] = []

    def _ask(self, n: int) -> list[Arch]:
        self._queue = [a for a in self._queue if self.is_new(a)]
        if not self._queue:
            if len(self.archs) + len(self._pending) < self.population:
                self._queue = self.random_new(self.population - len(self.archs) - len(self._pending))
            elif self._pending:
                return []
            else:
                self._queue = [a for a in self._inner_search() if self.is_new(a)]
        out, self._queue = self._queue[:n], self._queue[n:]
        return out

    def _inner_search(self) -> list[Arch]:
        # pymoo takes 0.6 s to import: paid by the strategies that use it
        from pymoo.algorithms.moo.nsga2 import NSGA2
        from pymoo.core.problem import Problem
        from pymoo.optimize import minimize

        from lightnas.search.pymoo_strategies import integer_operators

        X = self.space.features(self.archs)
        models = []
        for o in self.objectives:
            rows = [i for i, m in enumerate(self.metrics) if o.metric in m]
            y = np.array([o.as_min(self.metrics[i][o.metric]) for i in rows])
            kind = "svr" if o.direction == "max" else "ridge"
            models.append(create_predictor(kind).fit(X[rows], y))
        cons = []
        for c in self.constraints:
            rows = [i for i, m in enumerate(self.metrics) if c.metric in m]
            if len(rows) >= 3:
                y = np.array([self.metrics[i][c.metric] for i in rows])
                cons.append((c, create_predictor("ridge").fit(X[rows], y)))
        space = self.space

        class Surrogate(Problem):
            def __init__(self) -> None:
                super().__init__(
                    n_var=space.n_dims,
                    n_obj=len(models),
                    n_ieq_constr=len(cons),
                    xl=np.zeros(space.n_dims),
                    xu=space.cardinalities - 1.0,
                    vtype=int,
                )

            def _evaluate(self, x: np.ndarray, out: dict, *args: object, **kwargs: object) -> None:
                feats = space.features_from_codes(np.clip(np.round(x), 0, space.cardinalities - 1).astype(int))
                out["F"] = np.stack([m.predict(feats)[0] for m in models], axis=1)
                if cons:
                    out["G"] = np.stack(
                        [(p.predict(feats)[0] - c.bound) * (1 if c.op == "<=" else -1) for c, p in cons], axis=1
                    )

        # duplicates are removed below; eliminating them inside pymoo makes its mating
        # retry for a long time once the predicted front covers a small space
        algo = NSGA2(pop_size=self.population, **integer_operators(eliminate_duplicates=False))
        res = minimize(
            Surrogate(), algo, ("n_gen", self.inner_generations), seed=int(self.rng.integers(2**31)), verbose=False
        )
        return list(dict.fromkeys(space.decode(x) for x in res.pop.get("X")))
