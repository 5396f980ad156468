"""Super-network training throughput on a device (images/s), and what the trainer chose there.

Times the default recipe's training step (the largest sub-network on the
labels, the recipe's students by distillation, one optimiser step and the
weight average) of the default MobileNet super-network on Fashion-MNIST
images already on the device, at each ``--batches`` size, in the memory
format the trainer measured fastest there (``settings``). Run it on the CPU
and on a GPU and divide: the ratio is the GPU's speed-up for this workload.

    python bench/gpu.py --device cpu --threads 2      # this machine
    python bench/gpu.py --device cuda --batches 128,512,2048

With ``--json`` the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def throughput(device: str, batch: int, seconds: float, threads: int | None) -> dict:
    """Images per second of training steps at ``batch`` on ``device`` (at least
    ``seconds`` of timed steps after three untimed ones)."""
    from lightnas.artefacts import TrainJob
    from lightnas.config import TrainConfig
    from lightnas.data import load_dataset
    from lightnas.supernets import create_supernet
    from lightnas.train.device import synchronize
    from lightnas.train.trainer import SupernetTrainer

    data = load_dataset("fashion-mnist", 0)
    cfg = TrainConfig(batch_size=batch)
    net_cfg = create_supernet("mobilenet", data.input_shape, data.n_classes).config.to_dict()
    tr = SupernetTrainer(TrainJob("mobilenet", net_cfg, cfg, threads=threads, device=device), data)
    rng = np.random.default_rng(0)
    reps = -(-batch // len(tr.x_train))
    x = tr.x_train.repeat(reps, 1, 1, 1)[:batch].contiguous(memory_format=tr.memory_format)
    y = tr.y_train.repeat(reps)[:batch]

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
    return {"batch": batch, "steps": n, "images_per_s": round(n * batch / elapsed, 1), "settings": tr.settings}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batches", default="128", help="comma-separated batch sizes")
    ap.add_argument("--seconds", type=float, default=10.0, help="timed seconds per batch size")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = []
    for b in [int(v) for v in args.batches.split(",")]:
        rows.append(throughput(args.device, b, args.seconds, args.threads))
        r = rows[-1]
        s = r["settings"]
        print(
            f"{s['device']} {s.get('name', '')} batch {b}: {r['images_per_s']:.0f} images/s "
            f"({r['steps']} steps, {s['memory_format']}, step ms {s.get('step_ms', '-')})",
            file=sys.stderr if args.json else sys.stdout,
            flush=True,
        )
    if args.json:
        print(json.dumps({"recipe": "default", "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
