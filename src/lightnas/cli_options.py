"""The command line's view of :class:`lightnas.config.RunConfig`: one flag per
configurable field, the constraint flags, the user-model flags, and the
options a command line gave (:func:`explicit_options`)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import typing
from collections.abc import Callable
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


def add_elasticize_parser(sub: Any, command: Any) -> None:
    """``lightnas elasticize``: the model options, the data, the super-network's options."""
    p = sub.add_parser("elasticize", help="show the elastic super-network a trained model becomes, checked equal")
    add_model_options(p)
    p.add_argument(
        "--data", dest="data.source", metavar="SOURCE", default=argparse.SUPPRESS, help="the model's data (as for run)"
    )
    p.add_argument("--image-size", dest="data.image_size", metavar="N", type=int, default=argparse.SUPPRESS)
    p.add_argument(
        "--supernet-option",
        dest="supernet.options",
        metavar="NAME=VALUE",
        type=parse_option,
        action="append",
        default=argparse.SUPPRESS,
        help="widths, depth, kernel",
    )
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(fn=command)
