"""The ``lightnas`` command: a table of subcommands.

The run options are built from :class:`lightnas.config.RunConfig` (one flag
per configurable field, with its default in ``--help``). Every user error
prints one line, ``lightnas: error: ...``, and exits with status 2; an
unexpected internal error prints one line too and points to ``--debug`` for
the traceback; nothing already on disk is overwritten without ``--force``.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import signal
import sqlite3
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lightnas.cli_options import (  # noqa: F401 - cli_fields, parse_targets: the command line's view, re-exported
    add_elasticize_parser,
    add_force,
    add_model_options,
    add_run_options,
    cli_fields,
    explicit_options,
    parse_option,
    parse_targets,
)
from lightnas.config import RunConfig
from lightnas.errors import LightnasError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse's own convention)
        raise LightnasError(message)


def cmd_run(args: argparse.Namespace) -> int:
    # imported by the command that runs: the parser starts in 0.3 s (torch alone: 2 s)
    from lightnas.pipeline import run_all

    run_all(Path(args.out), explicit_options(args), resume=args.resume, force=args.force, quiet=args.quiet)
    return 0


def _stage(name: str) -> Callable[[argparse.Namespace], int]:
    def cmd(args: argparse.Namespace) -> int:
        # imported by the command that runs: the parser starts in 0.3 s (torch alone: 2 s)
        from lightnas.lock import writer_of, writing

        out = Path(args.dir)
        if name == "report":  # reads what is there; its options are recorded once it has succeeded
            from lightnas import pipeline
            from lightnas.runfolder import claim, open_folder

            busy = writer_of(out)
            if busy:
                print(f"lightnas: {out} is being written by {busy}; reporting what it holds now", file=sys.stderr)
            cfg, _ = open_folder(out, explicit_options(args), resume=(out / "config.json").exists(), create=False)
            pipeline.stage_report(out, cfg, args.quiet)
            if not busy:
                claim(out, cfg)
            return 0
        with writing(out):
            return _write_stage(name, out, args)

    return cmd


def _write_stage(name: str, out: Path, args: argparse.Namespace) -> int:
    """A stage that writes the run folder (its lock held by the caller)."""
    # imported by the command that runs: the parser starts in 0.3 s (torch alone: 2 s)
    from lightnas import pipeline
    from lightnas.context import load_data
    from lightnas.runfolder import claim, open_folder, preflight

    force = getattr(args, "force", False)
    resume = (out / "config.json").exists() and not force  # a stage continues the run it finds
    cfg, new = open_folder(out, explicit_options(args), resume=resume, force=force, create=name == "train")
    data = load_data(cfg, not args.quiet)
    preflight(cfg, data, out)
    if getattr(args, "salvage", False):
        from lightnas.store import salvage

        n = salvage(out / "lightnas.db")
        print(f"moved the damaged {out / 'lightnas.db'} aside; {n} evaluations kept", file=sys.stderr)
    claim(out, cfg, force=force)
    getattr(pipeline, f"stage_{name}")(out, cfg, args.quiet, data)
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    # imported by the command that runs: the parser starts in 0.3 s (torch alone: 2 s)
    from lightnas.finetune import stage_finetune
    from lightnas.lock import writing
    from lightnas.runfolder import load_folder

    out = Path(args.dir)
    with writing(out):
        stage_finetune(out, load_folder(out), args.arch, args.epochs, args.quiet, args.force, args.qat)
    return 0


def cmd_elasticize(args: argparse.Namespace) -> int:
    # imported by the command that runs: the parser starts in 0.3 s (torch alone: 2 s)
    from lightnas.context import load_data
    from lightnas.elastic.describe import describe_elastic

    cfg = RunConfig().replace(explicit_options(args))
    print("\n".join(describe_elastic(cfg, load_data(cfg, not args.quiet))))
    return 0


def cmd_bench_nb201(args: argparse.Namespace) -> int:
    # imported by the command that runs: the parser starts in 0.3 s (torch alone: 2 s)
    from lightnas.bench.cli import bench_nb201

    return bench_nb201(args)


def _lister(registry: str) -> Callable[[argparse.Namespace], int]:
    def cmd(args: argparse.Namespace) -> int:
        # imported by the command that runs: the parser starts in 0.3 s (torch alone: 2 s)
        import importlib

        module, _, name = registry.rpartition(".")
        reg = getattr(importlib.import_module(module), name)
        width = max(map(len, reg.names()))
        for n in reg.names():
            print(f"{n:<{width}}  {reg.summary(n)}")
        return 0

    return cmd


LISTS = (
    ("supernets", "lightnas.supernets.SUPERNETS", "list the registered super-networks"),
    ("strategies", "lightnas.search.STRATEGIES", "list the search strategies"),
    ("recipes", "lightnas.train.recipes.RECIPES", "list the training recipes"),
    ("backends", "lightnas.hardware.latency.LATENCY_BACKENDS", "list the latency backends (runtimes)"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lightnas", description="Hardware-aware neural architecture search.")
    # imported by the command that runs: the parser starts in 0.3 s (torch alone: 2 s)
    from lightnas import __version__

    parser.add_argument("--version", action="version", version=f"lightnas {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an internal error")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    p = sub.add_parser("run", help="train, search, export and report in one go")
    p.add_argument("--out", default="lightnas-run", help="run folder (default: ./lightnas-run)")
    add_run_options(p)
    add_force(p)
    p.add_argument("--resume", action="store_true", help="continue the run already in the folder with its settings")
    p.set_defaults(fn=cmd_run)

    for name, text in (
        ("train", "train the super-network of a run folder"),
        ("search", "search the trained super-network"),
        ("export", "export the Pareto front to models/"),
        ("report", "write pareto.csv, summary.json and the interactive report.html"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("dir", help="run folder")
        add_run_options(p)
        if name == "train":
            add_force(p)
        if name == "search":
            p.add_argument(
                "--salvage", action="store_true", help="keep what a damaged lightnas.db still holds, then search"
            )
        p.set_defaults(fn=_stage(name))

    p = sub.add_parser("finetune", help="fine-tune an exported sub-network with distillation and re-export it")
    p.add_argument("dir", help="run folder")
    p.add_argument("--arch", required=True, help="model id (models/<id>) or architecture key")
    p.add_argument("--epochs", type=int, default=2, help="(default: 2)")
    p.add_argument("--force", action="store_true", help="replace an earlier fine-tuning with the same epochs")
    p.add_argument("--qat", action="store_true", help="quantization-aware: fine-tune the model's INT8 groups")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(fn=cmd_finetune)

    add_elasticize_parser(sub, cmd_elasticize)

    for name, registry, text in LISTS:
        sub.add_parser(name, help=text).set_defaults(fn=_lister(registry))

    bench = sub.add_parser("bench", help="tabular benchmarks").add_subparsers(dest="bench", parser_class=_Parser)
    from lightnas.bench.cli import add_nb201_arguments

    p = bench.add_parser("nb201", help="search NAS-Bench-201 with device latencies")
    add_nb201_arguments(p)
    p.set_defaults(fn=cmd_bench_nb201)
    from lightnas.hardware.lut_cli import add_lut_parser

    add_lut_parser(sub)
    from lightnas.reporting.cli import add_report_parsers

    add_report_parsers(sub)
    return parser


def os_error(exc: BaseException) -> str:
    """An operating-system, database or file-format error in one sentence, no class names."""
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return f"no space left on the disk{where}: free some space and continue with --resume"
        return f"{(exc.strerror or str(exc)).lower()}{where}"
    if isinstance(exc, sqlite3.DatabaseError):
        if "full" in str(exc):
            return "the disk holding the run's lightnas.db is full: free some space and continue with --resume"
        return f"the run's database cannot be used: {exc}"
    if isinstance(exc, json.JSONDecodeError):
        return f"malformed JSON in a file of the run: {exc}"
    return "out of memory"


def _interrupted(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _resume_hint(args: argparse.Namespace | None) -> str:
    folder = getattr(args, "out", None) or getattr(args, "dir", None)
    if folder and getattr(args, "command", "") in ("run", "train", "search", "export"):
        return f"; 'lightnas run --out {folder} --resume' continues"
    return ""


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("LIGHTNAS_DEBUG") == "1"
    main_thread = threading.current_thread() is threading.main_thread()
    # a polite kill stops as Ctrl-C does: every file consistent, the run resumable
    before = signal.signal(signal.SIGTERM, _interrupted) if main_thread else None
    try:
        return _main(argv, debug)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, before)


def _main(argv: list[str], debug: bool) -> int:
    args = None
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if getattr(args, "fn", None) is None:
            raise LightnasError("a command is required (see 'lightnas --help')")
        return int(args.fn(args))
    except LightnasError as exc:
        print(f"lightnas: error: {exc}".splitlines()[0], file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lightnas: interrupted (finished work is saved{_resume_hint(args)})", file=sys.stderr)
        return 130
    except (OSError, sqlite3.DatabaseError, json.JSONDecodeError, MemoryError) as exc:
        if debug:
            raise
        print(f"lightnas: error: {os_error(exc)}".splitlines()[0], file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - one line for users; the traceback with --debug
        if debug:
            raise
        msg = f"{type(exc).__name__}: {exc}".splitlines()[0]
        print(f"lightnas: error: internal error ({msg}); rerun with --debug for the traceback", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
