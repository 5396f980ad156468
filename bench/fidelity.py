"""Super-network fidelity: do inherited accuracies match, and rank like, networks trained alone?

Three uses:

1. Recipes against stand-alone training on the same budget (default: the
   embedded Fashion-MNIST, the default run's epochs). 12 sub-networks (the
   smallest, the largest, 10 at the 5-95% MAC quantiles of 400 random ones)
   are trained alone from scratch with a plain recipe (``train_alone``: same
   data, epochs, batch, optimiser, schedule; no distillation, no students);
   every variant's super-network is trained once and its inherited test
   accuracies compared: Kendall tau, Spearman rho, mean and worst gap
   (stand-alone minus inherited, points), the largest's gap.

       python bench/fidelity.py --variants spread,sandwich --cache bench/results/fidelity-alone.json

2. Against the long-budget reference (``--reference``): the 12 sub-networks of
   ``bench/results/fidelity-reference-60k-20ep.json`` (trained alone on the
   full 60k Fashion-MNIST for 20 epochs, three seeds; see
   ``bench/fidelity_reference.py``), a super-network trained on the same data
   with the same epochs; tau against the mean of the reference's seeds and
   that tau as a share of the reference's own seed-to-seed tau (the ceiling).

       python bench/fidelity.py --reference bench/results/fidelity-reference-60k-20ep.json \\
           --data /usr/share/datasets/fashion-mnist --epochs 20 --variants sandwich --no-alone

   ``--checkpoint supernet.pt`` measures a super-network trained elsewhere
   (``lightnas train DIR --device cuda`` on a GPU) instead of training one.

3. A finished run (``--run DIR``): every exported model retrained alone from
   scratch with the run's data, epochs and plain recipe, against its exported
   test accuracy (``--models 3``: the smallest, median and largest by latency).

A variant is a recipe name with ``@N`` for N students per step drawn by the
sampler, ``:E`` for E super-network epochs, then any ``+field=value`` of
``TrainConfig`` or ``+net.field=value`` of the super-network's config
(``sandwich@1+net.kernel_transform=false``). With ``--json`` progress goes to
stderr and the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import typing
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import kendalltau, spearmanr

ROOT = Path(__file__).resolve().parents[1]


def figures(inherited: np.ndarray, alone: np.ndarray) -> dict[str, float]:
    gap = alone - inherited
    return {
        "kendall_tau": float(kendalltau(inherited, alone)[0]),
        "spearman": float(spearmanr(inherited, alone)[0]),
        "mean_gap": float(gap.mean()),
        "worst_gap": float(gap.max()),
        "largest_gap": float(gap[1]),  # picks[1] is the largest sub-network
    }


def variant_config(variant: str, epochs: int) -> tuple[Any, dict[str, Any]]:
    """``recipe[@N][:E][+field=value...]`` -> (TrainConfig, super-network options)."""
    from lightnas.config import TrainConfig

    head, *overrides = variant.split("+")
    rest, _, super_epochs = head.partition(":")
    recipe, _, n_random = rest.partition("@")
    kw: dict[str, Any] = {}
    net: dict[str, Any] = {}
    for item in overrides:
        name, _, value = item.partition("=")
        if name.startswith("net."):
            net[name[4:]] = json.loads(value) if value[:1] in "[{0123456789-tf" else value
            continue
        kw[name] = field_value(name, value)
    cfg = TrainConfig(epochs=int(super_epochs or epochs), recipe=recipe, n_random=int(n_random or 2), **kw)
    return cfg, net


def field_value(name: str, value: str) -> Any:
    """``value`` as ``TrainConfig.name`` takes it (an optional field: its type; a bool: true or 1)."""
    from lightnas.config import TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    if name not in hints:
        raise SystemExit(f"unknown TrainConfig field {name!r}")
    kind = next((t for t in typing.get_args(hints[name]) if t is not type(None)), hints[name])
    parse = {bool: lambda v: v.lower() in ("1", "true"), int: int, float: float}
    return parse.get(kind, str)(value)


def pick_archs(net: Any, data: Any, n: int, seed: int, reference: dict | None) -> list[Any]:
    """The sub-networks compared: the reference's, or spread over MACs."""
    from lightnas.hardware.cost import count_cost

    if reference is not None:
        return [net.space.from_key(r["key"]) for r in reference["nets"]]
    rng = np.random.default_rng(seed)
    pool = [net.space.sample(rng) for _ in range(400)]
    macs = np.array([count_cost(net.extract(a), data.input_shape)["macs"] for a in pool])
    order = np.argsort(macs)
    picks = [net.space.smallest(), net.space.largest()]
    return picks + [pool[order[int(q * (len(pool) - 1))]] for q in np.linspace(0.05, 0.95, n - 2)]


def test_accuracy(model: Any, data: Any, calibrate: bool) -> float:
    from lightnas.tensors import CALIB_IMAGES, predict, to_tensor

    if calibrate:
        model.calibrate(to_tensor(data.x_train[:CALIB_IMAGES], data))
    logits = predict(model, to_tensor(data.x_test, data))
    return 100.0 * float((logits.argmax(1).numpy() == data.y_test).mean())


def inherited(variant: str, data: Any, epochs: int, picks: list, seed: int, threads: int | None) -> dict:
    """Train the variant's super-network; test accuracy of every pick."""
    from lightnas.artefacts import TrainJob
    from lightnas.supernets import create_supernet
    from lightnas.train.trainer import train_supernet

    tc, opts = variant_config(variant, epochs)
    cfg = create_supernet("mobilenet", data.input_shape, data.n_classes, **opts).config.to_dict()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        job = TrainJob("mobilenet", cfg, tc, seed=seed, threads=threads)
        train_supernet(job, data, Path(tmp) / "s.pt", resume=False, progress=False)
        seconds = time.perf_counter() - t0
        result = checkpoint_accuracies(Path(tmp) / "s.pt", data, picks)
    return {"variant": variant, **result, "supernet_train_seconds": round(seconds, 1)}


def checkpoint_accuracies(checkpoint: Path, data: Any, picks: list) -> dict[str, Any]:
    """Inherited test accuracy (after calibration) of every pick in a trained super-network."""
    from lightnas.train.checkpoint import load_supernet

    net, state = load_supernet(checkpoint)
    accs = []
    for arch in picks:
        net.set_active(arch)
        accs.append(test_accuracy(net, data, calibrate=True))
    last = state.history[-1] if state.history else {}
    return {"inherited": accs, "trained_on": last.get("settings"), "train_config": state.train_config}


def alone_accuracy(net: Any, arch: Any, data: Any, epochs: int, seed: int, threads: int | None) -> dict:
    """Test accuracy of ``arch`` trained alone with the plain recipe."""
    from lightnas.config import TrainConfig
    from lightnas.train.plain import train_alone

    model = net.extract(arch)
    t0 = time.perf_counter()
    train_alone(model, data, TrainConfig(epochs=epochs), seed=seed, threads=threads)
    return {"accuracy": test_accuracy(model, data, calibrate=False), "seconds": time.perf_counter() - t0}


class Cache:
    """Stand-alone results in a JSON file, re-read before each use (processes may share it)."""

    def __init__(self, path: str | None):
        self.path = Path(path) if path else None
        self.data: dict[str, Any] = {}

    def get(self, tag: str, make: Any) -> dict[str, Any]:
        from lightnas.io import write_json

        if self.path and self.path.is_file():
            self.data.update(json.loads(self.path.read_text()))
        if tag not in self.data:
            self.data[tag] = make()
            if self.path:
                write_json(
                    {**(json.loads(self.path.read_text()) if self.path.is_file() else {}), **self.data}, self.path
                )
        return self.data[tag]


def reference_accuracies(reference: dict) -> tuple[np.ndarray, dict[str, float]]:
    """Mean accuracy per reference net over its seeds, and the seeds against each other."""
    from fidelity_reference import summary

    figures = summary(reference)
    seeds = sum(k.startswith("acc_seed") for k in figures)
    return np.array(figures["acc_mean"]), {"seeds": seeds, "seed_to_seed_tau": figures["seed_to_seed_tau"]}


def run_mode(run_dir: Path, threads: int | None, say: Any, models: int | None = None) -> dict[str, Any]:
    """A run's exported models retrained alone: all of them, or ``models`` spread
    over latency (the smallest and the largest among them)."""
    from lightnas.artefacts import read_cards
    from lightnas.config import RunConfig
    from lightnas.data import load_dataset
    from lightnas.export import load_exported
    from lightnas.train.plain import train_alone

    cfg = RunConfig.from_file(run_dir / "config.json")
    data = load_dataset(cfg.data.source, cfg.seed)
    _, cards = read_cards(run_dir)
    cards = sorted(cards, key=lambda c: c.latency.latency_ms)
    chosen = (
        cards
        if not models or models >= len(cards)
        else [cards[i] for i in np.linspace(0, len(cards) - 1, models).round().astype(int)]
    )
    rows = []
    for card in chosen:
        model = load_exported(run_dir / "models" / card.id)
        t0 = time.perf_counter()
        train_alone(model, data, cfg.train, seed=cfg.seed, threads=threads)
        alone = test_accuracy(model, data, calibrate=False)
        rows.append(
            {
                "id": card.id,
                "latency_ms": card.latency.latency_ms,
                "inherited": card.test_accuracy,
                "alone": alone,
                "gap": alone - card.test_accuracy,
                "seconds": round(time.perf_counter() - t0),
            }
        )
        say(f"{card.id}: exported {card.test_accuracy:.2f}%, alone {alone:.2f}% (gap {rows[-1]['gap']:+.2f})")
    gaps = np.array([r["gap"] for r in rows])
    return {
        "run": str(run_dir),
        "epochs": cfg.train.epochs,
        "seed": cfg.seed,
        "rows": rows,
        "mean_gap": float(gaps.mean()),
        "worst_gap": float(gaps.max()),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", default="sandwich")
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--epochs", type=int, default=None, help="default: the default run's epochs")
    ap.add_argument("--n-subnets", type=int, default=12)
    ap.add_argument("--cache", default=None, help="JSON file keeping the stand-alone results")
    ap.add_argument("--seed", type=int, default=0, help="data split, sub-network sample and training seed")
    ap.add_argument("--alone-seeds", default=None, help="training seeds of the stand-alone runs (default: --seed)")
    ap.add_argument("--no-alone", action="store_true", help="no stand-alone runs (with --reference)")
    ap.add_argument("--reference", default=None, help="long-budget stand-alone reference (JSON)")
    ap.add_argument("--run", default=None, help="a finished run folder: retrain its exported models alone")
    ap.add_argument("--models", type=int, default=None, help="with --run: retrain this many (default: all)")
    ap.add_argument(
        "--checkpoint", default=None, help="a trained super-network (supernet.pt) measured instead of --variants"
    )
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from lightnas.config import TrainConfig
    from lightnas.data import load_dataset
    from lightnas.supernets import create_supernet
    from lightnas.tensors import setup_torch

    out = sys.stderr if args.json else sys.stdout
    say = lambda *a: print(*a, file=out, flush=True)  # noqa: E731
    setup_torch(args.threads)
    if args.run:
        result = run_mode(Path(args.run), args.threads, say, args.models)
        print(
            json.dumps(result) if args.json else f"mean gap {result['mean_gap']:+.2f}, worst {result['worst_gap']:+.2f}"
        )
        return 0
    epochs = args.epochs or TrainConfig().epochs
    data = load_dataset(args.data, args.seed)
    reference = json.loads(Path(args.reference).read_text()) if args.reference else None
    net = create_supernet("mobilenet", data.input_shape, data.n_classes)
    picks = pick_archs(net, data, args.n_subnets, args.seed, reference)
    if args.checkpoint:
        results = [{"variant": args.checkpoint, **checkpoint_accuracies(Path(args.checkpoint), data, picks)}]
    else:
        results = [inherited(v, data, epochs, picks, args.seed, args.threads) for v in args.variants.split(",") if v]
    for r in results:
        say(
            f"{r['variant']}: {r.get('supernet_train_seconds', 0):.0f} s; inherited "
            + " ".join(f"{a:.2f}" for a in r["inherited"])
        )
    summary: dict[str, Any] = {
        "data": args.data,
        "epochs": epochs,
        "n_subnets": len(picks),
        "keys": [a.key for a in picks],
    }
    if reference is not None:
        ref, ceiling = reference_accuracies(reference)
        summary["reference"] = {**ceiling, "accuracy": ref.tolist(), "file": args.reference}
        for r in results:
            tau = float(kendalltau(r["inherited"], ref)[0])
            r["reference_tau"] = tau
            r["reference_tau_share_of_ceiling"] = tau / ceiling["seed_to_seed_tau"]
            say(
                f"{r['variant']}: tau vs reference {tau:.3f} = {r['reference_tau_share_of_ceiling']:.2f} of the "
                f"reference's seed-to-seed tau {ceiling['seed_to_seed_tau']:.3f}"
            )
    if not args.no_alone:
        cache = Cache(args.cache)
        seeds = [int(s) for s in args.alone_seeds.split(",")] if args.alone_seeds else [args.seed]
        runs = np.array(
            [
                [
                    cache.get(
                        f"{args.data}|{epochs}|{args.seed}|{a.key}|seed{s}",
                        lambda a=a, s=s: alone_accuracy(net, a, data, epochs, s, args.threads),
                    )["accuracy"]
                    for a in picks
                ]
                for s in seeds
            ]
        )
        alone = runs.mean(0)
        summary["alone"] = {"seeds": seeds, "accuracy": alone.tolist()}
        if len(seeds) > 1:
            summary["alone"]["seed_to_seed_tau"] = float(kendalltau(runs[0], runs[1])[0])
        for r in results:
            r.update(figures(np.array(r["inherited"]), alone))
            say(
                f"{r['variant']}: tau {r['kendall_tau']:.3f}  rho {r['spearman']:.3f}  mean gap {r['mean_gap']:+.2f}  "
                f"worst {r['worst_gap']:+.2f}  largest {r['largest_gap']:+.2f} pts"
            )
    summary["variants"] = results
    if args.json:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
