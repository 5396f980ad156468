"""Search quality on lightnas's own super-network: how close does the default
strategy get in 60 evaluations to the front of 1,000 random evaluations?

Reads a finished run (``lightnas run --out DIR``; its trained super-network
and data), builds the latency lookup table of the run's backend and threads
(``DIR/lut.json``, reused when present), and runs, in memory (the run's store
is not touched), ``random`` for ``--reference`` evaluations and each strategy
of ``--strategies`` for ``--budget`` evaluations on the same evaluator
(inherited validation accuracy, table latency). Prints each search's HV
regret against the union of every front found, normalised over every
evaluated point, reference at the worst corner.

    python bench/supernet_search.py DIR [--budget 60] [--reference 1000] [--seeds 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def main() -> int:
    from lightnas.config import RunConfig
    from lightnas.context import run_evaluator, trained
    from lightnas.objectives import RUN_OBJECTIVES
    from lightnas.search import Runner, create_strategy
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
            runner = Runner(net.space, evaluator, strat, store, f"{strategy}-{seed}", budget, progress=False)
            t0 = time.perf_counter()
            trials = runner.run()
        F = np.array([[o.as_min(t.metrics[o.metric]) for o in objectives] for t in trials if t.status == "ok"])
        return F, time.perf_counter() - t0

    runs = {("random-reference", 0): search("random", args.reference, 0)}
    for strategy in args.strategies.split(","):
        for seed in range(1, args.seeds + 1):
            runs[(strategy, seed)] = search(strategy, args.budget, seed)
    every = np.vstack([F for F, _ in runs.values()])
    lo, hi = every.min(axis=0), every.max(axis=0)
    best = every[nondominated_mask(every)]
    ref = np.ones(len(objectives))
    hv_best = hypervolume((best - lo) / (hi - lo), ref)
    print(f"{args.run}: latency from a lookup table ({cfg.latency.backend}, {cfg.latency.threads} thread)")
    print(f"{'search':<18} {'seed':>4} {'evaluations':>11} {'HV regret':>10} {'seconds':>8}")
    for (strategy, seed), (F, seconds) in runs.items():
        regret = 1 - hypervolume((F[nondominated_mask(F)] - lo) / (hi - lo), ref) / hv_best
        print(f"{strategy:<18} {seed:>4} {len(F):>11} {regret:>10.5f} {seconds:>8.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
