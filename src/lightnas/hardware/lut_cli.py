"""``lightnas lut build`` and ``lightnas lut check``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from lightnas.errors import LightnasError
from lightnas.hardware.lut import LatencyTable, check_table
from lightnas.supernets import create_supernet, supernet_from_config


def _shape(text: str) -> tuple[int, int, int]:
    try:
        dims = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise LightnasError(f"malformed --input-shape {text!r} (expected C,H,W such as 1,28,28)") from None
    if len(dims) != 3 or min(dims) < 1:
        raise LightnasError(f"malformed --input-shape {text!r} (expected C,H,W such as 1,28,28)")
    return dims  # type: ignore[return-value]


def add_lut_parser(sub: Any) -> None:
    lut = sub.add_parser("lut", help="latency lookup tables for this machine").add_subparsers(
        dest="lut", parser_class=sub._parser_class
    )
    p = lut.add_parser("build", help="measure every part of a super-network's space")
    p.add_argument("--supernet", default="mobilenet")
    p.add_argument("--input-shape", default="1,28,28", help="C,H,W")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--backend", default="onnxruntime", help="a registered latency backend (lightnas backends)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--calib-samples", type=int, default=24)
    p.add_argument("--out", default="lut.json")
    p.add_argument("--force", action="store_true", help="overwrite --out")
    p.set_defaults(fn=cmd_build)
    p = lut.add_parser("check", help="measure random sub-networks against a table")
    p.add_argument("--lut", required=True)
    p.add_argument("--samples", type=int, default=50)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(fn=cmd_check)


def cmd_build(args: argparse.Namespace) -> int:
    # torch loads here, when the work runs: the command line starts and checks its input without it (2 s)
    from lightnas.tensors import setup_torch

    out = Path(args.out)
    if out.exists() and not args.force:
        raise LightnasError(f"{out} exists (use --force to overwrite it)")
    if args.threads < 1 or args.calib_samples < 2:
        raise LightnasError("--threads must be >= 1 and --calib-samples >= 2")
    setup_torch(args.threads)
    from lightnas.hardware.latency import LATENCY_BACKENDS

    LATENCY_BACKENDS.check(args.backend)
    getattr(LATENCY_BACKENDS.get(args.backend), "check", lambda: None)()  # its runtime is installed
    net = create_supernet(args.supernet, input_shape=_shape(args.input_shape), n_classes=args.classes)
    table = LatencyTable.build(
        net, backend=args.backend, threads=args.threads, calib_samples=args.calib_samples, progress=True
    )
    table.save(out)
    c = table.calibration
    print(
        f"wrote {out}: {table.meta['n_parts']} parts in {table.meta['build_seconds']} s; calibration "
        f"latency = {c['a']:.3f} * sum + {c['c']:.4f} * parts + {c['b']:.4f} ms "
        f"(mean error {c['mean_abs_rel_error']:.1%} "
        f"on {c['n']} sub-networks)"
    )
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    # torch loads here, when the work runs: the command line starts and checks its input without it (2 s)
    from lightnas.tensors import setup_torch

    table = LatencyTable.load(Path(args.lut))
    if args.samples < 2:
        raise LightnasError("--samples must be at least 2")
    setup_torch(table.threads)
    table.check_compatible(table.backend, table.threads)
    net = supernet_from_config(table.supernet, table.config)
    table.bind(net)
    res = check_table(table, net, args.samples, args.seed)
    if args.json:
        print(json.dumps(res))
        return 0
    print(f"{res['samples']} sub-networks, backend {table.backend}, {table.threads} thread(s)")
    print(
        f"within ±10%: {res['within_10pct']:.0%}   Spearman: {res['spearman']:.3f}   "
        f"mean |error|: {res['mean_abs_rel_error']:.1%}"
    )
    print(
        f"the machine against itself (two measurements of the same sub-networks): "
        f"within ±10%: {res['remeasure_within_10pct']:.0%}   Spearman: {res['remeasure_spearman']:.3f}"
    )
    print("worst cases:")
    for w in res["worst"]:
        print(
            f"  {w['predicted_ms']:.3f} ms predicted, {w['measured_ms']:.3f} ms measured "
            f"({w['rel_error']:+.1%})  {w['key']}"
        )
    return 0
