"""LiteRT: the .tflite of random sub-networks against PyTorch, INT8 against float32, the arena against its bound.

For ``--archs`` random sub-networks (and the smallest and the largest) of a
trained super-network (``--run DIR``: a run folder's ``supernet.pt``; else
each registered super-network with trained-like weights, whose accuracies
mean nothing), each calibrated as the search evaluates it:

- the float32 ``.tflite`` in LiteRT's interpreter against the PyTorch module,
  largest logit difference over ``--images`` test images;
- the full-integer INT8 ``.tflite`` (LiteRT's quantizer, 256 calibration
  images) against the float32 one: test accuracy over those images (points);
- the INT8 model's tensor arena (the greedy planner) against the live-tensor
  lower bound read from the same graph.

A super-network whose sub-networks hold an operator the conversion does not
write is reported with that operator.

    python bench/litert.py [--run DIR] [--archs 50] [--images 2000] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch


def family(net: Any, data: Any, archs: int, images: int) -> dict[str, Any]:
    from lightnas.errors import LightnasError
    from lightnas.litert.arena import activations, live_lower_bound, plan_arena
    from lightnas.litert.quantize import int8_tflite
    from lightnas.litert.runtime import interpreter, litert_logits, tflite_bytes
    from lightnas.supernets.base import resize_input
    from lightnas.tensors import CALIB_IMAGES, predict, to_tensor

    rng = np.random.default_rng(0)
    picks = [net.space.smallest(), net.space.largest()] + [net.space.sample(rng) for _ in range(archs)]
    x_calib = to_tensor(data.x_train[:CALIB_IMAGES], data)
    x_test, y = to_tensor(data.x_test[:images], data), data.y_test[:images]
    diffs, gaps, ratios = [], [], []
    for arch in picks:
        net.set_active(arch)
        net.calibrate(x_calib)
        plain = net.extract(arch).eval()
        shape = net.input_shape_for(arch)
        try:
            tfl = tflite_bytes(plain, shape)
        except LightnasError as exc:
            return {"archs": len(picks), "not_written": str(exc)}
        xt = resize_input(x_test, shape).numpy()
        ref = predict(plain, torch.from_numpy(xt)).numpy()
        f32 = litert_logits(interpreter(tfl, 1), xt)
        q8 = int8_tflite(tfl, resize_input(x_calib, shape).numpy())
        i8 = litert_logits(interpreter(q8, 1), xt)
        diffs.append(float(np.abs(f32 - ref).max()))
        gaps.append(100.0 * float((f32.argmax(1) == y).mean() - (i8.argmax(1) == y).mean()))
        buffers = activations(q8)
        ratios.append(plan_arena(buffers) / live_lower_bound(buffers))
    return {
        "archs": len(picks),
        "images": len(y),
        "fp32_max_abs_diff": max(diffs),
        "int8_gap_points_mean": float(np.mean(gaps)),
        "int8_gap_points_worst": float(np.max(gaps)),
        "int8_within_0.5": int(sum(g <= 0.5 for g in gaps)),
        "arena_over_bound_max": float(np.max(ratios)),
        "arena_over_bound_median": float(np.median(ratios)),
        "arena_within_1.15": int(sum(r <= 1.15 for r in ratios)),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", default="", help="a run folder whose trained supernet.pt to use")
    ap.add_argument("--archs", type=int, default=50)
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    from lightnas.data import load_dataset
    from lightnas.supernets import create_supernet, list_supernets
    from lightnas.tensors import setup_torch
    from lightnas.testing.supernets import trained_like
    from lightnas.train.checkpoint import load_supernet

    setup_torch(1)
    result: dict[str, Any] = {}
    if args.run:
        cfg = json.loads((Path(args.run) / "config.json").read_text())
        data = load_dataset(cfg["data"]["source"], cfg.get("seed", 0))
        net, _ = load_supernet(Path(args.run) / "supernet.pt")
        result[f"{cfg['supernet']['name']} (trained)"] = family(net.eval(), data, args.archs, args.images)
    else:
        data = load_dataset("fashion-mnist", 0)
        for name in list_supernets(standalone=True):
            torch.manual_seed(0)
            net = trained_like(create_supernet(name, data.input_shape, data.n_classes)).eval()
            result[name] = family(net, data, args.archs, args.images)
    for name, r in result.items():
        print(name, json.dumps(r))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
