"""Latency lookup tables on this machine, both backends, for any registered super-network.

For each backend (PyTorch eager, ONNX Runtime; 1 thread, batch 1): the time
to build the table for the space (`--supernet`, default mobilenet), the share of random sub-networks
predicted within ±10% of their measured latency, Spearman's rho, and the
front found by a search that uses the table as its latency objective,
re-measured on the machine (share within ±10% of the predicted latency).

    python bench/lut_fidelity.py [--supernet NAME] [--samples 100] [--run DIR] [--json]

``--run DIR`` uses the trained super-network of a finished `lightnas run`
(the front then follows real accuracies); without it the search ranks an
untrained super-network, which leaves the latency comparison just as valid.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--budget", type=int, default=40)
    ap.add_argument("--run", default=None)
    ap.add_argument("--backends", default="torch,onnxruntime")
    ap.add_argument("--supernet", default="mobilenet", help="a registered super-network (untrained unless --run)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from lightnas.data import load_dataset
    from lightnas.evaluate.supernet import LatencySource, SupernetEvaluator
    from lightnas.hardware.latency import measure_many
    from lightnas.hardware.lut import LatencyTable, check_table
    from lightnas.objectives import Objective
    from lightnas.search import Runner, SearchPlan, create_strategy
    from lightnas.search.pareto import nondominated_mask
    from lightnas.store import Store
    from lightnas.supernets import create_supernet
    from lightnas.tensors import setup_torch

    setup_torch(1)  # the measurement thread count, process-wide (see hardware/latency.py)
    if args.run:
        from lightnas.train.checkpoint import load_supernet

        net, _ = load_supernet(Path(args.run) / "supernet.pt")
    else:
        net = create_supernet(args.supernet)
    data = load_dataset("fashion-mnist")
    results = {}
    for backend in args.backends.split(","):
        t0 = time.perf_counter()
        table = LatencyTable.build(net, backend=backend, threads=1).bind(net)
        build_s = time.perf_counter() - t0
        check = check_table(table, net, samples=args.samples, seed=7)
        # search with the table as the latency objective, then re-measure the front
        ev = SupernetEvaluator(net, data, LatencySource(backend, 1, lut=table))
        objs = [Objective("accuracy", "max"), Objective("latency_ms", "min")]
        strat = create_strategy("lightnas", net.space, objs, seed=0)
        trials = Runner(strat, ev, Store(":memory:"), "lut", SearchPlan(args.budget), progress=False).run()
        F = np.array([[-t.metrics["accuracy"], t.metrics["latency_ms"]] for t in trials])
        front = [t for t, keep in zip(trials, nondominated_mask(F), strict=True) if keep]
        shape = tuple(net.config.input_shape)
        measured = measure_many([(net.extract(t.arch), shape) for t in front], backend, 1, seed=3)
        rel = [t.metrics["latency_ms"] / m - 1 for t, m in zip(front, measured, strict=True)]
        results[backend] = {
            "build_seconds": round(build_s, 1),
            "n_parts": table.meta["n_parts"],
            "calibration": table.calibration,
            "within_10pct": check["within_10pct"],
            "spearman": check["spearman"],
            "mean_abs_rel_error": check["mean_abs_rel_error"],
            "samples": check["samples"],
            "remeasure_within_10pct": check["remeasure_within_10pct"],
            "remeasure_spearman": check["remeasure_spearman"],
            "front_size": len(front),
            "front_within_10pct": float(np.mean(np.abs(rel) <= 0.10)),
            "front_max_abs_rel_error": float(np.max(np.abs(rel))),
            "worst": check["worst"][:3],
        }
    if args.json:
        print(json.dumps(results))
        return 0
    for backend, r in results.items():
        print(
            f"[{backend}] table: {r['n_parts']} parts in {r['build_seconds']} s; random sub-networks: "
            f"{r['within_10pct']:.0%} within ±10% (n={r['samples']}), Spearman {r['spearman']:.3f}, "
            f"mean |error| {r['mean_abs_rel_error']:.1%} (the machine against itself: "
            f"{r['remeasure_within_10pct']:.0%}, {r['remeasure_spearman']:.3f}); "
            f"lut-searched front: {r['front_within_10pct']:.0%} of "
            f"{r['front_size']} within ±10% when re-measured (max {r['front_max_abs_rel_error']:.1%})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
