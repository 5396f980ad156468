"""A run configuration's names checked against the registries (where plug-ins load).

:mod:`lightnas.config` checks types, ranges and values and imports no
registry; :func:`check_names` is the second check, made before anything is
written: every name (super-network, task, recipe, strategy, latency backend) is
looked up, the super-network's options are parsed by its own config class,
and the choices that only make sense together are checked together.
"""

from __future__ import annotations

from pathlib import Path

from lightnas.config import RunConfig
from lightnas.errors import LightnasError
from lightnas.objectives import RUN_OBJECTIVES, TABLE_LATENCY, parse_constraint
from lightnas.search import STRATEGIES
from lightnas.supernets import SUPERNETS
from lightnas.train.recipes import AUTO, RECIPES


def check_names(cfg: RunConfig) -> RunConfig:
    """``cfg`` when every name in it is registered and its choices fit together;
    else a one-line :class:`LightnasError` naming the problem."""
    if cfg.train.recipe != AUTO:
        RECIPES.check(cfg.train.recipe)
    STRATEGIES.check(cfg.search.strategy)
    if cfg.search.strategy == "zero-cost":
        raise LightnasError(
            "--strategy zero-cost ranks by zero-cost proxies, which a super-network run's evaluator does not "
            "provide (use it with 'lightnas bench nb201')"
        )
    # imported here: hardware.latency and the tasks import torch, and commands that fail on a name stay quick
    from lightnas.hardware.latency import LATENCY_BACKENDS
    from lightnas.tasks import TASKS

    LATENCY_BACKENDS.check(cfg.latency.backend)
    getattr(LATENCY_BACKENDS.get(cfg.latency.backend), "check", lambda: None)()  # its runtime is installed
    task = TASKS.get(cfg.train.task)
    if task.metric_name != RUN_OBJECTIVES[0].metric:
        raise LightnasError(
            f"--task {cfg.train.task} reports {task.metric_name!r}; a run searches {RUN_OBJECTIVES[0].metric!r}"
        )
    for name, path in cfg.latency.tables.items():
        if not Path(path).is_file():
            raise LightnasError(f"--target-table {name}: no latency table at {path}")
    cls = SUPERNETS.get(cfg.supernet.name)
    reserved = {"input_shape", "n_classes"} & set(cfg.supernet.options)
    if reserved:
        raise LightnasError(f"--supernet-option cannot set {sorted(reserved)}: they come from the data")
    cls.config_class.from_dict(dict(cfg.supernet.options))
    for c in [*cfg.search.constraints, *cfg.export.targets]:
        metric = parse_constraint(c).metric
        if metric.startswith(TABLE_LATENCY) and metric[len(TABLE_LATENCY) :] not in cfg.latency.tables:
            raise LightnasError(f"{c} names no --target-table (given: {', '.join(cfg.latency.tables) or 'none'})")
    if cfg.quantize.precision and (cfg.latency.backend != "onnxruntime" or cfg.latency.target != "cpu"):
        raise LightnasError(
            "--quantize int8 is served by ONNX Runtime on the CPU: use --backend onnxruntime --target cpu"
        )
    return cfg
