"""The ``lightnas`` command: a table of subcommands.

The run options are built from :class:`lightnas.config.RunConfig` (one flag
per configurable field, with its default in ``--help``). Every user error
prints one line, ``lightnas: error: ...``, and exits with status 2; an
unexpected internal error prints one line too and points to ``--debug`` for
the traceback; nothing already on disk is overwritten without ``--force``.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import os
import signal
import sqlite3
import sys
import threading
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lightnas.config import RunConfig
from lightnas.errors import LightnasError

COST_FLAGS = (
    ("--max-latency-ms", "latency_ms", "latency (ms, in the target runtime)"),
    ("--max-params", "params", "parameters"),
    ("--max-macs", "macs", "multiply-accumulates"),
    ("--max-bytes", "bytes", "serialized float32 size in bytes"),
    ("--max-peak-act-bytes", "peak_act_bytes", "peak activation memory in bytes"),
    ("--max-sram-kb", "sram_bytes", "microcontroller SRAM in KiB (LiteRT Micro's tensor arena)"),
    ("--max-flash-kb", "flash_bytes", "microcontroller flash in KiB (the .tflite file)"),
)
FLAG_SCALE = {"sram_bytes": 1024, "flash_bytes": 1024}
"""Metric -> bytes per unit of its flag (KiB)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse's own convention)
        raise LightnasError(message)


# -- the command line's view ---------------------------------------------------------------
@dataclass(frozen=True)
class CliField:
    """One command-line option: its dotted path in :class:`~lightnas.config.RunConfig`, flag, type, default, help."""

    path: str
    flag: str
    type: Any
    default: Any
    help: str


def cli_fields() -> list[CliField]:
    """Every field of :class:`~lightnas.config.RunConfig` that has a command-line flag."""
    out: list[CliField] = []
    default = RunConfig()

    def walk(cls: type, obj: Any, prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(hints[f.name]):
                walk(hints[f.name], value, f"{prefix}{f.name}.")
            elif f.metadata.get("flag"):
                out.append(CliField(prefix + f.name, f.metadata["flag"], hints[f.name], value, f.metadata["help"]))

    walk(RunConfig, default, "")
    return out


def parse_targets(text: str) -> tuple[str, ...]:
    """``'0.02,0.05'`` (latency, ms) or ``'macs:1e6,2e6'`` -> constraint strings
    such as ``('latency_ms<=0.02', 'latency_ms<=0.05')``."""
    metric, _, values = text.rpartition(":")
    metric = metric or "latency_ms"
    out = []
    for v in values.split(","):
        try:
            bound = float(v)
        except ValueError:
            raise LightnasError(f"malformed --targets {text!r} (expected numbers such as 0.02,0.05)") from None
        out.append(f"{metric}<={bound!r}")
    return tuple(out)


def parse_option(text: str) -> tuple[str, Any]:
    """``NAME=VALUE`` with VALUE read as JSON when it parses, else as a string."""
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise LightnasError(f"malformed option {text!r} (expected NAME=VALUE)")
    try:
        return name, json.loads(raw)
    except json.JSONDecodeError:
        return name, raw


def _convert(cli: Any) -> Callable[[str], Any]:
    if cli.path == "export.targets":
        return parse_targets
    if typing.get_origin(cli.type) is dict:
        return parse_option
    if cli.type is float:
        return float
    return int if cli.type is int else str


def add_run_options(p: argparse.ArgumentParser) -> None:
    """One option per flagged field of :class:`RunConfig`, plus the cost-bound
    shortcuts; only options given appear in the namespace (``dest`` is the
    field's dotted path)."""
    for cli in cli_fields():
        repeat = cli.path in ("search.constraints",) or typing.get_origin(cli.type) is dict
        default = "none" if cli.default in ((), {}) else cli.default
        if cli.type in (bool, bool | None):
            p.add_argument(
                cli.flag,
                dest=cli.path,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=f"{cli.help} (default: {'on' if default else 'the data decides' if default is None else 'off'})",
            )
            continue
        p.add_argument(
            cli.flag,
            dest=cli.path,
            type=_convert(cli),
            action="append" if repeat else "store",
            default=argparse.SUPPRESS,
            help=f"{cli.help} (default: {default})",
            metavar=cli.path.rsplit(".", 1)[-1].upper(),
        )
    for flag, metric, what in COST_FLAGS:
        p.add_argument(
            flag, dest=f"bound:{metric}", type=float, default=argparse.SUPPRESS, help=f"hard constraint: {what} <= X"
        )
    add_model_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars or tables")


def add_model_options(p: argparse.ArgumentParser) -> None:
    """``--from-model`` and ``--weights``: a user's trained network as the super-network."""
    p.add_argument(
        "--from-model",
        dest="model:spec",
        default=argparse.SUPPRESS,
        metavar="MODULE:FACTORY",
        help="make a trained network elastic and search inside it: package.module:factory (the 'elastic' "
        "super-network)",
    )
    p.add_argument(
        "--weights",
        dest="model:weights",
        default=argparse.SUPPRESS,
        metavar="FILE",
        help="its state dict (loaded weights-only)",
    )


def add_force(p: argparse.ArgumentParser) -> None:
    """``--force`` (replace the run in the folder): only on the commands that
    start a run (``run``, ``train``); the later stages continue the run they
    find, so a ``--force`` there would delete the super-network they need."""
    p.add_argument("--force", action="store_true", help="replace the run already in the folder")


def explicit_options(args: argparse.Namespace) -> dict[str, Any]:
    """The run options given on the command line, as dotted paths -> values."""
    fields = cli_fields()
    paths = {cli.path for cli in fields}
    values = {k: v for k, v in vars(args).items() if k in paths}
    bounds = [
        f"{m}<={v * FLAG_SCALE.get(m, 1)!r}" for k, v in vars(args).items() if k.startswith("bound:") for m in [k[6:]]
    ]
    if bounds:
        values["search.constraints"] = [*values.get("search.constraints", []), *bounds]
    for cli in fields:  # NAME=VALUE options, repeated, make a mapping
        if typing.get_origin(cli.type) is dict and cli.path in values:
            values[cli.path] = dict(values[cli.path])
    model = {k.split(":", 1)[1]: v for k, v in vars(args).items() if k.startswith("model:")}
    if model:
        values.update(model_options(values, model.get("spec"), model.get("weights")))
    return values


def model_options(values: dict[str, Any], spec: str | None, weights: str | None) -> dict[str, Any]:
    """``--from-model SPEC --weights FILE`` as the super-network section: ``elastic`` with those options
    (the weights' absolute path, so that a resumed run finds them from anywhere)."""
    if not spec:
        raise LightnasError("--weights needs --from-model package.module:factory")
    name = values.get("supernet.name", "elastic")
    if name != "elastic":
        raise LightnasError(f"--from-model makes the super-network 'elastic'; it cannot be combined with {name!r}")
    options = {**values.get("supernet.options", {}), "model": spec}
    if weights:
        path = Path(weights).expanduser().resolve()
        if not path.is_file():
            raise LightnasError(f"--weights {weights} does not exist")
        options["weights"] = str(path)
    return {"supernet.name": "elastic", "supernet.options": options}


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

    p = sub.add_parser("elasticize", help="show the elastic super-network a trained model becomes, checked equal")
    add_model_options(p)
    p.add_argument("--data", dest="data.source", default=argparse.SUPPRESS, help="the model's data (as for run)")
    p.add_argument("--image-size", dest="data.image_size", type=int, default=argparse.SUPPRESS)
    p.add_argument(
        "--supernet-option",
        dest="supernet.options",
        type=parse_option,
        action="append",
        default=argparse.SUPPRESS,
        help="widths, depth, kernel: NAME=VALUE",
    )
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(fn=cmd_elasticize)

    for name, registry, text in LISTS:
        sub.add_parser(name, help=text).set_defaults(fn=_lister(registry))

    bench = sub.add_parser("bench", help="tabular benchmarks").add_subparsers(dest="bench", parser_class=_Parser)
    p = bench.add_parser("nb201", help="search NAS-Bench-201 with device latencies")
    from lightnas.bench.cli import add_nb201_arguments

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
