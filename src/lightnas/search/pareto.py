"""Pareto dominance and hypervolume on minimisation matrices (torch-free)."""

from __future__ import annotations

import numpy as np


def nondominated_mask(F: np.ndarray) -> np.ndarray:
    """Boolean mask of the rows of ``F`` (n, m) not dominated by any other row.

    Minimisation; duplicates of a non-dominated point are all kept.
    """
    F = np.asarray(F, dtype=float)
    n = F.shape[0]
    if n == 0:
        return np.zeros(0, dtype=bool)
    if F.shape[1] == 2:
        order = np.lexsort((F[:, 1], F[:, 0]))
        mask = np.zeros(n, dtype=bool)
        best_y = np.inf
        last = None
        for i in order:
            x, y = F[i]
            if y < best_y:
                mask[i] = True
                best_y = y
                last = (x, y)
            elif last is not None and x == last[0] and y == last[1]:
                mask[i] = True
        return mask
    mask = np.ones(n, dtype=bool)
    for i in range(n):
        if not mask[i]:
            continue
        dominated = np.all(F[i] <= F, axis=1) & np.any(F[i] < F, axis=1)
        mask &= ~dominated
    return mask


def nondominated_ranks(F: np.ndarray) -> np.ndarray:
    """Non-dominated sorting rank of each row (0 = first front)."""
    F = np.asarray(F, dtype=float)
    ranks = np.full(F.shape[0], -1, dtype=int)
    remaining = np.arange(F.shape[0])
    r = 0
    while remaining.size:
        mask = nondominated_mask(F[remaining])
        ranks[remaining[mask]] = r
        remaining = remaining[~mask]
        r += 1
    return ranks


def hypervolume(F: np.ndarray, ref: np.ndarray) -> float:
    """Hypervolume dominated by ``F`` (minimisation) and bounded by ``ref``.

    Exact for any number of objectives (2-D by a sweep, more through pymoo).
    Points not strictly better than ``ref`` in every objective add nothing.
    """
    F = np.asarray(F, dtype=float)
    ref = np.asarray(ref, dtype=float)
    if F.size == 0:
        return 0.0
    F = F[np.all(F < ref, axis=1)]
    if F.shape[0] == 0:
        return 0.0
    if F.shape[1] == 2:
        F = F[nondominated_mask(F)]
        F = F[np.argsort(F[:, 0])]
        xs = np.append(F[1:, 0], ref[0])
        return float(np.sum((xs - F[:, 0]) * (ref[1] - F[:, 1])))
    if F.shape[1] == 1:
        return float(ref[0] - F[:, 0].min())
    # pymoo and SciPy load with the first front measured (0.6 s)
    from pymoo.indicators.hv import HV

    return float(HV(ref_point=ref)(F))


def hv_improvement_2d(front: np.ndarray, cands: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Exact hypervolume each candidate would add to ``front`` (2-D, vectorised).

    ``front`` need not be non-dominated. Cost O(n_cands * n_front).
    """
    cands = np.asarray(cands, dtype=float)
    px, py = np.minimum(cands[:, 0], ref[0]), np.minimum(cands[:, 1], ref[1])
    own = (ref[0] - px) * (ref[1] - py)
    front = np.asarray(front, dtype=float).reshape(-1, 2)
    front = front[np.all(front < ref, axis=1)]
    if front.shape[0] == 0:
        return own
    front = front[nondominated_mask(front)]
    front = front[np.argsort(front[:, 0])]
    # the front clipped into each candidate's box stays a staircase
    cx = np.maximum(front[None, :, 0], px[:, None])
    cy = np.maximum(front[None, :, 1], py[:, None])
    nxt = np.concatenate([cx[:, 1:], np.full((cx.shape[0], 1), ref[0])], axis=1)
    covered = np.sum((nxt - cx) * (ref[1] - cy), axis=1)
    return np.maximum(own - covered, 0.0)


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


def expected_hv_improvement_2d(front: np.ndarray, mu: np.ndarray, sd: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Exact expected hypervolume improvement (2-D, minimisation) of
    candidates whose objectives are independent normals ``N(mu, sd)`` with at
    most one uncertain column per call (the common case of a search with a
    latency table: latency known, accuracy predicted). Candidates with
    ``sd == 0`` everywhere get their plain improvement.

    With ``x`` the known column and ``Y ~ N(m, s)`` the other, the improvement
    is ``sum_k w_k(x) * max(0, h_k - Y)`` over the steps ``k`` of the front's
    staircase (``w_k(x)`` the part of step ``k`` right of ``x``, ``h_k`` its
    height, capped at the reference); its expectation is
    ``sum_k w_k(x) * ((h_k - m) * Phi(z_k) + s * phi(z_k))``, ``z_k = (h_k - m) / s``.
    """
    # pymoo and SciPy load with the first front measured (0.6 s)
    from scipy.special import ndtr

    mu, sd = np.asarray(mu, dtype=float), np.asarray(sd, dtype=float)
    uncertain = np.flatnonzero((sd > 0).any(axis=0))
    if len(uncertain) == 0:
        return hv_improvement_2d(front, mu, ref)
    if len(uncertain) > 1:
        raise ValueError("expected_hv_improvement_2d takes one uncertain column")
    ky = int(uncertain[0])
    kx = 1 - ky
    front = np.asarray(front, dtype=float).reshape(-1, 2)
    front = front[np.all(front < ref, axis=1)]
    if len(front):
        front = front[nondominated_mask(front)]
        front = front[np.argsort(front[:, kx])]
    starts = np.concatenate([[-np.inf], front[:, kx]])
    ends = np.concatenate([front[:, kx], [ref[kx]]])
    heights = np.concatenate([[ref[ky]], front[:, ky]])
    x = mu[:, kx][:, None]
    widths = np.clip(np.minimum(ends, ref[kx])[None, :] - np.maximum(starts[None, :], x), 0.0, None)
    m, s = mu[:, ky][:, None], sd[:, ky][:, None]
    gap = heights[None, :] - m
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(s > 0, gap / np.where(s > 0, s, 1.0), 0.0)
    pdf = np.exp(-0.5 * z * z) / np.sqrt(2.0 * np.pi)
    expected = np.where(s > 0, gap * ndtr(z) + s * pdf, np.maximum(gap, 0.0))
    return np.sum(widths * expected, axis=1)


def additive_epsilon(front: np.ndarray, cands: np.ndarray) -> np.ndarray:
    """For each candidate, the smallest ``e >= 0`` such that ``cand - e`` is not
    dominated by ``front`` (0 for candidates already non-dominated)."""
    front = np.asarray(front, dtype=float)
    cands = np.asarray(cands, dtype=float)
    if front.shape[0] == 0:
        return np.zeros(cands.shape[0])
    # cand - e is weakly dominated by f iff e <= min_j (cand_j - f_j)
    slack = np.min(cands[:, None, :] - front[None, :, :], axis=2)  # (n, f)
    return np.maximum(slack.max(axis=1), 0.0)


def spread_indices(costs: np.ndarray, k: int) -> list[int]:
    """Up to ``k`` indices into ``costs`` (positive, sorted ascending: a front
    ordered by cost) spread evenly over the log-cost range: the first and the
    last, then, one at a time, the point nearest the geometric middle of the
    widest remaining gap between chosen neighbours. Greedy minimisation of
    the largest ratio between neighbouring chosen costs."""
    costs = np.asarray(costs, dtype=float)
    n = len(costs)
    if n <= k:
        return list(range(n))
    if k == 1:
        return [n - 1]
    logs = np.log(costs)
    chosen = [0, n - 1]
    while len(chosen) < k:
        pairs = [(logs[j] - logs[i], i, j) for i, j in zip(chosen, chosen[1:], strict=False) if j > i + 1]
        if not pairs:
            break
        _, i, j = max(pairs)
        mid = (logs[i] + logs[j]) / 2
        m = i + 1 + int(np.argmin(np.abs(logs[i + 1 : j] - mid)))
        chosen = sorted([*chosen, m])
    return chosen


def largest_gap(costs: np.ndarray) -> float:
    """The largest ratio between neighbouring costs (sorted ascending), 1.0
    for fewer than two: the front's coverage."""
    costs = np.sort(np.asarray(costs, dtype=float))
    return float((costs[1:] / costs[:-1]).max()) if len(costs) > 1 else 1.0
