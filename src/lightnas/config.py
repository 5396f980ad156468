"""One typed, nested run configuration (torch-free).

:class:`RunConfig` has one section per stage (``data``, ``supernet``,
``train``, ``search``, ``latency``, ``export``); every default is defined
here once. A run folder keeps it as ``config.json`` (:meth:`RunConfig.to_dict`,
:meth:`RunConfig.from_dict`, strict: unknown keys and wrong types are
one-line errors), and the command line is built from it: a field whose
metadata names a ``flag`` is a command-line option with that field's type,
default and help (:func:`cli_fields`).

Checks happen in two places, both before anything is written: each section's
``__post_init__`` checks types, ranges and values; :func:`lightnas.checks.check_names`,
where plug-ins are loaded, checks names against the registries (super-network,
recipe, strategy, latency backend) and the super-network's own options. This
module imports no registry and nothing above it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightnas.errors import LightnasError
from lightnas.objectives import TABLE_LATENCY, parse_constraint
from lightnas.strict import build

PRECISIONS = ("fp32", "int8")
"""The precisions a block group can run in; ``fp32`` is the float32 graph as exported."""
CALIB_METHODS = ("minmax", "percentile", "entropy")
"""How INT8 activation ranges are calibrated (ONNX Runtime's calibrators)."""


def check_precision(text: str) -> str:
    """``text`` if it is a precision a run can search besides fp32, else a one-line error."""
    if text not in PRECISIONS[1:]:
        raise LightnasError(f"unknown precision {text!r} for --quantize (supported: {', '.join(PRECISIONS[1:])})")
    return text


CONSTRAINT_METRICS = (
    "latency_ms", "params", "macs", "bytes", "peak_act_bytes", "sram_bytes", "flash_bytes", "accuracy",
)  # fmt: skip
COST_METRICS = ("latency_ms", "params", "macs", "bytes", "peak_act_bytes", "sram_bytes", "flash_bytes")
MCU_METRICS = ("sram_bytes", "flash_bytes")
"""A microcontroller's memory, read from the sub-network's ``.tflite`` (:mod:`lightnas.litert.arena`)."""
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")


def check_device_name(text: str, what: str = "--device") -> str:
    """``text`` if it names a device (auto, cpu, cuda, cuda:N), else a one-line
    error. Looks for no hardware (see :func:`lightnas.train.device.resolve_device`)."""
    if not isinstance(text, str) or not DEVICE_PATTERN.fullmatch(text):
        raise LightnasError(f"{what} must be auto, cpu, cuda or cuda:N, not {text!r}")
    return text


def opt(default: Any, flag: str | None = None, help: str = "", **kw: Any) -> Any:  # noqa: A002
    """A config field; ``flag`` makes it a command-line option."""
    meta = {"flag": flag, "help": help, **kw}
    if isinstance(default, dict | list):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def _positive(section: Any, *names: str) -> None:
    for name in names:
        v = getattr(section, name)
        if v < 1:
            raise LightnasError(f"{name.replace('_', '-')} must be at least 1, not {v}")


@dataclass(frozen=True)
class DataConfig:
    """Where the images come from."""

    source: str = opt(
        "fashion-mnist", "--data", "fashion-mnist (embedded), digits, or a path (.npz, image folder, IDX folder)"
    )
    image_size: int = opt(
        0,
        "--image-size",
        "side in pixels every image is brought to (shorter side resized, centre crop); 0: the data's own, "
        "for a folder of mixed sizes the median shorter side up to 224",
    )

    def __post_init__(self) -> None:
        if self.image_size and self.image_size < 8:
            raise LightnasError(f"--image-size must be 0 (from the data) or at least 8, not {self.image_size}")


@dataclass(frozen=True)
class SupernetSection:
    """Which super-network, with options of its config class (``lightnas supernets`` lists them)."""

    name: str = opt("mobilenet", "--supernet", "super-network (see 'lightnas supernets')")
    options: dict[str, Any] = opt({}, "--supernet-option", "a field of the super-network's config, NAME=VALUE")


LONG_BUDGET = round(math.sqrt(13_500 * 8 * 54_000 * 20))
"""Image-epochs (training images x epochs, 342k) from which a training budget is long:
``--recipe auto`` trains ``sandwich`` and augmentation is on unless the user set it
(:meth:`TrainConfig.augments`; the measurements are in :mod:`lightnas.train.recipes`)."""


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of super-network training."""

    task: str = opt("classification", "--task", "what is learned and searched for: a registered task")
    epochs: int = opt(8, "--epochs", "super-network training epochs (a super-network may set its own default)")
    steps: int = opt(
        0,
        "--steps",
        "training length in optimiser steps instead of epochs: epochs = steps / steps per epoch, rounded up "
        "(0: --epochs; a super-network may set its own default)",
    )
    batch_size: int = opt(128, "--batch-size", "training batch size")
    recipe: str = opt(
        "auto",
        "--recipe",
        "training recipe (see 'lightnas recipes'); auto: spread on short budgets, sandwich with augmentation "
        "from 342k image-epochs (training images x epochs)",
    )
    optimizer: str = opt("adamw", help="adamw or sgd (Nesterov momentum)")
    lr: float = opt(4e-3, "--lr", "peak learning rate (linear warm-up, cosine decay)")
    momentum: float = opt(0.9, help="SGD momentum")
    weight_decay: float = opt(1e-4)
    label_smoothing: float = opt(0.1)
    n_random: int = opt(2, help="students per step drawn by the recipe's sampler, besides the smallest")
    spread_power: float = opt(
        0.0, help="spread recipe: students' target costs uniform in MACs**power (0: in log-MACs; see recipes.py)"
    )
    warmup_epochs: float = opt(0.3, help="learning-rate warm-up, epochs")
    warmup_fraction: float = opt(0.5, help="share of epochs with the largest alone (warm-up recipes)")
    ema_decay: float = opt(0.99, help="moving average of the weights searched and exported (0: off)")
    init_for_training: bool = opt(True, help="the super-network's training initialisation (zero residuals)")
    project_conflicts: bool = opt(True, help="students' gradient projected off the largest's where they conflict")
    student_label_weight: float = opt(0.5, help="students' loss: (1-w) KL to the largest + w labels")
    activation_budget_mb: float = opt(0.0, "--activation-budget-mb", "MiB kept for backward (0: 1024; GPU: free/2)")
    augment: bool | None = opt(
        None,
        "--augment",
        "training augmentation of the kind the data calls for: random-resized crops and flips for photos, "
        "shifts by up to 1/14 of the side and flips where the data allows for small grey images "
        "(default: on from 342k image-epochs, training images x epochs; off on shorter budgets, "
        "where it cost accuracy)",
    )

    def __post_init__(self) -> None:
        _positive(self, "epochs")
        if self.steps < 0:
            raise LightnasError(f"steps must be >= 0, not {self.steps}")
        if self.n_random < 0:
            raise LightnasError(f"n_random must be >= 0, not {self.n_random}")
        if not (self.spread_power >= 0 and math.isfinite(self.spread_power)):
            raise LightnasError(f"spread_power must be >= 0, not {self.spread_power}")
        if self.batch_size < 2:
            raise LightnasError(f"batch size must be at least 2, not {self.batch_size}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise LightnasError(f"learning rate must be positive, not {self.lr}")
        if self.optimizer not in ("adamw", "sgd"):
            raise LightnasError(f"optimizer must be 'adamw' or 'sgd', not {self.optimizer!r}")
        if not 0 <= self.warmup_fraction < 1:
            raise LightnasError("warmup_fraction must be in [0, 1)")
        if not 0 <= self.student_label_weight <= 1:
            raise LightnasError("student_label_weight must be in [0, 1]")
        if not (self.activation_budget_mb >= 0 and math.isfinite(self.activation_budget_mb)):
            raise LightnasError(f"activation budget must be >= 0 MiB, not {self.activation_budget_mb}")
        if not 0 <= self.ema_decay < 1:
            raise LightnasError("ema_decay must be in [0, 1)")

    def for_images(self, train_images: int) -> TrainConfig:
        """These settings for a training split of ``train_images`` images: where
        ``steps`` is set, ``epochs`` becomes ``ceil(steps / steps per epoch)``
        (at least 1) and ``steps`` 0; otherwise unchanged."""
        if not self.steps:
            return self
        per_epoch = math.ceil(max(train_images, 1) / self.batch_size)
        return dataclasses.replace(self, epochs=max(1, math.ceil(self.steps / per_epoch)), steps=0)

    def image_epochs(self, train_images: int) -> int:
        """The training budget on ``train_images`` images: images x epochs (a length in steps made epochs)."""
        return train_images * self.for_images(train_images).epochs

    def augments(self, train_images: int) -> bool:
        """Whether training on ``train_images`` images augments them: :attr:`augment`
        where the user set it, else from :data:`LONG_BUDGET` image-epochs on. On
        shorter budgets augmentation cost accuracy: about 2 points for every
        sub-network of the default run (Fashion-MNIST, 108k image-epochs) and 2.2
        points for a plain CNN on 5,416 RGB emoji at 64 px for 8 epochs (43k;
        82.5% without, 80.3% with random-resized crops and flips), level at 20
        epochs (82.7% against 83.1%)."""
        if self.augment is not None:
            return self.augment
        return self.image_epochs(train_images) >= LONG_BUDGET


@dataclass(frozen=True)
class SearchConfig:
    """The search: strategy, budget (evaluations) and hard constraints."""

    strategy: str = opt("lightnas", "--strategy", "search strategy (see 'lightnas strategies')")
    budget: int = opt(60, "--budget", "number of sub-networks evaluated by the search")
    constraints: tuple[str, ...] = opt((), "--constraint", "hard constraint such as 'macs<=2e6' (repeatable)")
    options: dict[str, Any] = opt({}, "--search-option", "a keyword of the strategy, NAME=VALUE")
    executor: str = opt("local", "--executor", "where accuracies are evaluated: local, or ray (parallel workers)")
    workers: int = opt(2, "--workers", "Ray workers, one CPU each (--executor ray)")
    ray_address: str = opt("", "--ray-address", "Ray cluster to join (default: start one on this machine)")
    target_resource: str = opt(
        "", "--target-resource", "Ray custom resource of the node whose latency is searched (default: the driver's)"
    )
    schedule: str = opt(
        "batch",
        "--schedule",
        "'batch' (the strategy's batches of 8, told whole: the same evaluations on any number of workers) "
        "or 'async' (each result told as it arrives, every worker kept busy)",
    )

    def __post_init__(self) -> None:
        _positive(self, "budget", "workers")
        if self.executor not in ("local", "ray"):
            raise LightnasError(f"executor must be local or ray, not {self.executor!r}")
        if self.schedule not in ("batch", "async"):
            raise LightnasError(f"--schedule must be batch or async, not {self.schedule!r}")
        object.__setattr__(self, "constraints", tuple(self.constraints))
        for c in map(parse_constraint, self.constraints):
            if c.metric not in CONSTRAINT_METRICS and not c.metric.startswith(TABLE_LATENCY):
                raise LightnasError(f"cannot constrain {c.metric!r} (choose from {', '.join(CONSTRAINT_METRICS)})")
            if c.metric in COST_METRICS and c.op == "<=" and c.bound <= 0:
                raise LightnasError(f"impossible constraint {c}: {c.metric} is always positive")
            if c.metric == "accuracy" and ((c.op == ">=" and c.bound > 100) or (c.op == "<=" and c.bound < 0)):
                raise LightnasError(f"impossible constraint {c}: accuracy is a percentage")


@dataclass(frozen=True)
class LatencyConfig:
    """The target whose latency is searched: runtime, threads, measured or from a table."""

    backend: str = opt("onnxruntime", "--backend", "runtime the latency is measured in (the exported format)")
    threads: int = opt(1, "--threads", "threads of the latency measurement")
    mode: str = opt("measure", "--latency", "'measure' each sub-network, or 'lut' (a calibrated lookup table)")
    target: str = opt("cpu", "--target", "device whose latency is searched: cpu, cuda or cuda:N (not --device)")
    batch: int = opt(1, "--batch", "batch size the latency is searched at (the batch you deploy at)")
    lut_seconds: float = opt(
        30.0, "--lut-seconds", "least seconds the lookup table's interleaved timing spans (--latency lut)"
    )
    tables: dict[str, str] = opt(
        {},
        "--target-table",
        "NAME=PATH: the latency table of another device ('lightnas lut build' there), searched as a front of "
        "its own as latency_ms@NAME (repeatable)",
    )

    def __post_init__(self) -> None:
        _positive(self, "threads", "batch")
        if not self.lut_seconds > 0:
            raise LightnasError(f"--lut-seconds must be positive, not {self.lut_seconds}")
        for name in self.tables:
            if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
                raise LightnasError(f"--target-table name {name!r} must be letters, digits, '.', '_' or '-'")
        check_device_name(self.target, "--target")
        if self.target == "auto":
            raise LightnasError("--target names the device that serves the model: cpu, cuda or cuda:N, not auto")
        if self.mode not in ("measure", "lut"):
            raise LightnasError(f"--latency must be 'measure' or 'lut', not {self.mode!r}")


@dataclass(frozen=True)
class ExportConfig:
    """Which sub-networks of the front are exported."""

    max_export: int = opt(8, "--max-export", "models exported, spread along the front's latency range")
    targets: tuple[str, ...] = opt(
        (),
        "--targets",
        "export the best model under each bound: '0.02,0.05' (latency, ms) or 'macs:1e6,2e6' (any cost metric)",
    )

    def __post_init__(self) -> None:
        _positive(self, "max_export")
        object.__setattr__(self, "targets", tuple(self.targets))
        for c in map(parse_constraint, self.targets):
            if c.metric not in COST_METRICS or c.op != "<=" or c.bound <= 0:
                raise LightnasError(f"a target is a positive bound on a cost metric, not {c}")


@dataclass(frozen=True)
class QuantizeConfig:
    """Precision searched with the architecture (off by default)."""

    precision: str = opt(
        "", "--quantize", "add a float32/int8 choice per block group to the search (int8), measured in ONNX Runtime"
    )
    calib_images: int = opt(256, "--calib-images", "training images the INT8 activation ranges are calibrated on")
    calib_method: str = opt("minmax", "--calib-method", "INT8 range calibration: minmax, percentile or entropy")

    def __post_init__(self) -> None:
        _positive(self, "calib_images")
        if self.precision:
            check_precision(self.precision)
        if self.calib_method not in CALIB_METHODS:
            raise LightnasError(f"--calib-method must be one of {', '.join(CALIB_METHODS)}, not {self.calib_method!r}")


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run (saved as ``config.json``)."""

    seed: int = opt(0, "--seed", "seed of the data split, the training and the search")
    device: str = opt(
        "auto", "--device", "where training, calibration and evaluation run: auto (a GPU if any), cpu, cuda, cuda:N"
    )
    nproc: int = opt(1, "--nproc", "super-network training processes (torch.distributed: gloo on CPU, NCCL on GPUs)")
    data: DataConfig = field(default_factory=DataConfig)
    supernet: SupernetSection = field(default_factory=SupernetSection)
    train: TrainConfig = field(default_factory=TrainConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    quantize: QuantizeConfig = field(default_factory=QuantizeConfig)
    export: ExportConfig = field(default_factory=ExportConfig)

    def __post_init__(self) -> None:
        if not 0 <= self.seed < 2**32:
            raise LightnasError(f"seed must be in [0, 2**32), not {self.seed}")
        check_device_name(self.device)
        if isinstance(self.nproc, bool) or not isinstance(self.nproc, int) or self.nproc < 1:
            raise LightnasError(f"--nproc must be at least 1, not {self.nproc!r}")

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, d: Any, where: str = "configuration") -> RunConfig:
        return build(cls, d, where)

    @classmethod
    def from_file(cls, path: Path) -> RunConfig:
        try:
            raw = json.loads(Path(path).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise LightnasError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None
        return cls.from_dict(raw, str(path))

    def replace(self, values: dict[str, Any]) -> RunConfig:
        """A copy with ``values`` (dotted paths such as ``"train.epochs"``) set."""
        d = self.to_dict()
        for path, v in values.items():
            *head, leaf = path.split(".")
            node = d
            for part in head:
                node = node[part]
            node[leaf] = v
        return RunConfig.from_dict(d)

    def study(self) -> str:
        """Name of the search study: changes when the search definition changes."""

        spec = json.dumps(
            [self.search.strategy, self.seed, sorted(self.search.constraints), self.latency.mode]
            + [self.latency.backend, self.latency.threads, sorted(self.search.options.items())]
            + ([self.latency.target] if self.latency.target != "cpu" else [])
            + ([self.latency.batch] if self.latency.batch != 1 else [])
            + ([dataclasses.asdict(self.quantize)] if self.quantize.precision else [])
            + ([sorted(self.latency.tables.items())] if self.latency.tables else [])
        )
        return "search-" + hashlib.sha1(spec.encode()).hexdigest()[:8]
