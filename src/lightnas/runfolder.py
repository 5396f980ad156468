"""The run folder: its settings are the truth, and nothing in it is lost silently.

A run folder holds ``config.json`` (the :class:`~lightnas.config.RunConfig`),
``supernet.pt``, ``lightnas.db``, ``models/``, the reports and ``summary.json``.

- A new run writes ``config.json`` only after the configuration has been
  validated, the data loaded and the constraints checked against the cheapest
  and the costliest sub-network (:func:`preflight`).
- ``--resume`` continues with the stored configuration; options given
  explicitly are applied, except those that would change what was already
  done (seed, data, super-network, training), which are refused.
- ``--force`` replaces a run (only a folder holding nothing but a run's
  files); ``--resume`` and ``--force`` exclude each other.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from lightnas.checks import check_names
from lightnas.config import MCU_METRICS, RunConfig
from lightnas.errors import LightnasError
from lightnas.io import write_json
from lightnas.lock import LOCK_FILE
from lightnas.objectives import RUN_OBJECTIVES, TABLE_LATENCY, parse_constraint
from lightnas.quantization.policy import PRECISIONS, PREFIX
from lightnas.search import create_strategy
from lightnas.supernets import SUPERNETS, create_supernet

RUN_FILES = (
    "config.json",
    "lut.json",
    "supernet.pt",
    "lightnas.db",
    "lightnas.db-wal",
    "lightnas.db-shm",
    "pareto.csv",
    "pareto.png",  # a static front that run folders of earlier releases hold
    "report.html",
    "summary.json",
    "training_cost.json",
    "models",
    LOCK_FILE,
)
FROZEN_ON_RESUME = ("seed", "data", "supernet", "train")
MIN_FREE_BYTES = 50 * 2**20  # a run writes a few MB; refuse to start below this


def say(msg: str, quiet: bool) -> None:
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


def load_folder(out: Path) -> RunConfig:
    if not (out / "config.json").is_file():
        raise LightnasError(f"{out} holds no lightnas run (no config.json)")
    return RunConfig.from_file(out / "config.json")


def merge(stored: RunConfig, explicit: dict[str, Any], what: str) -> RunConfig:
    """``stored`` with the ``explicit`` options (dotted paths) applied; an
    option that would change a frozen section (:data:`FROZEN_ON_RESUME`) is refused."""
    flat = _flatten(stored.to_dict())
    for path, value in explicit.items():
        old = flat.get(path)
        if path.split(".")[0] in FROZEN_ON_RESUME and _jsonable(value) != old:
            raise LightnasError(
                f"cannot {what}: it was made with {path}={old!r}, not {value!r} (use --force to start again)"
            )
    return stored.replace(explicit)


def with_supernet_defaults(explicit: dict[str, Any]) -> dict[str, Any]:
    """``explicit`` plus the chosen super-network's ``train_defaults`` for the
    training fields it does not set. A length given (``--epochs`` or
    ``--steps``) replaces the default length, whichever way it is counted;
    both at once are refused."""

    if explicit.get("train.steps") and "train.epochs" in explicit:
        raise LightnasError("--epochs and --steps both set the training length: give one")
    cls = SUPERNETS.get(explicit.get("supernet.name", RunConfig().supernet.name))
    defaults = {f"train.{k}": v for k, v in cls.train_defaults.items()}
    if "train.epochs" in explicit or "train.steps" in explicit:
        defaults = {k: v for k, v in defaults.items() if k not in ("train.epochs", "train.steps")}
    return {**defaults, **explicit}


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and k not in ("options",):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def _jsonable(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def _entries(out: Path) -> list[Path]:
    if out.exists() and not out.is_dir():
        raise LightnasError(f"output path {out} exists and is not a folder")
    try:
        return [p for p in out.iterdir() if p.name != LOCK_FILE] if out.exists() else []
    except OSError as exc:
        raise LightnasError(f"cannot read {out}: {exc.strerror}") from None


def check_writable(out: Path) -> None:
    """A one-line error unless ``out`` (or its nearest existing parent) is a
    writable folder with at least :data:`MIN_FREE_BYTES` free."""
    probe = out
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK | os.X_OK):
        raise LightnasError(f"cannot write to {probe}: permission denied")
    free = shutil.disk_usage(probe).free
    if free < MIN_FREE_BYTES:
        raise LightnasError(f"only {free / 2**20:.0f} MB free under {probe}; a run needs at least 50 MB")


def open_folder(
    out: Path, explicit: dict[str, Any], resume: bool = False, force: bool = False, create: bool = True
) -> tuple[RunConfig, bool]:
    """The configuration a command runs with, and whether the folder is new.

    Nothing is written here; :func:`claim` writes after :func:`preflight`.
    ``create=False`` (stage commands other than ``train``) requires an existing run.
    """
    if resume and force:
        raise LightnasError("--resume and --force exclude each other")
    entries = _entries(out)
    foreign = [p.name for p in entries if p.name not in RUN_FILES]
    if foreign:
        raise LightnasError(f"output folder {out} holds files that are not a lightnas run ({foreign[0]}, ...)")
    has_run = (out / "config.json").exists()
    if resume and not has_run:
        raise LightnasError(f"cannot resume: {out} holds no lightnas run (no config.json)")
    if force or not entries:
        if not create and not has_run:
            raise LightnasError(f"{out} holds no lightnas run (no config.json)")
        return check_names(RunConfig().replace(with_supernet_defaults(explicit))), True
    if not has_run:
        raise LightnasError(f"{out} holds parts of a run but no config.json (use --force to start again)")
    if not resume and create:
        raise LightnasError(
            f"output folder {out} already holds a run (use --resume to continue it or --force to replace it)"
        )
    return check_names(merge(load_folder(out), explicit, f"resume {out}")), False


def claim(out: Path, cfg: RunConfig, force: bool = False) -> None:
    """Write ``config.json`` (after deleting the run's files with ``force``)."""
    check_writable(out)
    if force:
        for p in _entries(out):
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_json(cfg.to_dict(), out / "config.json")
    except OSError as exc:
        raise LightnasError(f"cannot write to {out}: {exc.strerror}") from None


def _runtime_runs(net: Any, cfg: RunConfig) -> None:
    """The target runtime prepares the smallest sub-network (an operator it lacks is said before training)."""
    from lightnas.hardware.latency import LATENCY_BACKENDS

    small = net.space.smallest()
    prepare = LATENCY_BACKENDS.get(cfg.latency.backend)
    prepare(net.extract(small).eval(), net.input_shape_for(small), 1, 1, cfg.latency.target)


def preflight(cfg: RunConfig, data: Any, out: Path | None = None) -> dict[str, dict[str, float]]:
    """Check the constraints and export targets on cost metrics against the
    untrained super-network before any training: a ``<=`` bound below the
    smallest sub-network's cost, or a ``>=`` bound above the largest's, can
    never be met (each end's cost is computed only where a bound needs it);
    a ``--device`` or ``--target`` GPU that is not there is refused too, and
    so are a target runtime that cannot run the smallest sub-network, the
    strategy's options and, in ``out``, a latency table that cannot serve
    ``--latency lut``, and another device's table (``--target-table``) of
    another super-network, batch or precision.
    Returns the cheap metrics of the smallest and the largest."""
    # torch loads here, when the work runs: the command line starts and checks its input without it (2 s)
    from lightnas.tensors import setup_torch
    from lightnas.train.device import resolve_device

    resolve_device(cfg.device)
    resolve_device(cfg.latency.target)
    setup_torch(cfg.latency.threads)
    from lightnas.context import with_precision

    net = with_precision(
        create_supernet(cfg.supernet.name, data.input_shape, data.n_classes, **cfg.supernet.options), cfg, data
    )
    from lightnas.context import load_lut

    tables = {TABLE_LATENCY + n: load_lut(Path(p), cfg, n).bind(net) for n, p in cfg.latency.tables.items()}
    _runtime_runs(net, cfg)
    bounds = [parse_constraint(t) for t in (*cfg.search.constraints, *cfg.export.targets)]
    ends = {}
    for which, op in (("smallest", "<="), ("largest", ">=")):
        mine = [c for c in bounds if c.op == op]
        # only what a bound needs: the first MAC count and the latency each take seconds
        ends[which] = {}
        for arch in _precision_variants(net, getattr(net.space, which)()):
            got = _end_metrics(net, arch, cfg, {c.metric for c in mine}, tables)
            best = min if op == "<=" else max
            ends[which] = {k: best(v, ends[which].get(k, v)) for k, v in got.items()}
    for c in bounds:
        best = ends["smallest" if c.op == "<=" else "largest"]
        if c.metric not in best:
            continue
        if not c.satisfied(best):
            which = "smallest" if c.op == "<=" else "largest"
            raise LightnasError(
                f"impossible constraint {c}: the {which} sub-network has {c.metric}={best[c.metric]:.4g}"
            )
    _check_search(cfg, net.space)
    if out is not None and cfg.latency.mode == "lut" and (out / "lut.json").exists():
        load_lut(out / "lut.json", cfg)
    return ends


def _end_metrics(net: Any, arch: Any, cfg: RunConfig, needed: set[str], tables: dict[str, Any]) -> dict[str, float]:
    """The metrics of ``needed`` that ``arch`` has before training (costs, MCU
    memory, latency in the target runtime, other devices' tables)."""
    from lightnas.hardware.cost import count_cost
    from lightnas.hardware.latency import measure_latency

    plain, shape = net.extract(arch).eval(), net.input_shape_for(arch)
    got: dict[str, float] = {}
    if needed - {"latency_ms", "accuracy", *tables}:
        got = count_cost(plain, shape)
    if needed & set(MCU_METRICS):
        from lightnas.litert.runtime import mcu_memory

        got.update(mcu_memory(plain, shape))
    if "latency_ms" in needed:
        lat = cfg.latency
        got["latency_ms"] = measure_latency(plain, shape, lat.backend, lat.threads, lat.batch, lat.target)["latency_ms"]
    got.update({m: t.predict(arch) for m, t in tables.items() if m in needed})
    return got


def _precision_variants(net: Any, arch: Any) -> list[Any]:
    """``arch`` in every uniform precision when ``net`` searches precision
    (neither float32 nor INT8 is the cheaper in every metric), else ``arch``."""
    # torch loads here, when the work runs: the command line starts and checks its input without it (2 s)
    from lightnas.quantization.wrapper import PrecisionSupernet

    if not isinstance(net, PrecisionSupernet):
        return [arch]
    return [net.space.make({**dict(arch), **{k: p for k in arch if k.startswith(PREFIX)}}) for p in PRECISIONS]


def _check_search(cfg: RunConfig, space: Any) -> None:
    """Build the strategy once with the run's options (a one-line error names a bad one)."""

    constraints = [parse_constraint(c) for c in cfg.search.constraints]
    create_strategy(cfg.search.strategy, space, list(RUN_OBJECTIVES), constraints, seed=cfg.seed, **cfg.search.options)
