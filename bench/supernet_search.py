"""Search quality on lightnas's own super-network: how close does the default
strategy get in 60 evaluations to the front of 1,000 random evaluations?

Reads a finished run (``lightnas run --out DIR``; its trained super-network
and data), builds the latency lookup table of the run's backend and threads
(``DIR/lut.json``, reused when present), and runs, in memory (the run's store
is not touched), ``random`` for ``--reference`` evaluations and each strategy
of ``--strategies`` for ``--budget`` evaluations on the same evaluator
(inherited validation accuracy, table latency). Prints each search's HV
regret against the union of every front found, normalised over every
evaluated point, reference at the worst corner, and its regret against the
front of the ``--reference`` random evaluations alone (``1 - HV / HV_random``,
negative when the search's front is the better one). The reference's
objectives are kept in ``DIR/random-<N>.json`` and reused when present
(delete it after changing how sub-networks are evaluated).

    python bench/supernet_search.py DIR [--budget 60] [--reference 1000] [--seeds 1]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def main() -> int:
    from lightnas.config import RunConfig
    from lightnas.context import run_evaluator, trained
    from lightnas.io import write_json
    from lightnas.objectives import RUN_OBJECTIVES
    from lightnas.search import Runner, SearchPlan, create_strategy
    from lightnas.search.pareto import hypervolume, nondominated_mask
    from lightnas.store import Store

    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path)
    ap.add_argument("--budget", type=int, default=60)
    ap.add_argument("--reference", type=int, default=1000)
    ap.add_argument("--strategies", default="lightnas,random")
    ap.add_argument("--seeds", type=int, default=1)
    args = ap.parse_args()
    cfg = RunConfig.from_file(args.run / "config.json")
    cfg = cfg.replace({"latency.mode": "lut"})
    net, _, data = trained(args.run, cfg)
    evaluator = run_evaluator(args.run, cfg, net, data)
    objectives = list(RUN_OBJECTIVES)

    def search(strategy: str, budget: int, seed: int) -> tuple[np.ndarray, float]:
        strat = create_strategy(strategy, net.space, objectives, seed=seed)
        with Store(":memory:") as store:
            runner = Runner(strat, evaluator, store, f"{strategy}-{seed}", SearchPlan(budget), progress=False)
            t0 = time.perf_counter()
            trials = runner.run()
        F = np.array([[o.as_min(t.metrics[o.metric]) for o in objectives] for t in trials if t.status == "ok"])
        return F, time.perf_counter() - t0

    cached = args.run / f"random-{args.reference}.json"
    if cached.exists():
        runs = {("random-reference", 0): (np.array(json.loads(cached.read_text())["F"]), 0.0)}
    else:
        runs = {("random-reference", 0): search("random", args.reference, 0)}
        F_random = runs[("random-reference", 0)][0]
        write_json({"objectives": [o.metric for o in objectives], "F": F_random.tolist()}, cached)
    for strategy in args.strategies.split(","):
        for seed in range(1, args.seeds + 1):
            runs[(strategy, seed)] = search(strategy, args.budget, seed)
    every = np.vstack([F for F, _ in runs.values()])
    lo, hi = every.min(axis=0), every.max(axis=0)
    best = every[nondominated_mask(every)]
    ref = np.ones(len(objectives))

    def hv(F: np.ndarray) -> float:
        return hypervolume((F[nondominated_mask(F)] - lo) / (hi - lo), ref)

    hv_best, hv_random = hv(best), hv(runs[("random-reference", 0)][0])
    print(f"{args.run}: latency from a lookup table ({cfg.latency.backend}, {cfg.latency.threads} thread)")
    print(f"{'search':<18} {'seed':>4} {'evaluations':>11} {'HV regret':>10} {'vs random':>10} {'seconds':>8}")
    for (strategy, seed), (F, seconds) in runs.items():
        h = hv(F)
        regrets = f"{1 - h / hv_best:>10.5f} {1 - h / hv_random:>10.5f}"
        print(f"{strategy:<18} {seed:>4} {len(F):>11} {regrets} {seconds:>8.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
