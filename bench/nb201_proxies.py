"""Zero-cost proxies of every NAS-Bench-201 cell, packaged with lightnas.

Computes ``synflow`` (data-independent: no CIFAR-10 images are needed) on the
PyTorch cell network of each of the 15,625 cells (``lightnas.bench.nb201_net``,
seed 0, 1 thread) and writes ``src/lightnas/bench/data/nb201_proxies.csv.gz``
with NASWOT from the NAS-Bench-201 table beside it (``naswot``, BayesWatch,
computed on CIFAR-10). Prints the seconds per cell and the rank agreement with
NASLib's published synflow, params and FLOPs for the cells of
``nb201_zc_proxies.csv``.

    python bench/nb201_proxies.py --table ../shared/bench-data/nb201.csv \
        --naslib ../shared/bench-data/nb201_zc_proxies.csv [--workers 2]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

OUT = Path(__file__).resolve().parents[1] / "src" / "lightnas" / "bench" / "data" / "nb201_proxies.csv.gz"


def _synflow(cells: list[tuple[int, ...]]) -> list[tuple[float, float]]:
    import torch

    from lightnas.bench import nb201_net
    from lightnas.proxies import compute_proxies

    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    x, y = torch.zeros(1, 3, 32, 32), torch.zeros(1, dtype=torch.long)
    out = []
    for code in cells:
        p = compute_proxies(nb201_net.build(code), x, y, names=("synflow", "params"), seed=0)
        out.append((p["synflow"], p["params"]))
    return out


def main() -> int:
    from lightnas.bench.nb201 import parse_cellstr

    ap = argparse.ArgumentParser()
    ap.add_argument("--table", required=True)
    ap.add_argument("--naslib", required=True)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--limit", type=int, default=None, help="first N cells only (a quick check)")
    args = ap.parse_args()
    with open(args.table) as fh:
        table = list(csv.DictReader(fh))[: args.limit]
    cells = [parse_cellstr(r["cellstr"]) for r in table]
    chunks = [cells[i :: args.workers * 8] for i in range(args.workers * 8)]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        parts = list(pool.map(_synflow, chunks))
    seconds = time.perf_counter() - t0
    score = {}
    for i, part in enumerate(parts):
        for j, v in enumerate(part):
            score[cells[i + j * len(chunks)]] = v
    print(
        f"{len(cells)} cells, {seconds:.0f} s on {args.workers} worker(s): "
        f"{1000 * seconds * args.workers / len(cells):.0f} ms per cell on 1 thread"
    )
    if args.limit is None:
        tmp = OUT.with_suffix(".tmp")
        with gzip.open(tmp, "wt", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["arch", "synflow", "naswot"])
            for r, code in zip(table, cells, strict=True):
                w.writerow([r["arch"], f"{score[code][0]:.6f}", r["naswot_v1_score"]])
        os.replace(tmp, OUT)
        print(f"wrote {OUT}")
    with open(args.naslib) as fh:
        ref = [
            r
            for r in csv.DictReader(fh)
            if r["dataset"] == "cifar10" and parse_cellstr(r["cellstr"]) in score and r["synflow"] and r["params"]
        ]
    if ref:
        ours = np.array([score[parse_cellstr(r["cellstr"])] for r in ref])
        for k, (name, col) in enumerate((("synflow", "synflow"), ("params", "params"))):
            rho = spearmanr(ours[:, k], [float(r[col]) for r in ref])[0]
            print(f"Spearman vs NASLib {name}: {rho:.4f} over {len(ref)} cells")
    return 0


if __name__ == "__main__":
    sys.exit(main())
