"""Small data: every super-network against a plain small CNN on a 5,400-image grey set.

The data set: ``--images`` (default 5,400) images drawn stratified (seeded)
from the embedded Fashion-MNIST subset, which is a part of Fashion-MNIST's
training split; lightnas carves its validation split out of them (20%), and
tests on the official 10,000 test images. For each super-network,
``lightnas run --data SET.npz --supernet NAME --epochs E`` (the same budget
for every model, everything else at its default) and the best exported
model's test accuracy; the baseline is a plain 57k-parameter CNN (three 3x3
convolutions with BatchNorm and ReLU, global pooling, a linear classifier)
trained alone on the same training images for the same epochs with the
default training settings (AdamW, learning rate, batch, warm-up, label
smoothing), scored on the same test images.

    python bench/small_data.py [--supernets vit,hybrid,mobilenet] [--epochs 4] [--baseline-epochs E]
                               [--images 5400] [--json]

``--epochs 0`` runs every super-network at its own default length
(``Supernet.train_defaults``) and reports the epochs it trained.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def build_set(path: Path, n: int, seed: int) -> None:
    """``n`` images of the embedded subset, stratified by class, and the official test images, as an npz."""
    from lightnas.data import load_dataset

    data = load_dataset("fashion-mnist", 0)
    x = np.concatenate([data.x_train, data.x_val])
    y = np.concatenate([data.y_train, data.y_val])
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    per = n // len(classes)
    keep = np.concatenate([rng.choice(np.flatnonzero(y == c), per, replace=False) for c in classes])
    rng.shuffle(keep)
    np.savez(path, x=x[keep], y=y[keep], x_test=data.x_test, y_test=data.y_test)


def plain_cnn(c_in: int, n_classes: int):  # noqa: ANN201
    """57k parameters: 3x3 convolutions of 32 (stride 1), 64 and 64 channels (stride 2), pooling, linear."""
    from torch import nn

    layers, c = [], c_in
    for width, stride in ((32, 1), (64, 2), (64, 2)):
        layers += [nn.Conv2d(c, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        c = width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, n_classes))


def baseline(path: Path, epochs: int, seed: int) -> dict[str, float]:
    import torch

    from lightnas.config import TrainConfig
    from lightnas.data import load_dataset
    from lightnas.tensors import accuracy, split_tensors
    from lightnas.train.plain import train_alone

    data = load_dataset(str(path), seed)
    model = plain_cnn(data.input_shape[0], data.n_classes)
    t0 = time.perf_counter()
    train_alone(model, data, TrainConfig(epochs=epochs), seed, threads=None)
    seconds = time.perf_counter() - t0
    x, y = split_tensors(data, "test")
    model = model.eval().to(memory_format=torch.channels_last)
    return {
        "test_accuracy": accuracy(model, x, y),
        "params": sum(p.numel() for p in model.parameters()),
        "train_images": len(data.x_train),
        "seconds": round(seconds, 1),
    }


def run_supernet(path: Path, name: str, epochs: int, out: Path, extra: list[str]) -> dict:
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "lightnas.cli", "run", "--data", str(path), "--supernet", name]
    cmd += (["--epochs", str(epochs)] if epochs else []) + ["--out", str(out), "--force", "--quiet", *extra]
    res = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        return {"error": res.stderr.strip().splitlines()[-1:]}
    ids = json.loads((out / "models" / "index.json").read_text())["models"]
    cards = [json.loads((out / "models" / i / "card.json").read_text()) for i in ids]
    cards.sort(key=lambda c: c["latency"]["latency_ms"])
    lat = [c["latency"]["latency_ms"] for c in cards]
    acc = [c["test_accuracy"] for c in cards]
    import torch

    history = torch.load(out / "supernet.pt", weights_only=True)["history"]
    return {
        "wall_seconds": round(wall, 1),
        "epochs": len(history),
        "train_seconds": round(sum(h["seconds"] for h in history), 1),
        "best_test_accuracy": max(acc),
        "n_exported": len(cards),
        "latency_span": round(max(lat) / min(lat), 2),
        "test_accuracy": [round(a, 2) for a in acc],
        "latency_ms": [round(v, 4) for v in lat],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--supernets", default="vit,hybrid,mobilenet")
    ap.add_argument("--epochs", type=int, default=4, help="0: each super-network's default length")
    ap.add_argument("--baseline-epochs", type=int, default=0, help="the plain CNN's epochs (0: --epochs)")
    ap.add_argument("--images", type=int, default=5400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="/tmp/lightnas-bench-small-data")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("extra", nargs="*", help="options passed to lightnas run (after --)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"fashion-{args.images}.npz"
    build_set(path, args.images, args.seed)
    result: dict = {"images": args.images, "epochs": args.epochs}
    if not args.no_baseline:
        result["plain_cnn"] = baseline(path, args.baseline_epochs or args.epochs or 4, args.seed)
    for name in args.supernets.split(","):
        result[name] = run_supernet(path, name, args.epochs, out / name, args.extra)
        if "plain_cnn" in result and "best_test_accuracy" in result[name]:
            gap = result[name]["best_test_accuracy"] - result["plain_cnn"]["test_accuracy"]
            result[name]["minus_plain_cnn"] = round(gap, 2)
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>12}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
