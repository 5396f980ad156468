"""What the guided strategies start from and predict with (torch-free): a
balanced start design, the zero-cost proxy score, known metrics as inputs."""

from __future__ import annotations

import numpy as np

from lightnas.space import SearchSpace

PROXY_PREFIX = "zc_"


def balanced_design(space: SearchSpace, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, d) codes where each dimension's values appear about equally often
    (a Latin-hypercube design for categorical dimensions)."""
    cols = []
    for k in space.cardinalities:
        reps = np.resize(np.arange(k), n)
        cols.append(rng.permutation(reps))
    return np.stack(cols, axis=1)


def proxy_score(known: dict[str, np.ndarray]) -> np.ndarray | None:
    """Mean rank quantile (0 worst, 1 best) of the zero-cost proxies among
    ``known`` (columns named ``zc_*``, higher is better); None without any."""
    cols = [v for k, v in sorted(known.items()) if k.startswith(PROXY_PREFIX)]
    if not cols:
        return None
    ranks = [np.argsort(np.argsort(c, kind="stable"), kind="stable") / max(len(c) - 1, 1) for c in cols]
    return np.mean(ranks, axis=0)


def input_columns(known: dict[str, np.ndarray], n: int) -> np.ndarray:
    """Known metrics as predictor inputs, (n, k), sorted by name; counts
    spanning orders of magnitude (parameters, MACs) enter as ``log1p``."""
    cols = []
    for _, v in sorted(known.items()):
        cols.append(np.log1p(v) if v.min() >= 0 and v.max() >= 100 else v)
    return np.stack(cols, axis=1) if cols else np.zeros((n, 0))
