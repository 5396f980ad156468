"""Tasks: the loss, the metric and the augmentation a super-network is trained with."""

from lightnas.tasks.base import TASKS, Task, create_task, task_for

__all__ = ["TASKS", "Task", "create_task", "task_for"]
