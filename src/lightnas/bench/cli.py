"""``lightnas bench nb201``: search NAS-Bench-201 and score the search."""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

from lightnas.errors import LightnasError
from lightnas.objectives import Objective, parse_constraint, parse_objective


def add_nb201_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device",
        default="pixel3",
        help="latency column, e.g. pixel3, raspi4, fpga; several comma-separated are searched together "
        "(one front per device, every accuracy evaluation shared)",
    )
    p.add_argument("--strategy", default="lightnas")
    p.add_argument("--budget", type=int, default=250)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--seeds",
        type=int,
        default=None,
        help="run seeds 1..K and print median HV regret and share of the true Pareto set found",
    )
    p.add_argument(
        "--objective",
        action="append",
        default=None,
        help="metric[:min|max], repeatable (default accuracy:max, latency_ms:min; also params)",
    )
    p.add_argument("--constraint", action="append", default=[], help="e.g. 'latency_ms<=10'")
    p.add_argument("--out", default=None, help="CSV file: one row per evaluation, in order")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")


def score(
    trials: list, device: str, objectives: list, constraints: list, budgets: list[int]
) -> dict[int, tuple[float, float]]:
    """HV regret and share of the true (feasible) Pareto set found, per budget."""
    # imported by the command that runs: the parser starts in 0.3 s (torch alone: 2 s)
    from lightnas.bench import nb201

    tf = nb201.true_front(device, objectives, constraints)
    table = nb201.load_table()
    truth = set(tf.pareto_rows.tolist())
    ok = [t for t in trials if t.status == "ok"]
    out = {}
    for b in budgets:
        feas = [t for t in ok[:b] if t.feasible]
        F = np.array([[o.as_min(t.metrics[o.metric]) for o in objectives] for t in feas]).reshape(
            len(feas), len(objectives)
        )
        rows = {table.row_of(t.arch) for t in feas}
        out[b] = (tf.regret(F), len(rows & truth) / len(truth))
    return out


def bench_nb201(args: argparse.Namespace) -> int:
    # imported by the command that runs: the parser starts in 0.3 s (torch alone: 2 s)
    from lightnas.bench import nb201

    nb201.check_device(args.device)
    devices = args.device.split(",")
    if len(devices) > 1 and args.objective:
        raise LightnasError("--objective cannot be combined with several devices (each gets accuracy and latency)")
    objectives = [parse_objective(o) for o in (args.objective or ["accuracy:max", "latency_ms:min"])]
    for o in objectives:
        if o.metric not in ("accuracy", "latency_ms", "params", "test_accuracy"):
            raise LightnasError(f"NAS-Bench-201 has no metric {o.metric!r}")
    constraints = [parse_constraint(c) for c in args.constraint]
    if args.budget < 1:
        raise LightnasError("budget must be at least 1")
    if args.out and Path(args.out).exists() and not args.force:
        raise LightnasError(f"{args.out} exists (use --force to overwrite it)")
    seeds = list(range(1, args.seeds + 1)) if args.seeds else [args.seed]
    budgets = sorted({b for b in (25, 50, 60, 100, 150, 200, 250, args.budget) if b <= args.budget})
    scored = {d: [Objective("accuracy", "max"), Objective(f"latency_ms@{d}", "min")] for d in devices}
    if len(devices) == 1:
        scored = {devices[0]: objectives}
    per_seed = []
    for seed in seeds:
        t0 = time.perf_counter()
        trials, search_s, known_s = nb201.run_search(
            args.device, args.strategy, args.budget, seed, None if len(devices) > 1 else objectives, constraints
        )
        wall = time.perf_counter() - t0
        scores = {d: score(trials, d, objs, constraints, budgets) for d, objs in scored.items()}
        per_seed.append((scores, search_s, wall, known_s))
        if args.out and seed == seeds[0]:
            _write_csv(trials, devices, Path(args.out))
    if args.seeds or not args.out:
        _print_scores(args, seeds, objectives if len(devices) == 1 else None, constraints, budgets, per_seed)
    sys.stdout.flush()
    return 0


def _print_scores(
    args: argparse.Namespace,
    seeds: list[int],
    objectives: list[Objective] | None,
    constraints: list,
    budgets: list[int],
    per_seed: list,
) -> None:
    """Median HV regret and share of the true Pareto set found, per device and budget."""
    if objectives:
        objs = ", ".join(f"{o.metric}:{o.direction}" for o in objectives)
    else:
        objs = "accuracy and latency per device"
    print(
        f"NAS-Bench-201 {args.device}, strategy {args.strategy}, seeds {seeds[0]}-{seeds[-1]}, objectives {objs}"
        + (f", constraints {', '.join(map(str, constraints))}" if constraints else "")
    )
    print(f"{'device':<12} {'budget':>6} {'median HV regret':>17} {'min':>8} {'max':>8} {'Pareto set found':>17}")
    for d in per_seed[0][0]:
        for b in budgets:
            reg = np.array([s[0][d][b][0] for s in per_seed])
            found = np.array([s[0][d][b][1] for s in per_seed])
            print(
                f"{d:<12} {b:>6} {np.median(reg):>17.5f} {reg.min():>8.5f} {reg.max():>8.5f} {np.median(found):>16.0%}"
            )
    print(
        f"search-side seconds per run (median): {np.median([s[1] for s in per_seed]):.2f}; "
        f"known metrics (table, features, proxies): {np.median([s[3] for s in per_seed]):.2f}; "
        f"wall seconds per run: {np.median([s[2] for s in per_seed]):.2f}"
    )


def _write_csv(trials: list, devices: list[str], path: Path) -> None:
    # imported by the command that runs: the parser starts in 0.3 s (torch alone: 2 s)
    from lightnas.bench import nb201

    table = nb201.load_table()
    lat = ["latency_ms"] if len(devices) == 1 else [f"latency_ms@{d}" for d in devices]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        lat_cols = [f"lat_{d}" for d in devices]
        w.writerow(["eval", "arch", "cellstr_key", "c10valid_valid_200ep", *lat_cols, "params", "feasible"])
        for i, t in enumerate([t for t in trials if t.status == "ok"], start=1):
            row = table.row_of(t.arch)
            w.writerow(
                [i, int(table.arch[row]), t.arch.key, t.metrics["accuracy"], *[t.metrics[k] for k in lat]]
                + [int(t.metrics["params"]), int(t.feasible)]
            )
