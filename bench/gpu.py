"""Super-network training throughput on a device (images/s), and what the trainer chose there.

Times the default recipe's training step (the largest sub-network on the
labels, the recipe's students by distillation, one optimiser step and the
weight average) of the default MobileNet super-network on Fashion-MNIST
images already on the device, at each ``--batches`` size, in the memory
format and precision the trainer measured fastest there (``settings``: each
candidate's step time in ``step_ms``). Run it on the CPU and on a GPU and
divide: the ratio is the GPU's speed-up for this workload.

``--shapes 3x96x96,3x224x224`` times the super-network laid out for those
inputs instead, on random uint8 images of that shape (the step's cost does
not depend on the pixels): what the trainer chooses at real image sizes
(channels-last or not, bfloat16 or float32 on a GPU) and the images/s it
reaches there.

    python bench/gpu.py --device cpu --threads 2      # this machine
    python bench/gpu.py --device cuda --batches 128,512,2048
    python bench/gpu.py --device cuda --shapes 3x96x96,3x224x224 --batches 64,256

With ``--json`` the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch


def dataset(shape: tuple[int, int, int] | None):  # noqa: ANN201
    """The embedded Fashion-MNIST (``None``), or 1,024 random uint8 images of ``shape`` in 10 classes."""
    from lightnas.data import load_dataset
    from lightnas.data.sources import Dataset

    if shape is None:
        return load_dataset("fashion-mnist", 0)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (1024, *shape), dtype=np.uint8)
    y = rng.integers(0, 10, 1024).astype(np.int64)
    return Dataset("random", x, y, x[:64], y[:64], x[:64], y[:64], [str(c) for c in range(10)], augmentation="photo")


def throughput(
    device: str, batch: int, seconds: float, threads: int | None, shape: tuple[int, int, int] | None = None
) -> dict:
    """Images per second of training steps at ``batch`` on ``device`` (at least
    ``seconds`` of timed steps after three untimed ones), on images of ``shape``
    (C, H, W; None: the embedded Fashion-MNIST)."""
    from lightnas.artefacts import TrainJob
    from lightnas.config import TrainConfig
    from lightnas.supernets import create_supernet
    from lightnas.train.device import synchronize
    from lightnas.train.trainer import SupernetTrainer

    data = dataset(shape)
    cfg = TrainConfig(batch_size=batch)
    net_cfg = create_supernet("mobilenet", data.input_shape, data.n_classes).config.to_dict()
    tr = SupernetTrainer(TrainJob("mobilenet", net_cfg, cfg, threads=threads, device=device), data)
    rng = np.random.default_rng(0)
    rows = torch.arange(batch) % len(tr.x_train)  # one batch, reused: the step's cost, not the data's
    x, y = tr.x_train[rows], tr.y_train[rows.to(tr.y_train.device)]

    def step(i: int) -> None:
        tr.step(x, y, tr.recipe.students(0, rng))
        tr._average(i)

    for i in range(3):
        step(i)
    synchronize(tr.device)
    n, t0 = 0, time.perf_counter()
    while n < 5 or time.perf_counter() - t0 < seconds:
        step(n)
        n += 1
        if n % 5 == 0:
            synchronize(tr.device)
    synchronize(tr.device)
    elapsed = time.perf_counter() - t0
    return {
        "shape": list(data.input_shape),
        "batch": batch,
        "steps": n,
        "images_per_s": round(n * batch / elapsed, 1),
        "settings": tr.settings,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batches", default="128", help="comma-separated batch sizes")
    ap.add_argument("--seconds", type=float, default=10.0, help="timed seconds per batch size")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    ap.add_argument("--shapes", default="", help="comma-separated CxHxW (default: Fashion-MNIST, 1x28x28)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",") if s] or [None]
    rows = []
    for shape, b in [(s, int(v)) for s in shapes for v in args.batches.split(",")]:
        rows.append(throughput(args.device, b, args.seconds, args.threads, shape))
        r = rows[-1]
        s = r["settings"]
        print(
            f"{s['device']} {s.get('name', '')} {'x'.join(map(str, r['shape']))} batch {b}: "
            f"{r['images_per_s']:.0f} images/s ({r['steps']} steps, {s['memory_format']}, "
            f"{s.get('precision', 'float32')}, step ms {s.get('step_ms', '-')})",
            file=sys.stderr if args.json else sys.stdout,
            flush=True,
        )
    if args.json:
        print(json.dumps({"recipe": "default", "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
