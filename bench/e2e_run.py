"""End to end: `lightnas run` (default: no options, the embedded Fashion-MNIST) on this machine.

Prints: wall time; the number of exported models, the best one's accuracy on
the official 10,000-image test set; the exported family's span in ONNX Runtime
latency (the default target) and the largest latency ratio between
neighbouring models; whether test accuracy rises with latency; the training
cost (super-network against the exported models trained one by one); and, for
the MobileNet, the eager latency of each exported model against the same
architecture written by hand as a plain PyTorch module (interleaved timing,
same weights, same thread count). ``litert_files`` says whether the export
also wrote and scored LiteRT files (the ``litert`` extra is installed; the
default install has no LiteRT), which takes a large share of the export's time.

    python bench/e2e_run.py [--out DIR] [--skip-run] [--json] [-- extra lightnas run options]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class HandWritten(nn.Module):
    """The exported architecture written by hand from its arch.json: plain
    convolutions in one flat list, no lightnas class involved."""

    def __init__(self, meta: dict):
        super().__init__()
        cfg, arch = meta["config"], meta["arch"]
        c = cfg["input_shape"][0]
        size = min(cfg["input_shape"][1:])
        strides = []
        for declared in [cfg["stem_stride_"] or 2] + [s["stride"] for s in cfg["stages"]]:
            stride = declared if (size - 1) // declared + 1 >= 7 else 1
            size = (size - 1) // stride + 1
            strides.append(stride)
        self.layers = nn.ModuleList()
        self.plan: list[tuple[str, int]] = []
        self.layers.append(nn.Conv2d(c, cfg["stem_channels"], 3, strides[0], 1, bias=False))
        self.layers.append(nn.BatchNorm2d(cfg["stem_channels"]))
        c = cfg["stem_channels"]
        for s, st in enumerate(cfg["stages"], start=1):
            out = max(4, int(round(st["channels"] * float(arch[f"s{s}w"]) / 2.0)) * 2)
            for b in range(1, int(arch[f"s{s}d"]) + 1):
                k, e = int(arch[f"s{s}b{b}k"]), int(arch[f"s{s}b{b}e"])
                stride = strides[s] if b == 1 else 1
                h = c * e
                self.layers.extend(
                    [
                        nn.Conv2d(c, h, 1, bias=False),
                        nn.BatchNorm2d(h),
                        nn.Conv2d(h, h, k, stride, k // 2, groups=h, bias=False),
                        nn.BatchNorm2d(h),
                        nn.Conv2d(h, out, 1, bias=False),
                        nn.BatchNorm2d(out),
                    ]
                )
                self.plan.append(("block", int(stride == 1 and c == out)))
                c = out
        self.layers.append(nn.Conv2d(c, cfg["head_channels"], 1, bias=False))
        self.layers.append(nn.BatchNorm2d(cfg["head_channels"]))
        self.fc = nn.Linear(
            cfg["head_channels"] * size * size if cfg["pool"] == "flatten" else cfg["head_channels"], cfg["n_classes"]
        )
        self.flatten = cfg["pool"] == "flatten"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        L = self.layers
        x = F.relu(L[1](L[0](x)))
        i = 2
        for _, residual in self.plan:
            h = F.relu(L[i + 1](L[i](x)))
            h = F.relu(L[i + 3](L[i + 2](h)))
            h = L[i + 5](L[i + 4](h))
            x = h + x if residual else h
            i += 6
        x = F.relu(L[i + 1](L[i](x)))
        x = torch.flatten(x, 1) if self.flatten else x.mean((2, 3))
        return self.fc(x)


def interleaved_latency(a: nn.Module, b: nn.Module, shape: tuple, rounds: int = 30, inner: int = 50) -> tuple:
    """Median per-call ms of a and b, alternating blocks of calls (fair under noise)."""
    x = torch.randn(1, *shape)
    ta, tb = [], []
    with torch.no_grad():
        for m in (a, b):
            for _ in range(20):
                m(x)
        for _ in range(rounds):
            for m, acc in ((a, ta), (b, tb)):
                t0 = time.perf_counter()
                for _ in range(inner):
                    m(x)
                acc.append((time.perf_counter() - t0) / inner * 1e3)
    return float(np.median(ta)), float(np.median(tb))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/tmp/lightnas-bench-e2e")
    ap.add_argument("--skip-run", action="store_true", help="reuse a finished run in --out")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("extra", nargs="*", help="options passed to lightnas run (after --)")
    args = ap.parse_args()
    out = Path(args.out)
    wall = None
    if not args.skip_run:
        t0 = time.perf_counter()
        res = subprocess.run(
            [sys.executable, "-m", "lightnas.cli", "run", "--out", str(out), "--force", "--quiet", *args.extra],
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - t0
        if res.returncode != 0:
            print(res.stderr, file=sys.stderr)
            return 1
    from lightnas.export import load_exported

    torch.set_flush_denormal(True)
    torch.set_num_threads(1)
    summary = json.loads((out / "summary.json").read_text())
    ids = json.loads((out / "models" / "index.json").read_text())["models"]
    cards = [json.loads((out / "models" / i / "card.json").read_text()) for i in ids]
    best = max(cards, key=lambda c: c["test_accuracy"])
    ratios = []
    for card in cards if cards[0]["supernet"] == "mobilenet" else []:
        folder = out / "models" / card["id"]
        exported = load_exported(folder)
        hand = HandWritten(json.loads((folder / "arch.json").read_text())).eval()
        hand.load_state_dict(dict(zip(hand.state_dict().keys(), exported.state_dict().values(), strict=True)))
        x = torch.randn(8, *card["preprocessing"]["input_shape"][1:])
        with torch.no_grad():
            assert float((hand(x) - exported(x)).abs().max()) < 1e-5
        t_exp, t_hand = interleaved_latency(exported, hand, tuple(card["preprocessing"]["input_shape"][1:]))
        ratios.append(t_exp / t_hand)
    cards.sort(key=lambda c: c["latency"]["latency_ms"])
    lat = [c["latency"]["latency_ms"] for c in cards]
    acc = [c["test_accuracy"] for c in cards]
    cost = summary.get("training_cost", {})
    result = {
        "wall_seconds": round(wall, 1) if wall is not None else summary.get("total_seconds"),
        "stage_seconds": {k: v for k, v in summary.items() if k.endswith("_seconds")},
        "best_test_accuracy": best["test_accuracy"],
        "best_onnx_torch_agreement": best["verification"]["onnx_torch_prediction_agreement"],
        "best_latency_ms": best["latency"]["latency_ms"],
        "n_exported": len(cards),
        "latency_backend": cards[0]["latency"]["backend"],
        "litert_files": any(c.get("litert") for c in cards),  # the litert extra installed: export scored .tflite too
        "latency_ms": [round(v, 4) for v in lat],
        "eager_latency_ms": [round(c["latency"]["by_backend"]["torch"]["latency_ms"], 4) for c in cards],
        "test_accuracy": [round(v, 2) for v in acc],
        "latency_span": max(lat) / min(lat),
        "largest_latency_gap": float(max(b / a for a, b in zip(lat, lat[1:], strict=False))) if len(lat) > 1 else 1.0,
        "accuracy_rises_with_latency": all(b >= a for a, b in zip(acc, acc[1:], strict=False)),
        "training_cost_ratio": cost.get("ratio"),
        "unmet_targets": summary.get("unmet_targets", []),
    }
    if ratios:
        result["exported_vs_handwritten_latency_ratio_median"] = float(np.median(ratios))
        result["exported_vs_handwritten_latency_ratio_max"] = float(np.max(ratios))
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>48}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
