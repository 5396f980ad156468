"""The MobileNet space at real image sizes: its ends' cost and the elastic step against a plain module.

For each input shape, prints the smallest and largest sub-networks' MACs,
parameters and the classifier's share of them, then times one training step
(forward, backward, AdamW update, batch ``--batch``) of the largest
sub-network through the super-network and through its extracted plain module
in the same process, alternating them, and prints the median of each and
their ratio (``--threads`` threads, channels-last, float32); the same for the
super-network recomputing its blocks in the backward pass (what a step over
the activation budget does, ``recompute_ratio``).

    python bench/image_sizes.py --shapes 3x96x96 3x224x224 --json bench/results/image-sizes.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from torch import nn


def step_seconds(model: nn.Module, x: torch.Tensor, y: torch.Tensor, opt: torch.optim.Optimizer) -> float:
    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    return time.perf_counter() - t0


def one_shape(shape: tuple[int, int, int], batch: int, repeats: int, classes: int) -> dict[str, object]:
    from lightnas.hardware.cost import count_cost
    from lightnas.supernets import create_supernet

    torch.manual_seed(0)
    net = create_supernet("mobilenet", shape, classes)
    ends = {}
    for which in ("smallest", "largest"):
        arch = getattr(net.space, which)()
        plain = net.extract(arch).eval()
        cost = count_cost(plain, net.input_shape_for(arch))
        head = sum(p.numel() for p in plain.classifier.parameters())
        ends[which] = {
            "input": list(net.input_shape_for(arch)),
            "macs": cost["macs"],
            "params": cost["params"],
            "classifier_share": head / cost["params"],
        }
    largest = net.space.largest()
    net.set_active(largest)
    plain = net.extract(largest)
    models = {"supernet": net.train(), "plain": plain.train(), "recomputed": net}
    opts = {k: torch.optim.AdamW(m.parameters(), lr=1e-3) for k, m in models.items()}
    for m in models.values():
        m.to(memory_format=torch.channels_last)
    x = torch.randn(batch, *shape).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, classes, (batch,))
    times: dict[str, list[float]] = {k: [] for k in models}
    for i in range(repeats + 1):  # the first round warms up
        for k in models if i % 2 == 0 else reversed(list(models)):
            net.recompute = k == "recomputed"
            t = step_seconds(models[k], x, y, opts[k])
            if i:
                times[k].append(t)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "shape": list(shape),
        **ends,
        "step_seconds": med,
        "step_ratio": med["supernet"] / med["plain"],
        "recompute_ratio": med["recomputed"] / med["supernet"],
        "batch": batch,
        "repeats": repeats,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", nargs="+", default=["3x96x96", "3x224x224"])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    torch.set_flush_denormal(True)
    torch.set_num_threads(args.threads)
    rows = []
    for text in args.shapes:
        shape = tuple(int(v) for v in text.split("x"))
        row = one_shape(shape, args.batch, args.repeats, args.classes)  # type: ignore[arg-type]
        rows.append(row)
        s, l_ = row["smallest"], row["largest"]
        print(
            f"{text}: smallest {s['macs'] / 1e6:.1f}M MACs at {s['input'][1]} px ({s['classifier_share']:.1%} of "
            f"{s['params']:,.0f} params in the classifier), largest {l_['macs'] / 1e6:.1f}M MACs; step of the "
            f"largest (batch {args.batch}): super-network {row['step_seconds']['supernet']:.3f} s, plain "
            f"{row['step_seconds']['plain']:.3f} s, ratio {row['step_ratio']:.3f}; recomputed "
            f"{row['step_seconds']['recomputed']:.3f} s ({row['recompute_ratio']:.2f}x)"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"threads": args.threads, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
