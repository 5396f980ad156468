"""How stable is a latency measurement on this machine over minutes?

Measures the same random sub-networks of the default space in ``--passes``
interleaved passes (each ``measure_many`` over ``--window`` seconds, the
10th-percentile statistic lightnas uses) and prints, per pass, the median and
10th/90th percentiles of each sub-network's ratio to its first pass and the
share within ±10% of it. A drift common to every sub-network (all ratios
together) is the machine or the runtime, not the model; it bounds how well a
latency table built at one time can match measurements taken at another.

    python bench/latency_drift.py [--backend torch] [--n 50] [--passes 5] [--window 20]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", default="torch")
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--passes", type=int, default=5)
    ap.add_argument("--window", type=float, default=20.0)
    args = ap.parse_args()

    from lightnas.hardware.latency import measure_many
    from lightnas.supernets import create_supernet
    from lightnas.tensors import setup_torch

    setup_torch(1)
    net = create_supernet("mobilenet")
    rng = np.random.default_rng(11)
    archs = list(dict.fromkeys(net.space.sample(rng) for _ in range(args.n)))
    items = [(net.extract(a), tuple(net.config.input_shape)) for a in archs]
    first = None
    for k in range(args.passes):
        v = np.array(measure_many(items, args.backend, 1, seed=k, min_seconds=args.window))
        first = v if first is None else first
        r = v / first
        lo, hi = np.percentile(r, [10, 90])
        print(
            f"[{args.backend}] pass {k}: ratio to pass 0 median {np.median(r):.3f} (p10 {lo:.3f}, p90 {hi:.3f}), "
            f"{np.mean(np.abs(r - 1) <= 0.1):.0%} within ±10%",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
