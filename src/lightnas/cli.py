"""The ``lightnas`` command: a table of subcommands.

Every user error prints one line, ``lightnas: error: ...``, and exits with
status 2; nothing already on disk is overwritten without ``--force``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from lightnas.errors import LightnasError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse's own convention)
        raise LightnasError(message)


def _run_options(p: argparse.ArgumentParser, defaults: bool = True) -> None:
    d = (lambda v: v) if defaults else (lambda v: None)
    p.add_argument(
        "--data",
        default=d("fashion-mnist"),
        help="fashion-mnist (embedded), digits, or a path (.npz, image folder, IDX folder)",
    )
    p.add_argument("--epochs", type=int, default=d(8), help="super-network training epochs")
    p.add_argument("--budget", type=int, default=d(60), help="number of sub-networks evaluated by the search")
    p.add_argument("--seed", type=int, default=d(0))
    p.add_argument("--strategy", default=d("lightnas"), help="search strategy (see 'lightnas strategies')")
    p.add_argument("--max-latency-ms", type=float, help="hard constraint: latency_ms <= X")
    p.add_argument("--max-params", type=float, help="hard constraint: params <= N")
    p.add_argument("--max-macs", type=float, help="hard constraint: macs <= N")
    p.add_argument("--max-bytes", type=float, help="hard constraint: serialized size <= N bytes")
    p.add_argument("--max-peak-act-bytes", type=float, help="hard constraint: peak activation memory <= N bytes")
    p.add_argument("--constraint", action="append", default=[], help="any constraint, e.g. 'macs<=2e6'")
    p.add_argument(
        "--latency",
        choices=("measure", "lut"),
        default=d("measure"),
        help="latency objective: measured for each sub-network, or from a lookup table",
    )
    p.add_argument("--backend", choices=("torch", "onnxruntime"), default=d("torch"))
    p.add_argument("--threads", type=int, default=d(1), help="threads for latency measurement")
    p.add_argument("--batch-size", type=int, default=d(128), help="training batch size")
    p.add_argument(
        "--recipe",
        default=d("sandwich"),
        help="training recipe: sandwich (BigNAS), warmup-sandwich, progressive (Once-for-All), sorted (SortedNet)",
    )
    p.add_argument("--resume", action="store_true", help="continue the run already in the folder")
    p.add_argument("--force", action="store_true", help="replace the run already in the folder")
    p.add_argument("--quiet", action="store_true", help="no progress bars or tables")


def _constraints(args: argparse.Namespace) -> list[str]:
    out = list(args.constraint)
    for flag, metric in (
        ("max_latency_ms", "latency_ms"),
        ("max_params", "params"),
        ("max_macs", "macs"),
        ("max_bytes", "bytes"),
        ("max_peak_act_bytes", "peak_act_bytes"),
    ):
        v = getattr(args, flag)
        if v is not None:
            out.append(f"{metric}<={v!r}")
    return out


def _config(args: argparse.Namespace, base: object | None = None) -> object:
    from dataclasses import asdict

    from lightnas.objectives import parse_constraint
    from lightnas.pipeline import RunConfig

    values = asdict(base) if base is not None else {}  # type: ignore[call-overload]
    for name in (
        "data",
        "epochs",
        "budget",
        "seed",
        "strategy",
        "latency",
        "backend",
        "threads",
        "batch_size",
        "recipe",
    ):
        v = getattr(args, name, None)
        if v is not None:
            values[name] = v
    extra = _constraints(args)
    for c in extra:
        parse_constraint(c)
    if extra or "constraints" not in values:
        values["constraints"] = extra
    return RunConfig(**values)


def cmd_run(args: argparse.Namespace) -> int:
    from lightnas.pipeline import run_all

    run_all(Path(args.out), _config(args), resume=args.resume, force=args.force, quiet=args.quiet)  # type: ignore[arg-type]
    return 0


def _stage(name: str) -> Callable[[argparse.Namespace], int]:
    def cmd(args: argparse.Namespace) -> int:
        from lightnas import pipeline

        out = Path(args.dir)
        if name == "train" and (args.force or not (out / "config.json").exists()):
            cfg = pipeline.prepare_folder(out, _config(args), resume=False, force=args.force)  # type: ignore[arg-type]
        else:
            cfg = _config(args, pipeline.load_folder(out))  # type: ignore[assignment]
            pipeline.prepare_folder(out, cfg, resume=True)  # type: ignore[arg-type]
        getattr(pipeline, f"stage_{name}")(out, cfg, args.quiet)
        return 0

    return cmd


def cmd_finetune(args: argparse.Namespace) -> int:
    from lightnas import pipeline

    out = Path(args.dir)
    pipeline.stage_finetune(out, pipeline.load_folder(out), args.arch, args.epochs, args.quiet, args.force)
    return 0


def cmd_bench_nb201(args: argparse.Namespace) -> int:
    from lightnas.bench.cli import bench_nb201

    return bench_nb201(args)


def cmd_strategies(args: argparse.Namespace) -> int:
    from lightnas.search import list_strategies

    print("\n".join(list_strategies()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lightnas", description="Hardware-aware neural architecture search.")
    from lightnas import __version__

    parser.add_argument("--version", action="version", version=f"lightnas {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    p = sub.add_parser("run", help="train, search, export and report in one go")
    p.add_argument("--out", default="lightnas-run", help="run folder (default: ./lightnas-run)")
    _run_options(p)
    p.set_defaults(fn=cmd_run)

    for name, text in (
        ("train", "train the super-network of a run folder"),
        ("search", "search the trained super-network"),
        ("export", "export the Pareto front to models/"),
        ("report", "write pareto.csv, pareto.png and report.html"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("dir", help="run folder")
        _run_options(p, defaults=False)
        p.set_defaults(fn=_stage(name))

    p = sub.add_parser("finetune", help="fine-tune an exported sub-network with distillation and re-export it")
    p.add_argument("dir", help="run folder")
    p.add_argument("--arch", required=True, help="model id (models/<id>) or architecture key")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--force", action="store_true", help="replace an earlier fine-tuning with the same epochs")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(fn=cmd_finetune)

    p = sub.add_parser("strategies", help="list the search strategies")
    p.set_defaults(fn=cmd_strategies)

    bench = sub.add_parser("bench", help="tabular benchmarks").add_subparsers(dest="bench", parser_class=_Parser)
    p = bench.add_parser("nb201", help="search NAS-Bench-201 with device latencies")
    from lightnas.bench.cli import add_nb201_arguments

    add_nb201_arguments(p)
    p.set_defaults(fn=cmd_bench_nb201)

    from lightnas.hardware.lut_cli import add_lut_parser

    add_lut_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if getattr(args, "fn", None) is None:
            parser.print_help()
            return 2
        return int(args.fn(args))
    except LightnasError as exc:
        print(f"lightnas: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lightnas: interrupted (finished work is saved; continue with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
