"""What the export and the report write about the run: ``training_cost.json``, ``summary.json``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightnas.artefacts._io import compact, read_as
from lightnas.strict import build, plain


@dataclass
class TrainingCost:
    """``training_cost.json``: the super-network's training time against
    training the exported sub-networks one by one (seconds; ``ratio`` = one by
    one / super-network; None where it cannot be estimated on this device, see ``how``)."""

    supernet_train_seconds: float
    n_subnets: int
    one_by_one_train_seconds: float | None
    ratio: float | None
    how: str

    def to_dict(self) -> dict[str, Any]:
        return plain(self)

    @classmethod
    def from_dict(cls, d: object, where: str = "training cost") -> TrainingCost:
        return build(cls, d, where)


@dataclass
class DeviceFamily:
    """The models picked from one other device's front (latency by its table)."""

    models: int
    latency_span: float
    largest_latency_gap: float


@dataclass
class RunSummary:
    """``summary.json``: the run in figures. ``latency_span``: slowest over
    fastest exported model; ``largest_latency_gap``: the largest latency ratio
    between neighbours; ``evaluations``: stored evaluations of the study; the
    ``*_seconds`` of the stages of ``lightnas run`` (None when run one by one)."""

    headline: str
    best_test_accuracy: float
    n_exported: int
    latency_span: float
    largest_latency_gap: float
    latency_backend: str
    evaluations: int
    unmet_targets: list[str] = field(default_factory=list)
    training_cost: TrainingCost | None = None
    devices: dict[str, DeviceFamily] = field(default_factory=dict)
    train_seconds: float | None = None
    search_seconds: float | None = None
    export_seconds: float | None = None
    total_seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return compact(self)

    @classmethod
    def from_dict(cls, d: object, where: str = "summary") -> RunSummary:
        return build(cls, d, where)


def read_summary(out: Path) -> RunSummary | None:
    """``summary.json`` of the run in ``out`` (None before the first report)."""
    path = out / "summary.json"
    return read_as(RunSummary, path) if path.is_file() else None


def read_training_cost(out: Path) -> TrainingCost | None:
    """``training_cost.json`` of the run in ``out`` (None before the export wrote it)."""
    path = out / "training_cost.json"
    return read_as(TrainingCost, path) if path.is_file() else None
