"""Rebuild src/lightnas/data/files/fashion_mnist_subset.npz from Debian's
dataset-fashion-mnist (``apt-get install dataset-fashion-mnist``).

The subset: 1,500 training images per class (15,000, stratified, seed 0) and
the complete official test set (10,000), as uint8 28x28 arrays.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from lightnas.data.sources import read_idx_pair

SRC = Path("/usr/share/datasets/fashion-mnist")
OUT = Path(__file__).resolve().parents[1] / "src/lightnas/data/files/fashion_mnist_subset.npz"
PER_CLASS = 1500


def main() -> int:
    x, y = read_idx_pair(SRC, "train")
    xt, yt = read_idx_pair(SRC, "t10k")
    rng = np.random.default_rng(0)
    keep = np.sort(np.concatenate([rng.choice(np.flatnonzero(y == c), PER_CLASS, replace=False) for c in range(10)]))
    np.savez_compressed(OUT, x_train=x[keep], y_train=y[keep], x_test=xt, y_test=yt, train_index=keep)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
