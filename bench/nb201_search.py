"""Search quality on NAS-Bench-201 with device latencies.

For each strategy and each tuning device (DESIGN.md: pixel3, raspi4,
1080ti_1, gold_6226, samsung_a50): median over seeds 1..K of the HV regret
after 60 and 250 evaluations, the share of the true Pareto set found, and the
search-side seconds per 250 evaluations (everything but evaluations and the
evaluator's known metrics: latency table, GRAF features and proxies, looked
up once per cell and reported apart as "known s"). Also a
3-objective run (accuracy, latency, params) and a constrained run; the
number of evaluations lightnas needs to reach the regret LINAS reaches at
250; and the five tuning devices searched together (one front per device,
2 x 250 evaluations) against each device searched alone.

    python bench/nb201_search.py [--seeds 5] [--strategies lightnas,linas,nsga2,random]

``lightnas-predicted`` is lightnas with the table latency predicted like the
accuracy instead of looked up (``use_known=False``), for comparison.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from lightnas.bench import nb201
from lightnas.bench.cli import score
from lightnas.objectives import Constraint, Objective

OBJ2 = [Objective("accuracy", "max"), Objective("latency_ms", "min")]
OBJ3 = OBJ2 + [Objective("params", "min")]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--strategies", default="lightnas,linas,nsga2,random")
    ap.add_argument("--devices", default=",".join(nb201.TUNING_DEVICES))
    ap.add_argument("--budget", type=int, default=250)
    args = ap.parse_args()
    budgets = [60, args.budget]
    settings = [("2 objectives", OBJ2, [])]
    settings.append(("3 objectives", OBJ3, []))
    settings.append(("latency_ms<=5", OBJ2, [Constraint("latency_ms", "<=", 5.0)]))
    print(
        f"{'setting':<15} {'device':<12} {'strategy':<18} {'regret@60':>10} {'regret@250':>11} "
        f"{'found@250':>10} {'search s':>9} {'known s':>8}"
    )
    curves: dict[tuple[str, str], list[list[float]]] = {}
    steps = list(range(10, args.budget + 1, 10))
    for label, objs, cons in settings:
        devices = args.devices.split(",") if label == "2 objectives" else ["pixel3"]
        for dev in devices:
            for strat in args.strategies.split(","):
                rows = []
                for seed in range(1, args.seeds + 1):
                    name, opts = (strat, {}) if strat != "lightnas-predicted" else ("lightnas", {"use_known": False})
                    trials, search_s, known_s = nb201.run_search(dev, name, args.budget, seed, objs, cons, **opts)
                    s = score(trials, dev, objs, cons, sorted(set(budgets + steps)))
                    rows.append((s[60][0], s[args.budget][0], s[args.budget][1], search_s, known_s))
                    if label == "2 objectives":
                        curves.setdefault((dev, strat), []).append([s[b][0] for b in steps])
                r = np.median(np.array(rows), axis=0)
                print(
                    f"{label:<15} {dev:<12} {strat:<18} {r[0]:>10.5f} {r[1]:>11.5f} {r[2]:>10.0%} "
                    f"{r[3]:>9.2f} {r[4]:>8.2f}",
                    flush=True,
                )
    if any(k[1] == "linas" for k in curves):
        print("\nevaluations lightnas needs (median curve) to reach LINAS's median regret at", args.budget)
        for dev in args.devices.split(","):
            if (dev, "linas") not in curves or (dev, "lightnas") not in curves:
                continue
            goal = float(np.median(np.array(curves[(dev, "linas")])[:, -1]))
            mine = np.median(np.array(curves[(dev, "lightnas")]), axis=0)
            reached = [b for b, r in zip(steps, mine, strict=True) if r <= goal]
            need = f"{reached[0]}" if reached else f"> {args.budget}"
            print(
                f"  {dev:<12} LINAS {goal:.5f}: lightnas needs {need} ({args.budget / reached[0]:.1f}x fewer)"
                if reached
                else f"  {dev:<12} LINAS {goal:.5f}: lightnas needs {need}"
            )
    if "lightnas" in args.strategies.split(","):
        joint(args, curves, steps)
    return 0


def joint(args: argparse.Namespace, curves: dict, steps: list[int]) -> None:
    """The tuning devices searched together for 2 x budget evaluations."""
    devices = args.devices.split(",")
    budget = 2 * args.budget
    print(f"\n{len(devices)} devices searched together, {budget} evaluations (alone: {args.budget} each)")
    per_dev: dict[str, list[float]] = {d: [] for d in devices}
    secs = []
    for seed in range(1, args.seeds + 1):
        trials, search_s, _ = nb201.run_search(",".join(devices), "lightnas", budget, seed)
        secs.append(search_s)
        for d in devices:
            objs = [Objective("accuracy", "max"), Objective(f"latency_ms@{d}", "min")]
            per_dev[d].append(score(trials, d, objs, [], [budget])[budget][0])
    for d in devices:
        together = float(np.median(per_dev[d]))
        alone = (
            float(np.median(np.array(curves[(d, "lightnas")])[:, -1])) if (d, "lightnas") in curves else float("nan")
        )
        print(f"  {d:<12} together {together:.5f}  alone {alone:.5f}  ratio {together / alone:.2f}")
    print(f"  search-side seconds (median): {np.median(secs):.2f}")

    return 0


if __name__ == "__main__":
    sys.exit(main())
