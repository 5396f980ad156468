"""lightnas's predictor-guided multi-objective strategy (the default).

Algorithm (see ``docs/search.md``):

1. *Start design*: the smallest and the largest architecture (they anchor the
   cost range of the front) plus a balanced random design in which every value
   of every dimension appears about equally often.
2. *Each batch*: fit one predictor per objective (and per constrained metric)
   on every evaluation so far, except for metrics the evaluator knows without
   measuring (``known_metrics``: a latency table, a benchmark's table), which
   are used exactly. Score candidates: the whole space when it is
   small enough to enumerate, else a pool of random samples and mutations of
   the current front. Drop candidates predicted infeasible.
3. *Select by hypervolume improvement*: each candidate's optimistic point
   (mean minus ``beta`` standard deviations, in minimisation form) is scored by
   the hypervolume it would add to the evaluated front (exact in 2-D, Monte
   Carlo above), normalised by the observed ranges; candidates that add
   nothing are ranked by their additive-epsilon distance to the front. The
   batch is picked greedily: after each pick its predicted mean joins the
   front ("Kriging believer"), which spreads the batch along the front
   instead of piling it on one spot.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lightnas.objectives import Constraint, Objective
from lightnas.predictors import create_predictor
from lightnas.search.base import Strategy, register_strategy
from lightnas.search.pareto import additive_epsilon, hv_improvement_2d, nondominated_mask
from lightnas.space import Arch, SearchSpace


def balanced_design(space: SearchSpace, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, d) codes where each dimension's values appear about equally often
    (a Latin-hypercube design for categorical dimensions)."""
    cols = []
    for k in space.cardinalities:
        reps = np.resize(np.arange(k), n)
        cols.append(rng.permutation(reps))
    return np.stack(cols, axis=1)


def hv_improvement(
    front: np.ndarray, cands: np.ndarray, ref: np.ndarray, rng: np.random.Generator, samples: int = 4096
) -> np.ndarray:
    """Hypervolume each candidate adds to ``front``: exact for 2 objectives,
    a Monte Carlo estimate (shared samples) for more."""
    if cands.shape[1] == 2:
        return hv_improvement_2d(front, cands, ref)
    lo = np.minimum(cands.min(axis=0), front.min(axis=0) if len(front) else ref)
    pts = lo + rng.random((samples, cands.shape[1])) * (ref - lo)
    free = np.ones(samples, dtype=bool)
    for f in front:
        free &= ~np.all(pts >= f, axis=1)
    pts = pts[free]
    vol = float(np.prod(ref - lo)) / samples
    out = np.zeros(len(cands))
    for start in range(0, len(cands), 256):
        c = cands[start : start + 256]
        out[start : start + 256] = np.all(pts[None, :, :] >= c[:, None, :], axis=2).sum(axis=1) * vol
    return out


@register_strategy("lightnas")
class GuidedSearch(Strategy):
    """Predictor ensemble + greedy hypervolume-improvement batches."""

    def __init__(
        self,
        space: SearchSpace,
        objectives: Sequence[Objective],
        constraints: Sequence[Constraint] = (),
        seed: int = 0,
        n_init: int | None = None,
        predictor: str = "ensemble",
        beta: float = 0.5,
        pool_size: int = 4000,
        enumerate_limit: int = 100_000,
        use_known: bool = True,
    ):
        super().__init__(space, objectives, constraints, seed)
        self.use_known = use_known
        self._known_cache: dict[bytes, dict[str, float]] = {}
        self.n_init = n_init if n_init is not None else max(10, 2 * space.n_dims)
        self.predictor = predictor
        self.beta = beta
        self.pool_size = pool_size
        all_codes = space.enumerate_codes(enumerate_limit)
        self._all_codes = all_codes
        self._all_feats = space.features_from_codes(all_codes) if all_codes is not None else None
        self._all_keys = {tuple(c): i for i, c in enumerate(all_codes.tolist())} if all_codes is not None else None
        design = balanced_design(space, self.n_init, self.rng)
        start = [space.smallest(), space.largest()] + [space.decode(c) for c in design]
        self._start: list[Arch] = list(dict.fromkeys(start))

    # -- candidates -------------------------------------------------------------
    def _candidates(self) -> tuple[np.ndarray, np.ndarray]:
        """(codes, features) of unseen candidate architectures."""
        seen = self._told | self._pending
        if self._all_codes is not None:
            mask = np.ones(len(self._all_codes), dtype=bool)
            for a in seen:
                mask[self._all_keys[tuple(self.space.encode(a).tolist())]] = False
            return self._all_codes[mask], self._all_feats[mask]
        archs: set[Arch] = set()
        feasible_archs, F = self.feasible_data()
        front = [a for a, keep in zip(feasible_archs, nondominated_mask(F), strict=True) if keep]
        for a in front:
            for _ in range(max(1, self.pool_size // (2 * max(len(front), 1)))):
                archs.add(self.space.mutate(a, self.rng))
        while len(archs) < self.pool_size:
            archs.add(self.space.sample(self.rng))
        archs -= seen
        codes = np.stack([self.space.encode(a) for a in archs])
        return codes, self.space.features_from_codes(codes)

    # -- the loop -----------------------------------------------------------------
    def _ask(self, n: int) -> list[Arch]:
        start = [a for a in self._start if self.is_new(a)]
        if start:
            return start[:n]
        X = self.space.features(self.archs)
        usable = [i for i, m in enumerate(self.metrics) if all(o.metric in m for o in self.objectives)]
        if len(usable) < 3:
            return self.random_new(n)
        codes, feats = self._candidates()
        if len(codes) == 0:
            return []
        # predicted objectives (minimisation form) of candidates
        known = self._known(codes)
        means, stds = [], []
        for o in self.objectives:
            if o.metric in known:  # exact, no prediction needed
                means.append(o.as_min(known[o.metric]))
                stds.append(np.zeros(len(codes)))
                continue
            y = np.array([o.as_min(self.metrics[i][o.metric]) for i in usable])
            mu, sd = create_predictor(self.predictor).fit(X[usable], y).predict(feats)
            means.append(mu)
            stds.append(sd)
        mu = np.stack(means, axis=1)
        sd = np.stack(stds, axis=1)
        ok = np.ones(len(codes), dtype=bool)
        for c in self.constraints:
            if c.metric in known:
                ok &= known[c.metric] <= c.bound if c.op == "<=" else known[c.metric] >= c.bound
                continue
            rows = [i for i, m in enumerate(self.metrics) if c.metric in m]
            if len(rows) < 3:
                continue
            y = np.array([self.metrics[i][c.metric] for i in rows])
            cm, cs = create_predictor(self.predictor).fit(X[rows], y).predict(feats)
            optimistic = cm - self.beta * cs if c.op == "<=" else cm + self.beta * cs
            ok &= optimistic <= c.bound if c.op == "<=" else optimistic >= c.bound
        if ok.any():
            codes, mu, sd = codes[ok], mu[ok], sd[ok]
        _, F = self.feasible_data()
        return [self.space.decode(codes[i]) for i in self._select(F, mu, sd, n)]

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
        return {n: np.array([r[n] for r in rows], dtype=float) for n in names}

    def _select(self, F: np.ndarray, mu: np.ndarray, sd: np.ndarray, n: int) -> list[int]:
        """Greedy batch by hypervolume improvement with Kriging believer."""
        ref_pts = np.vstack([F, mu]) if len(F) else mu
        lo = ref_pts.min(axis=0)
        hi = F.max(axis=0) if len(F) else ref_pts.max(axis=0)
        scale = np.where(hi - lo > 0, hi - lo, 1.0)
        front = (F[nondominated_mask(F)] - lo) / scale if len(F) else np.zeros((0, mu.shape[1]))
        opt = (mu - self.beta * sd - lo) / scale
        mean = (mu - lo) / scale
        ref = np.full(mu.shape[1], 1.1)
        chosen: list[int] = []
        # lazy greedy: a candidate's gain only shrinks as the front grows, so
        # the picks come from the best-scored candidates of the first round
        first = self._score(front, opt, ref)
        keep = np.argsort(-first)[: max(50 * n, 500)]
        mu, sd, opt, mean = mu[keep], sd[keep], opt[keep], mean[keep]
        alive = np.ones(len(mu), dtype=bool)
        for _ in range(min(n, len(mu))):
            score = self._score(front, opt, ref)
            score = np.where(alive, score, -np.inf)
            best = float(score.max())
            ties = np.flatnonzero(score >= best - 1e-12)
            i = int(ties[self.rng.integers(len(ties))])
            chosen.append(int(keep[i]))
            alive[i] = False
            front = np.vstack([front, mean[i]])
            front = front[nondominated_mask(front)]
        return chosen

    def _score(self, front: np.ndarray, opt: np.ndarray, ref: np.ndarray) -> np.ndarray:
        """Hypervolume improvement, or minus the additive-epsilon distance when none."""
        gain = hv_improvement(front, opt, ref, self.rng)
        if len(front):
            return np.where(gain > 0, gain, -additive_epsilon(front, opt))
        return gain
