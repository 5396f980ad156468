"""The task contract: what training and evaluation ask of the problem being solved.

A :class:`Task` owns the loss, the distillation loss of the students, the
metric the search maximises and the training-time augmentation, so the
trainer and the evaluators name no loss and no metric. Tasks register by name
in :data:`TASKS` (entry-point group ``lightnas.tasks``); ``TrainConfig.task``
(``--task``) names the one a run trains, built by :meth:`Task.for_data`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

import torch

from lightnas.registry import Registry

if TYPE_CHECKING:
    from lightnas.config import TrainConfig
    from lightnas.data.sources import Dataset

TASKS: Registry[type[Task]] = Registry("task", builtins=("lightnas.tasks.classification",), group="lightnas.tasks")


class Task(ABC):
    """Loss, metric and augmentation of one problem.

    ``metric_name`` is the metric's key in the metric dictionaries (higher is
    better); ``metric(logits, targets)`` returns it over a batch or a whole split.
    """

    metric_name: str = "accuracy"

    @abstractmethod
    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The training loss of the teacher (and of a network trained alone)."""

    @abstractmethod
    def distill_loss(self, outputs: torch.Tensor, teacher: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """A student's loss given the teacher's detached outputs ``teacher``."""

    @abstractmethod
    def metric(self, outputs: torch.Tensor, targets: torch.Tensor) -> float:
        """The evaluation metric (higher is better)."""

    def augment(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Training-time augmentation of a batch; default: none."""
        return x

    @property
    def augments(self) -> bool:
        """Whether :meth:`augment` may change a batch (default: whether the
        task overrides it); where not, an image is the same every epoch."""
        return type(self).augment is not Task.augment

    @classmethod
    def for_data(cls, data: Dataset, cfg: TrainConfig) -> Task:
        """The task as ``data`` and the training settings ``cfg`` call for
        (``--task NAME`` builds it so); default: the task with its defaults."""
        return cls()


def task_for(data: Dataset, cfg: TrainConfig) -> Task:
    """The task ``cfg.task`` names, as ``data`` and ``cfg`` call for (:meth:`Task.for_data`)."""
    return TASKS.get(cfg.task).for_data(data, cfg)


def create_task(name: str, **options: Any) -> Task:
    """Build a registered task by name."""
    return TASKS.get(name)(**options)
