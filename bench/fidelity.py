"""Issue-4 figures: does inherited accuracy match stand-alone training?

Picks ``--n-subnets`` sub-networks spread over the MAC range (smallest and
largest included), trains each of them alone from scratch with the same data,
schedule and epochs as the super-network, then for every training variant
trains the super-network once and compares test accuracies: Kendall tau,
Spearman rho, mean and worst gap (stand-alone minus inherited, points), the
largest sub-network's gap, the same at several BatchNorm-recalibration sample
sizes, and the training cost of the super-network against training the
sub-networks one by one.

    python bench/fidelity.py [--quick] [--json] [--variants warmup-sandwich,sandwich,progressive,sorted]
                             [--epochs 8] [--cache fidelity-standalone.json] [--alone-seeds 0,1]
                             [--threads N]

A variant is a recipe name, optionally with ``@N`` for N random sub-networks
per step besides the largest and smallest (``warmup-sandwich@2``) and ``:E``
for a super-network trained E epochs instead of ``--epochs`` (``sandwich:16``;
the stand-alone runs keep ``--epochs``, and the training-cost figures say
what that costs), then any ``+field=value`` of :class:`TrainConfig`
(``sandwich+project_conflicts=false``, ``sandwich+student_label_weight=0.5``).
Stand-alone results are kept in ``--cache`` (written after
each one, re-read before each one, so processes can share it): comparing
more variants later costs only their super-network training; ``--variants
''`` trains only the stand-alone runs. ``--alone-seeds 0,1`` trains every
stand-alone run with both seeds: the reference is their mean, and the two
seeds against each other give the figures that no super-network can beat on
this budget. ``--quick`` (digits, 1 epoch, 4 sub-networks) is a smoke test,
not a figure. With ``--json`` the progress goes to stderr and the last line
of stdout is a JSON object with kendall_tau, spearman, mean_gap, worst_gap,
n_subnets (of the first variant) and every variant's figures under
``variants``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import kendalltau, spearmanr

CALIB_SIZES = (256, 1024, 4096)
STANDALONE_CALIB = 1024  # the stand-alone networks' BatchNorm (the cached results were calibrated so)


def figures(inherited: np.ndarray, alone: np.ndarray) -> dict[str, float]:
    gap = alone - inherited
    return {
        "kendall_tau": float(kendalltau(inherited, alone)[0]),
        "spearman": float(spearmanr(inherited, alone)[0]),
        "mean_gap": float(gap.mean()),
        "worst_gap": float(gap.max()),
        "largest_gap": float(gap[1]),  # picks[1] is the largest sub-network
    }


def variant_config(variant: str, epochs: int, seed: int) -> Any:
    """``recipe[@N][:E][+field=value...]`` -> the super-network's TrainConfig."""
    from lightnas.train.trainer import TrainConfig

    head, *overrides = variant.split("+")
    rest, _, super_epochs = head.partition(":")
    recipe, _, n_random = rest.partition("@")
    fields = {f.name: f.type for f in dataclasses.fields(TrainConfig)}  # type names (postponed annotations)
    parse = {"bool": lambda v: v.lower() in ("1", "true"), "int": int, "float": float}
    kw: dict[str, Any] = {}
    for item in overrides:
        name, _, value = item.partition("=")
        if name not in fields:
            raise SystemExit(f"unknown TrainConfig field {name!r} in variant {variant!r}")
        kw[name] = parse.get(str(fields[name]), str)(value)
    return TrainConfig(epochs=int(super_epochs or epochs), seed=seed, recipe=recipe, n_random=int(n_random or 1), **kw)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--data", default=None)
    ap.add_argument("--variants", default="sandwich")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--n-subnets", type=int, default=None)
    ap.add_argument("--cache", default=None, help="JSON file keeping the stand-alone results")
    ap.add_argument("--seed", type=int, default=0, help="data split, sub-network sample and training seed")
    ap.add_argument(
        "--alone-seeds",
        default=None,
        help="training seeds of the stand-alone runs (default: --seed); with two or more, the reference is "
        "their mean and the stand-alone runs are also compared with each other (the noise ceiling)",
    )
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    args = ap.parse_args()

    from lightnas.data import load_dataset
    from lightnas.hardware import count_cost
    from lightnas.io import write_json
    from lightnas.supernets import supernet_from_config
    from lightnas.supernets.mobilenet import MobileNetConfig
    from lightnas.train.common import CALIB_IMAGES, accuracy, recalibrate_bn, setup_torch, to_tensor
    from lightnas.train.trainer import TrainConfig, load_supernet, train_supernet

    data_name = args.data or ("digits" if args.quick else "fashion-mnist")
    epochs = args.epochs or (1 if args.quick else TrainConfig().epochs)
    n_sub = args.n_subnets or (4 if args.quick else 12)
    setup_torch(args.threads)
    variants = [v for v in args.variants.split(",") if v]  # none: only the stand-alone baselines
    alone_seeds = [int(v) for v in args.alone_seeds.split(",")] if args.alone_seeds else [args.seed]
    data = load_dataset(data_name, args.seed)
    cfg = MobileNetConfig(input_shape=data.input_shape, n_classes=data.n_classes).to_dict()
    x_test, y_test = to_tensor(data.x_test, data), torch.from_numpy(data.y_test)
    x_cal = to_tensor(data.x_train[: max(CALIB_SIZES)], data)
    out = sys.stderr if args.json else sys.stdout  # with --json, stdout carries only the JSON line
    say = lambda *a: print(*a, file=out, flush=True)  # noqa: E731

    # the sub-networks: spread over MACs, chosen before any training
    space_net = supernet_from_config("mobilenet", cfg)
    rng = np.random.default_rng(args.seed)
    pool = [space_net.space.sample(rng) for _ in range(400)]
    macs = np.array([count_cost(space_net.extract(a), data.input_shape)["macs"] for a in pool])
    order = np.argsort(macs)
    picks = [space_net.space.smallest(), space_net.space.largest()]
    picks += [pool[order[int(q * (len(pool) - 1))]] for q in np.linspace(0.05, 0.95, n_sub - 2)]

    # stand-alone baselines (cached)
    cache_path = Path(args.cache) if args.cache else None

    def read_cache() -> dict[str, dict[str, float]]:
        return json.loads(cache_path.read_text()) if cache_path and cache_path.is_file() else {}

    cache = read_cache()
    inherited: dict[str, dict[int, list[float]]] = {}
    super_seconds: dict[str, float] = {}
    alone: list[float] = []  # mean over the stand-alone seeds
    alone_runs: list[list[float]] = []
    alone_s: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        # every variant's super-network first: the running figures below then
        # cover every variant from the first stand-alone result on
        for variant in variants:
            tc = variant_config(variant, epochs, args.seed)
            t0 = time.perf_counter()
            ckpt = Path(tmp) / "super.pt"
            train_supernet("mobilenet", cfg, data, tc, ckpt, resume=False, progress=False, threads=args.threads)
            super_seconds[variant] = time.perf_counter() - t0
            net, _ = load_supernet(ckpt)
            inherited[variant] = {n: [] for n in CALIB_SIZES}
            for arch in picks:
                net.set_active(arch)
                for n in CALIB_SIZES:
                    recalibrate_bn(net, x_cal[:n])
                    inherited[variant][n].append(accuracy(net, x_test, y_test))
            say(
                f"super-network {variant}: {super_seconds[variant]:.0f} s; inherited "
                + " ".join(f"{a:.2f}" for a in inherited[variant][CALIB_IMAGES])
            )
        # stand-alone baselines (cached), with running figures
        for k, arch in enumerate(picks):
            runs = []
            for train_seed in alone_seeds:
                tag = f"{data_name}|{epochs}|{args.seed}|{arch.key}"
                tag += "" if train_seed == args.seed else f"|train-seed{train_seed}"
                cache.update(read_cache())  # another process may share the cache
                if tag not in cache:
                    # a plain network trained alone: PyTorch's default initialisation
                    tc = TrainConfig(epochs=epochs, seed=train_seed, zero_init_residual=False)
                    t1 = time.perf_counter()
                    ckpt = Path(tmp) / "alone.pt"
                    train_supernet(
                        "mobilenet",
                        cfg,
                        data,
                        tc,
                        ckpt,
                        resume=False,
                        progress=False,
                        threads=args.threads,
                        only=dict(arch),
                    )
                    seconds = time.perf_counter() - t1
                    solo, _ = load_supernet(ckpt)
                    solo.set_active(arch)
                    recalibrate_bn(solo, x_cal[:STANDALONE_CALIB])
                    result = {"accuracy": accuracy(solo, x_test, y_test), "seconds": seconds}
                    cache = {**read_cache(), **cache, tag: result}
                    if cache_path:
                        write_json(cache, cache_path)
                runs.append(cache[tag])
            alone_runs.append([r["accuracy"] for r in runs])
            alone.append(float(np.mean(alone_runs[-1])))
            alone_s.append(runs[0]["seconds"])
            mac = count_cost(space_net.extract(arch), data.input_shape)["macs"]
            say(
                f"stand-alone {mac:>10.0f} MACs  {alone[-1]:6.2f}%  ({alone_s[-1]:.0f} s)   inherited "
                + "  ".join(f"{v}: {inh[CALIB_IMAGES][k]:.2f}%" for v, inh in inherited.items())
            )
    alone_arr = np.array(alone)
    results = []
    for variant, inh in inherited.items():
        res = {
            "variant": variant,
            **figures(np.array(inh[CALIB_IMAGES]), alone_arr),
            "calib_sizes": {str(n): figures(np.array(v), alone_arr) for n, v in inh.items()},
            "supernet_train_seconds": round(super_seconds[variant], 1),
            "rows": [
                {"key": a.key, "inherited": i, "standalone": s}
                for a, i, s in zip(picks, inh[CALIB_IMAGES], alone, strict=True)
            ],
        }
        results.append(res)
        say(
            f"{variant:<20} tau {res['kendall_tau']:.3f}  rho {res['spearman']:.3f}  mean gap "
            f"{res['mean_gap']:+.2f}  worst {res['worst_gap']:+.2f}  largest {res['largest_gap']:+.2f} pts  "
            f"(super-network {res['supernet_train_seconds']:.0f} s)   BN calib "
            + "  ".join(
                f"{n}: tau {f['kendall_tau']:.2f} gap {f['mean_gap']:+.2f}" for n, f in res["calib_sizes"].items()
            )
        )
    if len(alone_seeds) > 1:  # the stand-alone runs against each other: what no super-network can beat
        runs = np.array(alone_runs)
        ceiling = figures(runs[:, 1], runs[:, 0])
        say(
            f"stand-alone seed {alone_seeds[0]} vs seed {alone_seeds[1]}: tau {ceiling['kendall_tau']:.3f}  "
            f"rho {ceiling['spearman']:.3f}  mean |difference| {np.abs(runs[:, 0] - runs[:, 1]).mean():.2f} pts"
        )
    first = results[0] if results else {}
    summary = {
        **{k: first.get(k) for k in ("kendall_tau", "spearman", "mean_gap", "worst_gap", "largest_gap")},
        "n_subnets": len(picks),
        "epochs": epochs,
        "data": data_name,
        "supernet_train_seconds": first.get("supernet_train_seconds"),
        "standalone_train_seconds_total": round(sum(alone_s), 1),
        "alone_seeds": alone_seeds,
        **({"standalone_seed_agreement": ceiling} if len(alone_seeds) > 1 else {}),
        "variants": results,
    }
    if args.json:
        print(json.dumps(summary))
    elif results:
        say(
            f"training cost: super-network {first['supernet_train_seconds']:.0f} s vs "
            f"{summary['standalone_train_seconds_total']:.0f} s for the {len(picks)} sub-networks trained one by one"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
