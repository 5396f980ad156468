"""Zero-cost proxies on lightnas's own super-network: do they rank its
sub-networks like their inherited accuracy does?

Reads a finished run (``lightnas run --out DIR``), takes every evaluated
sub-network with its inherited validation accuracy from the run's store,
computes each proxy of ``lightnas.proxies`` on the extracted plain
sub-network from one mini-batch of the run's training images (seed 0,
re-initialised weights as zero-cost proxies define them, and the inherited
weights with ``--inherited``), and prints each proxy's Spearman and Kendall
rank correlation with the inherited accuracy and its median milliseconds per
sub-network (1 thread).

    python bench/proxies.py DIR [--batch 64] [--limit 60] [--inherited]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau, spearmanr


def main() -> int:
    import torch

    from lightnas.config import RunConfig
    from lightnas.context import trained
    from lightnas.proxies import PROXIES, compute_proxies
    from lightnas.reporting.run import load_run
    from lightnas.tensors import split_tensors

    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--limit", type=int, default=60)
    ap.add_argument("--inherited", action="store_true", help="score the inherited weights (no re-initialisation)")
    args = ap.parse_args()
    cfg = RunConfig.from_file(args.run / "config.json")
    net, _, data = trained(args.run, cfg)
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    x, y = split_tensors(data, "train", torch.device("cpu"), args.batch)
    view = load_run(args.run, cfg, with_parts=False)
    evals = view.evaluations[: args.limit]
    acc = np.array([e.metrics["accuracy"] for e in evals])
    scores = {p: [] for p in PROXIES}
    ms = {p: [] for p in PROXIES}
    for e in evals:
        plain = net.extract(net.space.make(e.arch))
        for p in PROXIES:
            t0 = time.perf_counter()
            scores[p].append(compute_proxies(plain, x, y, names=(p,), reinit=not args.inherited)[p])
            ms[p].append(1000 * (time.perf_counter() - t0))
    weights = "inherited" if args.inherited else "re-initialised (seed 0)"
    print(f"{len(evals)} sub-networks of {args.run}, {args.batch} training images, {weights} weights")
    print(f"{'proxy':<10} {'Spearman':>9} {'Kendall':>8} {'ms each':>8}")
    for p in PROXIES:
        s = np.array(scores[p])
        rho, tau = spearmanr(s, acc)[0], kendalltau(s, acc)[0]
        print(f"{p:<10} {rho:>9.3f} {tau:>8.3f} {statistics.median(ms[p]):>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
