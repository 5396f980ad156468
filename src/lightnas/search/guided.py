"""lightnas's predictor-guided multi-objective strategy (the default).

The algorithm, with its measurements, is in ``docs/search.md``; in short:

1. *Inputs*: the encoding plus the evaluator's ``known_metrics`` (latency
   table, parameters, structural features, zero-cost proxies); known metrics
   that are objectives or constrained are used exactly.
2. *Start design*: smallest and largest, then the front of (proxy score,
   known costs) when there are proxies (``zc_*``), else a balanced random design.
3. *Each batch*: one predictor per predicted objective and constrained metric
   (default: Bayesian ridge averaged with top-weighted extra trees), fitted in
   Yeo-Johnson-warped units (:class:`WarpedPredictor`); candidates are the whole
   space when it enumerates, else samples and mutations of the front, those
   predicted infeasible (optimistically) dropped.
4. *Selection*: greedy expected hypervolume improvement (exact in 2-D with
   one predicted objective, else of the optimistic point, mean minus ``beta``
   std), each pick joining the front at its predicted mean ("Kriging
   believer"); a share ``mix`` of the picks is made by the pessimistic
   prediction in the objectives' own units, where the cheap end of the front counts.

``zero-cost`` is the same selection with the proxy score in place of every
prediction: training-free, a first front in seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lightnas.errors import LightnasError
from lightnas.objectives import Constraint, Objective
from lightnas.predictors import WarpedPredictor, create_predictor
from lightnas.search.base import Strategy, register_strategy
from lightnas.search.inputs import PROXY_PREFIX, balanced_design, input_columns, proxy_score
from lightnas.search.pareto import (
    additive_epsilon,
    expected_hv_improvement_2d,
    hv_improvement,
    nondominated_mask,
)
from lightnas.space import Arch, SearchSpace


@dataclass(frozen=True)
class GuidedOptions:
    """``n_init``: the start design's size (None: 2 per dimension, 10-20);
    ``predictor``: the registered predictor of each objective; ``beta``: the
    weight of the predicted std in the optimistic and pessimistic points;
    ``pool_size``: candidates per ask where the space has more than
    ``enumerate_limit`` architectures; ``use_known``: known metrics as
    predictor inputs; ``warp``: objectives predicted in warped units;
    ``mix``: the share of picks made in the objectives' own units, in [0, 1]."""

    n_init: int | None = None
    predictor: str = "ensemble"
    beta: float = 0.5
    pool_size: int = 4000
    enumerate_limit: int = 100_000
    use_known: bool = True
    warp: bool = True
    mix: float = 0.2

    def __post_init__(self) -> None:
        if not 0 <= self.mix <= 1:
            raise LightnasError(f"mix must be in [0, 1], not {self.mix}")


@register_strategy("lightnas")
class GuidedSearch(Strategy):
    """Predictor-guided batches selected by expected hypervolume improvement."""

    zero_cost = False  # True: the proxy score stands in for every prediction

    Options = GuidedOptions

    def __init__(
        self,
        space: SearchSpace,
        objectives: Sequence[Objective],
        constraints: Sequence[Constraint] = (),
        seed: int = 0,
        options: GuidedOptions | None = None,
    ):
        super().__init__(space, objectives, constraints, seed, options)
        o: GuidedOptions = self.options
        n_init, self.predictor, self.beta, self.pool_size = o.n_init, o.predictor, o.beta, o.pool_size
        self.use_known, self.warp, self.mix = o.use_known, o.warp, o.mix
        self._n_picked = 0  # picks so far, across asks: the plain share holds for batches of one too
        self._warps: dict[str, WarpedPredictor] = {}  # per predicted objective, its last fit
        self._known_cache: dict[bytes, dict[str, float]] = {}
        # 2 points a dimension, at least 10 and at most 20: on the 22-dimension default
        # space, 2 x dims would spend 44 of the default 60 evaluations before any guidance
        self.n_init = n_init if n_init is not None else min(max(10, 2 * space.n_dims), 20)
        self._all_codes = space.enumerate_codes(o.enumerate_limit)
        self._all_inputs: tuple[np.ndarray, dict[str, np.ndarray]] | None = None
        self._start: list[Arch] | None = None

    # -- inputs -------------------------------------------------------------------
    def _known(self, codes: np.ndarray) -> dict[str, np.ndarray]:
        """The evaluator's known metrics of ``codes`` (cached per architecture)."""
        if self.known is None or not self.use_known or len(codes) == 0:
            return {}
        rows = []
        for c in codes:
            key = c.tobytes()
            if key not in self._known_cache:
                self._known_cache[key] = dict(self.known(self.space.decode(c)))
            rows.append(self._known_cache[key])
        names = set(rows[0]).intersection(*rows[1:])
        return {n: np.array([r[n] for r in rows], dtype=float) for n in sorted(names)}

    def _inputs(self, codes: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(predictor inputs, known metrics) of ``codes``."""
        known = self._known(codes)
        return np.hstack([self.space.features_from_codes(codes), input_columns(known, len(codes))]), known

    def _candidates(self) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """(codes, predictor inputs, known metrics) of unseen candidates."""
        seen = self._told | self._pending
        if self._all_codes is not None:
            if self._all_inputs is None:
                self._all_inputs = self._inputs(self._all_codes)
                self._all_keys = {c.tobytes(): i for i, c in enumerate(self._all_codes)}
            mask = np.ones(len(self._all_codes), dtype=bool)
            for a in seen:
                mask[self._all_keys[self.space.encode(a).tobytes()]] = False
            X, known = self._all_inputs
            return self._all_codes[mask], X[mask], {k: v[mask] for k, v in known.items()}
        archs: set[Arch] = set()
        feasible_archs, F = self.feasible_data()
        front = [a for a, keep in zip(feasible_archs, nondominated_mask(F), strict=True) if keep]
        for a in front:
            for _ in range(max(1, self.pool_size // (2 * max(len(front), 1)))):
                archs.add(self.space.mutate(a, self.rng))
        while len(archs) < self.pool_size:
            archs.add(self.space.sample(self.rng))
        archs -= seen
        codes = np.stack([self.space.encode(a) for a in archs]) if archs else np.zeros((0, self.space.n_dims), int)
        return (codes, *self._inputs(codes))

    # -- the loop -------------------------------------------------------------------
    def _ask(self, n: int) -> list[Arch]:
        if self._start is None:
            self._start = self._start_design()
        start = [a for a in self._start if self.is_new(a)]
        if start:
            return start[:n]
        usable = [i for i, m in enumerate(self.metrics) if all(o.metric in m for o in self.objectives)]
        if len(usable) < 3 and not self.zero_cost:
            return self._likely_feasible(n)
        codes, X, known = self._candidates()
        if len(codes) == 0:
            return []
        n_cand, pending = len(codes), self.pending
        if pending:  # evaluations in flight (asynchronous runs) are predicted with the candidates
            Xp, kp = self._inputs(np.stack([self.space.encode(a) for a in pending]))
            X, known = np.vstack([X, Xp]), {k: np.concatenate([v, kp[k]]) for k, v in known.items()}
        pred = self._stand_in(known) if self.zero_cost else self._predict(X, known)
        if pred is None and self.zero_cost:
            raise LightnasError(
                "the zero-cost strategy needs zero-cost proxies (zc_*) among the evaluator's known metrics"
            )
        if pred is None:
            return []
        mu, sd, ok = pred
        # Kriging believer across asks: pending evaluations count at their predicted means
        believed = mu[n_cand:][ok[n_cand:]]
        mu, sd, ok = mu[:n_cand], sd[:n_cand], ok[:n_cand]
        if not ok.any():  # every candidate predicted infeasible: the nearest misses teach the most
            misses = self._nearest_misses(X[:n_cand], {k: v[:n_cand] for k, v in known.items()}, n)
            return [self.space.decode(codes[i]) for i in misses]
        codes, mu, sd = codes[ok], mu[ok], sd[ok]
        observed = self.feasible_data()[1]
        F = np.vstack([self._in_units(observed, warped=True), believed])
        plain = None
        if self._warps and self.mix > 0:  # pessimistic predictions, in the objectives' own units
            F_own = np.vstack([observed, self._in_units(believed, warped=False)])
            plain = (F_own, self._in_units(mu + self.beta * sd, warped=False))
        return [self.space.decode(codes[i]) for i in self._select(F, mu, sd, n, plain)]

    def _start_design(self) -> list[Arch]:
        """Smallest, largest, then the proxy front or a balanced design."""
        start = [self.space.smallest(), self.space.largest()]
        probe = self._known(self.space.encode(start[0])[None])
        if any(k.startswith(PROXY_PREFIX) for k in probe):
            if self._all_codes is not None:
                codes, _, known = self._candidates()
            else:
                samples = [self.space.encode(self.space.sample(self.rng)) for _ in range(self.pool_size)]
                codes = np.unique(np.stack(samples), axis=0)
                known = self._known(codes)
            pred = self._stand_in(known)
            if pred is not None:
                mu, sd, ok = pred
                idx = np.flatnonzero(ok) if ok.any() else np.arange(len(codes))
                picks = self._select(np.zeros((0, mu.shape[1])), mu[idx], sd[idx], self.n_init)
                return list(dict.fromkeys(start + [self.space.decode(codes[idx[i]]) for i in picks]))
        design = balanced_design(self.space, self.n_init, self.rng)
        archs = list(dict.fromkeys(start + [self.space.decode(c) for c in design]))
        if not self.constraints:
            return archs
        ok = self._known_ok(self._known(np.stack([self.space.encode(a) for a in archs])), len(archs))
        return [a for a, keep in zip(archs, ok, strict=True) if keep]  # known to fail: not worth a measurement

    def _known_ok(self, known: dict[str, np.ndarray], n: int) -> np.ndarray:
        """Candidates whose known constrained metrics satisfy the constraints."""
        ok = np.ones(n, dtype=bool)
        for c in self.constraints:
            if c.metric in known:
                ok &= known[c.metric] <= c.bound if c.op == "<=" else known[c.metric] >= c.bound
        return ok

    def _stand_in(self, known: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Training-free objectives: the proxy score for "max" objectives, the
        known value (or else MACs or parameters) for the others; None when
        an objective has no stand-in."""
        score = proxy_score(known)
        n = len(next(iter(known.values()))) if known else 0
        cols = []
        for o in self.objectives:
            if o.metric in known:
                cols.append(o.as_min(known[o.metric]))
            elif o.direction == "max" and score is not None:
                cols.append(-score)
            elif o.direction == "min" and ("macs" in known or "params" in known):
                cols.append(known["macs" if "macs" in known else "params"])
            else:
                return None
        return np.stack(cols, axis=1), np.zeros((n, len(cols))), self._known_ok(known, n)

    def _in_units(self, F: np.ndarray, warped: bool) -> np.ndarray:
        """Objectives (minimisation form) mapped into the units of their
        predictions (``warped``) or from those back into their own."""
        F = np.array(F, dtype=float)
        for j, o in enumerate(self.objectives):
            if o.metric in self._warps and len(F):
                model = self._warps[o.metric]
                F[:, j] = (model.warp if warped else model.unwarp)(F[:, j])
        return F

    def _predict(self, X: np.ndarray, known: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Predicted (mean, std) per objective in minimisation form, and the
        optimistic feasibility of each candidate."""
        X_told = self._inputs(np.stack([self.space.encode(a) for a in self.archs]))[0]
        means, stds = [], []
        for o in self.objectives:
            if o.metric in known:  # exact, no prediction needed
                means.append(o.as_min(known[o.metric]))
                stds.append(np.zeros(len(X)))
                continue
            rows = [i for i, m in enumerate(self.metrics) if o.metric in m]
            y = np.array([o.as_min(self.metrics[i][o.metric]) for i in rows])
            model = WarpedPredictor(create_predictor(self.predictor, self.seed), identity=not self.warp)
            mu, sd = model.fit(X_told[rows], y).inner.predict(X)  # in warped units
            self._warps[o.metric] = model
            means.append(mu)
            stds.append(sd)
        excess = self._excess(X, known, X_told, self.beta)
        ok = np.ones(len(X), dtype=bool) if excess is None else excess <= 0
        return np.stack(means, axis=1), np.stack(stds, axis=1), ok

    def _excess(
        self, X: np.ndarray, known: dict[str, np.ndarray], X_told: np.ndarray | None = None, beta: float = 0.0
    ) -> np.ndarray | None:
        """Each candidate's largest relative constraint violation (0 when it
        satisfies every constraint): exact for known constrained metrics,
        else predicted (optimistically, ``beta`` std) from every told
        architecture that has the metric, rejected ones included (their
        cheap metrics are told too). None when no constraint can be judged."""
        worst, judged = np.zeros(len(X)), False
        for c in self.constraints:
            rows = [i for i, m in enumerate(self.metrics) if c.metric in m]
            if c.metric in known:
                value = known[c.metric]
            elif len(rows) >= 3:
                if X_told is None:
                    X_told = self._inputs(np.stack([self.space.encode(a) for a in self.archs]))[0]
                y = np.array([self.metrics[i][c.metric] for i in rows])
                cm, cs = create_predictor(self.predictor, self.seed).fit(X_told[rows], y).predict(X)
                value = cm - beta * cs if c.op == "<=" else cm + beta * cs
            else:
                continue
            judged = True
            gap = value - c.bound if c.op == "<=" else c.bound - value
            worst = np.maximum(worst, np.maximum(gap, 0.0) / max(abs(c.bound), 1e-12))
        return worst if judged else None

    def _nearest_misses(self, X: np.ndarray, known: dict[str, np.ndarray], n: int) -> list[int]:
        """The ``n`` candidates predicted closest to feasible (mean predictions)."""
        excess = self._excess(X, known)
        order = np.argsort(excess if excess is not None else self.rng.random(len(X)), kind="stable")
        return [int(i) for i in order[:n]]

    def _likely_feasible(self, n: int) -> list[Arch]:
        """Before three evaluations hold every objective, nothing can be
        predicted but feasibility: up to ``n`` random candidates predicted
        feasible (mean predictions), else the nearest misses. Nothing (the
        base class samples uniformly) without constraints to judge, so a
        rare feasible region is found by learning from rejected candidates
        rather than by measuring uniform samples until one passes."""
        codes, X, known = self._candidates() if self.constraints else (np.zeros((0, 0)), None, {})
        excess = self._excess(X, known) if len(codes) else None
        if excess is None:
            return []
        ok = np.flatnonzero(excess <= 0)
        picks = self.rng.permutation(ok)[:n] if len(ok) else np.argsort(excess, kind="stable")[:n]
        return [self.space.decode(codes[i]) for i in picks]

    def _groups(self, F: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> list[list[np.ndarray]]:
        """Per searched front: (normalised observed front, candidates' means, stds)."""
        groups = []
        for g in self.fronts:
            cols = list(g)
            Fg, mg = F[:, cols], mu[:, cols]
            both = np.vstack([Fg, mg])  # the reference spans candidates too: no region left unreachable
            lo, hi = both.min(axis=0), both.max(axis=0)
            scale = np.where(hi - lo > 0, hi - lo, 1.0)
            front = (Fg[nondominated_mask(Fg)] - lo) / scale if len(Fg) else np.zeros((0, len(cols)))
            groups.append([front, (mg - lo) / scale, sd[:, cols] / scale])
        return groups

    def _select(
        self,
        F: np.ndarray,
        mu: np.ndarray,
        sd: np.ndarray,
        n: int,
        plain: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> list[int]:
        """Greedy batch by expected hypervolume improvement, summed over the
        searched fronts (:meth:`search_fronts`), with Kriging believer. With
        ``plain`` (the observed objectives and the candidates' pessimistic
        predictions in the objectives' own units), a share ``mix`` of the
        batch is picked by the hypervolume those add there instead, each pick
        joining both views' fronts: warped units shrink the
        tail of weak architectures, and with it the value of the cheap end of
        the front, where the hypervolume the user sees is counted."""
        views = [self._groups(F, mu, sd)]
        if plain is not None:
            views.append(self._groups(plain[0], plain[1], np.zeros_like(sd)))
        # lazy greedy: a candidate's gain only shrinks as the fronts grow, so
        # the picks come from the best-scored candidates of the first round
        width = max(50 * n, 500)
        keep = np.unique(np.concatenate([np.argsort(-self._score(v))[:width] for v in views]))
        for groups in views:
            for grp in groups:
                grp[1], grp[2] = grp[1][keep], grp[2][keep]
        chosen: list[int] = []
        alive = np.ones(len(keep), dtype=bool)
        for _ in range(min(n, len(keep))):
            t = self._n_picked
            self._n_picked += 1
            in_plain = plain is not None and int((t + 1) * self.mix) > int(t * self.mix)
            view = views[1] if in_plain else views[0]
            score = np.where(alive, self._score(view), -np.inf)
            ties = np.flatnonzero(score >= float(score.max()) - 1e-12)
            i = int(ties[self.rng.integers(len(ties))])
            chosen.append(int(keep[i]))
            alive[i] = False
            for groups in views:
                for grp in groups:
                    front = np.vstack([grp[0], grp[1][i]])
                    grp[0] = front[nondominated_mask(front)]
        return chosen

    def _score(self, groups: list[list[np.ndarray]]) -> np.ndarray:
        """Sum over fronts of the expected hypervolume improvement (exact in
        2-D with at most one predicted objective, else that of the optimistic
        point); candidates that add nothing anywhere score minus their
        smallest additive-epsilon distance to a front."""
        ref = 1.1
        gain = np.zeros(len(groups[0][1]))
        for front, mean, sd in groups:
            if mean.shape[1] == 2 and (sd > 0).any(axis=0).sum() <= 1:
                gain += expected_hv_improvement_2d(front, mean, sd, np.full(2, ref))
            else:
                gain += hv_improvement(front, mean - self.beta * sd, np.full(mean.shape[1], ref), self.rng)
        idle = np.flatnonzero(gain <= 1e-15)  # only these need their distance to a front
        if len(idle) and any(len(front) for front, _, _ in groups):
            eps = np.min([additive_epsilon(f, m[idle] - self.beta * s[idle]) for f, m, s in groups if len(f)], axis=0)
            gain[idle] = -eps
        return gain


@register_strategy("zero-cost")
class ZeroCostSearch(GuidedSearch):
    """Training-free: candidates ranked by their zero-cost proxies (mean rank
    of every ``zc_*`` known metric) and known costs, batches spread along
    that front by hypervolume improvement. Evaluations are recorded but never
    fitted; needs an evaluator whose known metrics hold proxies."""

    zero_cost = True
