"""Predictor quality on NAS-Bench-201 against training-set size, per input set.

For each input set (the encoding alone; with GRAF features; with zero-cost
proxies; with both) and each predictor: Kendall tau of predicted vs true
validation accuracy on 3,000 held-out cells, the precision of the predicted
top 10% (share of the predicted top 10% that is truly in the top 10%), and
tau within the true top 10% (how well the best are ordered among
themselves). Median over ``--repeats`` random training sets.

    python bench/predictors.py [--repeats 3] [--sizes 25,50,100,250]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from scipy.stats import kendalltau

from lightnas.bench import nb201
from lightnas.predictors import create_predictor
from lightnas.search.inputs import input_columns


def input_sets() -> dict[str, np.ndarray]:
    table = nb201.load_table()
    enc = nb201.SPACE.features_from_codes(table.codes)
    d = nb201.descriptors()
    graf = {k: v for k, v in d.items() if k.startswith("graf_")}
    zc = {k: v for k, v in d.items() if k.startswith("zc_")}
    n = len(enc)
    return {
        "encoding": enc,
        "+graf": np.hstack([enc, input_columns(graf, n)]),
        "+proxies": np.hstack([enc, input_columns(zc, n)]),
        "+graf+proxies": np.hstack([enc, input_columns({**graf, **zc}, n)]),
    }


def scores(pred: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """(tau, top-10% precision, tau within the true top 10%); higher y is better."""
    k = len(y) // 10
    true_top, pred_top = np.argsort(-y)[:k], np.argsort(-pred)[:k]
    return (
        float(kendalltau(pred, y)[0]),
        len(set(true_top) & set(pred_top)) / k,
        float(kendalltau(pred[true_top], y[true_top])[0]),
    )


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sizes", default="25,50,100,250")
    ap.add_argument("--predictors", default="trees,ensemble,gp,pairwise,ridge")
    args = ap.parse_args()
    y = nb201.load_table().columns["c10valid_valid_200ep"]
    print(f"{'inputs':<14} {'predictor':<9} {'n':>4} {'tau':>6} {'top10% prec':>11} {'tau top10%':>10} {'fit s':>6}")
    for label, X in input_sets().items():
        for name in args.predictors.split(","):
            for n in [int(v) for v in args.sizes.split(",")]:
                rows, secs = [], []
                for rep in range(args.repeats):
                    idx = np.random.default_rng(rep).permutation(len(X))
                    tr, te = idx[:n], idx[n : n + 3000]
                    t0 = time.perf_counter()
                    # minimisation form, as the search fits it
                    pred = -create_predictor(name).fit(X[tr], -y[tr]).predict(X[te])[0]
                    secs.append(time.perf_counter() - t0)
                    rows.append(scores(pred, y[te]))
                tau, prec, top = np.median(np.array(rows), axis=0)
                print(
                    f"{label:<14} {name:<9} {n:>4} {tau:>6.3f} {prec:>11.0%} {top:>10.3f} {np.median(secs):>6.2f}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
