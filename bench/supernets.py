"""Extraction and ONNX agreement of every registered super-network, on many random sub-networks.

For each super-network (untrained, with every normalisation layer given
non-trivial statistics so that slicing errors show): ``--archs`` random
sub-networks plus the smallest and the largest; for each, the largest
absolute difference between the super-network's logits (``set_active``) and
the extracted plain module's, and between the plain module in PyTorch and in
ONNX Runtime, on 8 random inputs of the default 28x28x1 shape.

    python bench/supernets.py [--archs 50] [--supernets mobilenet,vit,hybrid] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", type=int, default=50)
    ap.add_argument("--supernets", default=None, help="comma-separated (default: every registered one)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    from lightnas.hardware.onnx_graph import onnx_session, to_onnx_bytes
    from lightnas.supernets import create_supernet, list_supernets
    from lightnas.tensors import setup_torch
    from lightnas.testing.supernets import trained_like

    setup_torch(None)
    results = {}
    for name in args.supernets.split(",") if args.supernets else list_supernets(standalone=True):
        torch.manual_seed(0)
        net = trained_like(create_supernet(name, (1, 28, 28), 10))
        rng = np.random.default_rng(0)
        archs = [net.space.smallest(), net.space.largest()] + [net.space.sample(rng) for _ in range(args.archs)]
        x = torch.randn(8, 1, 28, 28)
        extract, onnx = [], []
        with torch.no_grad():
            for arch in archs:
                net.set_active(arch)
                plain = net.extract(arch).eval()
                ref = plain(x)
                extract.append(float((net(x) - ref).abs().max()))
                out = onnx_session(to_onnx_bytes(plain, (1, 28, 28)), 1).run(None, {"input": x.numpy()})[0]
                onnx.append(float(np.abs(out - ref.numpy()).max()))
        results[name] = {"archs": len(archs), "extract_max_abs_diff": max(extract), "onnx_max_abs_diff": max(onnx)}
        if not args.json:
            r = results[name]
            print(
                f"{name:<10} {r['archs']} sub-networks: extraction {r['extract_max_abs_diff']:.1e}, "
                f"ONNX Runtime {r['onnx_max_abs_diff']:.1e} (max abs, logits)"
            )
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
