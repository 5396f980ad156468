"""Issue-4 figures: does inherited accuracy match stand-alone training?

Trains the super-network once (recipe ``--recipe``), picks ``--n-subnets``
sub-networks spread over the MAC range (smallest and largest included),
then trains each of them alone from scratch with the same data, schedule and
epochs, and compares test accuracies: Kendall tau, Spearman rho, mean and
worst gap (stand-alone minus inherited, points), and the training cost of
the super-network against training the sub-networks one by one.

    python bench/fidelity.py [--quick] [--json] [--recipe warmup-sandwich] [--epochs 6]

``--quick`` (digits, 1 epoch, 4 sub-networks) is a smoke test, not a figure.
With ``--json`` the last line is a JSON object with kendall_tau, spearman,
mean_gap, worst_gap, n_subnets (and more).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import kendalltau, spearmanr


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--data", default=None)
    ap.add_argument("--recipe", default="warmup-sandwich")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--n-subnets", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    data_name = args.data or ("digits" if args.quick else "fashion-mnist")
    epochs = args.epochs or (1 if args.quick else 6)
    n_sub = args.n_subnets or (4 if args.quick else 12)

    from lightnas.data import load_dataset
    from lightnas.supernets.mobilenet import MobileNetConfig
    from lightnas.train.common import accuracy, recalibrate_bn, setup_torch, to_tensor
    from lightnas.train.trainer import TrainConfig, load_supernet, train_supernet

    setup_torch()
    data = load_dataset(data_name, args.seed)
    cfg = MobileNetConfig(input_shape=data.input_shape, n_classes=data.n_classes).to_dict()
    tc = TrainConfig(epochs=epochs, batch_size=128, seed=args.seed, recipe=args.recipe)
    x_test, y_test = to_tensor(data.x_test, data), torch.from_numpy(data.y_test)
    x_cal = to_tensor(data.x_train[:1024], data)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        train_supernet("mobilenet", cfg, data, tc, Path(tmp) / "super.pt", resume=False, progress=False)
        super_s = time.perf_counter() - t0
        net, _ = load_supernet(Path(tmp) / "super.pt")
        from lightnas.hardware import count_cost

        rng = np.random.default_rng(args.seed)
        pool = [net.space.sample(rng) for _ in range(400)]
        macs = np.array([count_cost(net.extract(a), data.input_shape)["macs"] for a in pool])
        order = np.argsort(macs)
        picks = [net.space.smallest(), net.space.largest()]
        picks += [pool[order[int(q * (len(pool) - 1))]] for q in np.linspace(0.05, 0.95, n_sub - 2)]
        rows = []
        for arch in picks:
            net.set_active(arch)
            recalibrate_bn(net, x_cal)
            inherited = accuracy(net, x_test, y_test)
            t1 = time.perf_counter()
            train_supernet(
                "mobilenet", cfg, data, tc, Path(tmp) / "alone.pt", resume=False, progress=False, only=dict(arch)
            )
            alone_s = time.perf_counter() - t1
            solo, _ = load_supernet(Path(tmp) / "alone.pt")
            solo.set_active(arch)
            recalibrate_bn(solo, x_cal)
            standalone = accuracy(solo, x_test, y_test)
            cost = count_cost(net.extract(arch), data.input_shape)
            rows.append(
                {
                    "key": arch.key,
                    "macs": cost["macs"],
                    "inherited": inherited,
                    "standalone": standalone,
                    "train_seconds": alone_s,
                }
            )
            if not args.json:
                print(
                    f"{cost['macs']:>10.0f} MACs  inherited {inherited:6.2f}%  stand-alone {standalone:6.2f}%  "
                    f"({alone_s:.0f} s)",
                    flush=True,
                )
    inh = np.array([r["inherited"] for r in rows])
    alone = np.array([r["standalone"] for r in rows])
    gap = alone - inh
    result = {
        "kendall_tau": float(kendalltau(inh, alone)[0]),
        "spearman": float(spearmanr(inh, alone)[0]),
        "mean_gap": float(gap.mean()),
        "worst_gap": float(gap.max()),
        "largest_gap": float(gap[1]),
        "n_subnets": len(rows),
        "recipe": args.recipe,
        "epochs": epochs,
        "data": data_name,
        "supernet_train_seconds": round(super_s, 1),
        "standalone_train_seconds_total": round(sum(r["train_seconds"] for r in rows), 1),
        "rows": rows,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"Kendall tau {result['kendall_tau']:.3f}  Spearman {result['spearman']:.3f}  mean gap "
            f"{result['mean_gap']:+.2f} pts  worst gap {result['worst_gap']:+.2f} pts  largest "
            f"{result['largest_gap']:+.2f} pts"
        )
        print(
            f"super-network training {super_s:.0f} s vs {result['standalone_train_seconds_total']:.0f} s "
            f"for the {len(rows)} sub-networks trained one by one"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
