"""Accuracy evaluations on a local Ray cluster: throughput of 2 workers
against 1, and a 60-evaluation search with one worker killed by SIGKILL.

Needs a finished run (the default: ``lightnas run`` -> ./lightnas-run).

1. ``--archs`` distinct sub-networks (seeded) evaluated by
   ``lightnas.evaluate.ray_pool.RayPool`` with 1 worker, then with
   ``--workers`` workers, one thread each, timed from the moment every worker
   has loaded the super-network and the data; the accuracies must be equal.
2. ``lightnas search --executor ray --latency lut`` on copies of the run
   without their evaluations, budget 40, with 1 and ``--workers`` workers
   under each ``--schedule`` (batch, async), timed end to end (Ray's start
   and the workers' loading included).
3. The same with budget 60 where, after ``--kill-after`` seconds, one
   worker process gets SIGKILL. The store must hold 60 evaluations, none twice.

    python bench/ray_scale.py lightnas-run --json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def throughput(run: Path, workers: int, archs: list) -> tuple[float, list[float]]:
    """Seconds to evaluate ``archs`` on ``workers`` Ray workers, and their accuracies."""
    from lightnas.config import RunConfig
    from lightnas.context import worker_evaluator
    from lightnas.evaluate.ray_pool import RayPool
    from lightnas.pipeline import METRIC

    cfg = RunConfig.from_file(run / "config.json")
    pool = RayPool(None, run, cfg, worker_evaluator, workers=workers)  # type: ignore[arg-type]
    try:
        pool.pids()  # every worker has loaded the super-network and the data
        t0 = time.perf_counter()
        acc = dict((i, m[METRIC]) for i, m, _ in pool.evaluate_many(archs))
        return time.perf_counter() - t0, [acc[i] for i in range(len(archs))]
    finally:
        pool.close()


def search(run: Path, workers: int, schedule: str, budget: int, kill_after: float | None = None) -> dict:
    """``lightnas search`` with ``--executor ray`` on a copy of ``run``
    without its evaluations (latency from the run's lookup table), one
    worker killed by SIGKILL after ``kill_after`` seconds if given."""
    from lightnas.config import RunConfig
    from lightnas.store import OK, Store

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        shutil.copytree(run, out, ignore=shutil.ignore_patterns("lightnas.db*", "models", "report.html"))
        killed: list[int] = []

        def kill() -> None:
            time.sleep(kill_after)  # type: ignore[arg-type]
            pids = subprocess.run(["pgrep", "-f", "ray::Worker"], capture_output=True, text=True).stdout.split()
            if pids:
                os.kill(int(pids[0]), signal.SIGKILL)
                killed.append(int(pids[0]))

        if kill_after is not None:
            threading.Thread(target=kill, daemon=True).start()
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "lightnas.cli", "search", str(out), "--budget", str(budget), "--quiet"]
        cmd += ["--executor", "ray", "--workers", str(workers), "--schedule", schedule, "--latency", "lut"]
        res = subprocess.run(cmd, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        cfg = RunConfig.from_file(out / "config.json")
        with Store(out / "lightnas.db") as store:
            keys = [r.arch_key for r in store.records(cfg.study(), OK)]
    return {
        "schedule": schedule,
        "workers": workers,
        "exit": res.returncode,
        "stderr": res.stderr.strip().splitlines()[-1:] if res.returncode else [],
        "killed_pid": killed,
        "rows": len(keys),
        "duplicates": len(keys) - len(set(keys)),
        "seconds": round(seconds, 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", nargs="?", default="lightnas-run", help="a finished run folder")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--archs", type=int, default=40)
    ap.add_argument("--kill-after", type=float, default=20.0, help="seconds into the search")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    import numpy as np

    from lightnas.train.checkpoint import load_supernet

    run = Path(args.run)
    space = load_supernet(run / "supernet.pt")[0].space
    rng = np.random.default_rng(0)
    archs = list({a.key: a for a in (space.sample(rng) for _ in range(4 * args.archs))}.values())[: args.archs]
    one_s, one_acc = throughput(run, 1, archs)
    many_s, many_acc = throughput(run, args.workers, archs)
    result = {
        "archs": len(archs),
        "one_worker_s": round(one_s, 2),
        f"{args.workers}_workers_s": round(many_s, 2),
        "speedup": round(one_s / many_s, 2),
        "same_accuracies": one_acc == many_acc,
        "searches": [search(run, w, sched, 40) for sched in ("batch", "async") for w in (1, args.workers)],
        "killed_searches": [search(run, args.workers, sched, 60, args.kill_after) for sched in ("batch", "async")],
    }
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(
            f"{len(archs)} accuracy evaluations: 1 worker {one_s:.1f} s, {args.workers} workers {many_s:.1f} s, "
            f"{result['speedup']:.2f}x; same accuracies: {result['same_accuracies']}"
        )
        for k in result["searches"]:
            print(f"search of 40, {k['schedule']}, {k['workers']} worker(s): {k['seconds']} s, {k['rows']} rows")
        for k in result["killed_searches"]:
            print(
                f"search of 60, {k['schedule']}, a worker killed: exit {k['exit']}, {k['rows']} rows, "
                f"{k['duplicates']} duplicates"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
