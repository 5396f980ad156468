"""Distributed super-network training: 2 gloo processes against 1, same global batch.

Trains the default MobileNet super-network for ``--epochs`` epochs on the
embedded Fashion-MNIST twice with the same seed and global batch, once in one
process and once in ``--nproc`` processes (``lightnas.train.distributed``,
gloo, ``--threads`` threads each; the one-process run gets the same total), and
prints the largest sub-network's validation accuracy of each, their
difference, the relative L2 distance of the weights, and the wall times.

    python bench/scale.py --epochs 1 --nproc 2 --json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="threads of each process")
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from lightnas.artefacts import TrainJob
    from lightnas.config import TrainConfig
    from lightnas.data import load_dataset
    from lightnas.supernets import create_supernet
    from lightnas.train.checkpoint import read_checkpoint
    from lightnas.train.distributed import DistributedJob, train_distributed
    from lightnas.train.trainer import train_supernet

    data = load_dataset(args.data, 0)
    netcfg = create_supernet("mobilenet", data.input_shape, data.n_classes).config.to_dict()
    cfg = TrainConfig(epochs=args.epochs)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        job = TrainJob("mobilenet", netcfg, cfg, threads=args.threads * args.nproc)
        one = train_supernet(job, data, Path(tmp) / "one.pt", progress=False)
        t1 = time.perf_counter() - t0
        run = DistributedJob(
            dataclasses.replace(job, threads=args.threads), args.data, 0, Path(tmp) / "many.pt", progress=False
        )
        t0 = time.perf_counter()
        train_distributed(args.nproc, run)
        t2 = time.perf_counter() - t0
        many = read_checkpoint(Path(tmp) / "many.pt")
    keys = [k for k, v in one.state_dict.items() if v.is_floating_point()]
    diff = sum(float((one.state_dict[k] - many.state_dict[k]).double().norm() ** 2) for k in keys) ** 0.5
    norm = sum(float(one.state_dict[k].double().norm() ** 2) for k in keys) ** 0.5
    result = {
        "epochs": args.epochs,
        "nproc": args.nproc,
        "val_largest_one": one.history[-1]["val_largest"],
        "val_largest_many": many.history[-1]["val_largest"],
        "val_difference": many.history[-1]["val_largest"] - one.history[-1]["val_largest"],
        "weights_relative_l2": diff / norm,
        "wall_one_s": round(t1, 1),
        "wall_many_s": round(t2, 1),
    }
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
