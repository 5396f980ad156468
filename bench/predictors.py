"""Predictor rank quality (Kendall tau on 3,000 held-out
NAS-Bench-201 cells) against training-set size, for accuracy and latency.

    python bench/predictors.py [--device pixel3] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from scipy.stats import kendalltau

from lightnas.bench import nb201
from lightnas.predictors import PREDICTORS, create_predictor


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="pixel3")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sizes", default="25,50,100,250")
    args = ap.parse_args()
    table = nb201.load_table()
    X = nb201.SPACE.features_from_codes(table.codes)
    targets = {"accuracy": table.columns["c10valid_valid_200ep"], "latency": table.columns[f"lat_{args.device}"]}
    print(f"{'predictor':<10} {'n':>4} {'tau accuracy':>13} {'tau latency':>12} {'fit+predict s':>14}")
    for name in PREDICTORS.names():
        for n in [int(v) for v in args.sizes.split(",")]:
            taus = {k: [] for k in targets}
            secs = []
            for rep in range(args.repeats):
                idx = np.random.default_rng(rep).permutation(len(X))
                tr, te = idx[:n], idx[n : n + 3000]
                for k, y in targets.items():
                    t0 = time.perf_counter()
                    pred = create_predictor(name).fit(X[tr], y[tr]).predict(X[te])[0]
                    secs.append(time.perf_counter() - t0)
                    taus[k].append(kendalltau(pred, y[te])[0])
            print(
                f"{name:<10} {n:>4} {np.median(taus['accuracy']):>13.3f} {np.median(taus['latency']):>12.3f} "
                f"{np.median(secs):>14.3f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
