"""Torch helpers shared by training, evaluation and export."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lightnas.data.sources import Dataset
from lightnas.errors import LightnasError
from lightnas.io import atomic_write

EVAL_BATCH = 256  # inference chunk: on this 2-core CPU, 1,000-image chunks ran 2-3x slower (cache misses)
CALIB_IMAGES = 256  # BatchNorm recalibration sample: 256, 1,024 and 4,096 give the same figures (bench/fidelity.py)


def setup_torch(threads: int | None = None) -> int:
    """Flush denormals (5x-300x slowdowns otherwise) and fix the thread count.

    Returns the thread count in force (default: all cores).
    """
    torch.set_flush_denormal(True)
    n = threads or os.cpu_count() or 1
    torch.set_num_threads(n)
    return n


def to_tensor(x: np.ndarray, data: Dataset) -> torch.Tensor:
    """uint8 NCHW images -> normalised float32 tensor (the card's preprocessing)."""
    mean = torch.tensor(data.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(data.std, dtype=torch.float32).view(1, -1, 1, 1)
    x = x if x.flags.writeable else x.copy()  # memory-mapped or read-only files: torch wants writable memory
    return (torch.from_numpy(x).float() / 255.0 - mean) / std


def split_tensors(
    data: Dataset, split: str, device: torch.device | str = "cpu", n: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` (default: all) images of ``data``'s ``split`` ("train",
    "val" or "test") as a normalised tensor, and their labels, on ``device``."""
    x, y = getattr(data, f"x_{split}")[:n], getattr(data, f"y_{split}")[:n]
    return to_tensor(x, data).to(device), torch.from_numpy(y).to(device)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = EVAL_BATCH) -> torch.Tensor:
    """Logits of ``model`` in eval mode over ``x``, computed ``batch_size`` images at a time."""
    model.eval()
    return torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = EVAL_BATCH) -> float:
    """Top-1 accuracy in percent, model in eval mode."""
    correct = int((predict(model, x, batch_size).argmax(1) == y).sum()) if len(x) else 0
    return 100.0 * correct / max(len(x), 1)


def evaluate_metric(model: nn.Module, task: Any, x: torch.Tensor, y: torch.Tensor) -> float:
    """The task's metric of ``model`` (eval mode) over a whole split."""
    return task.metric(predict(model, x), y) if len(x) else 0.0


def task_for(data: Dataset, cfg: Any) -> Any:
    """The classification task of ``data`` with ``cfg``'s (a TrainConfig)
    label smoothing, students' label weight and augmentation."""
    from lightnas.tasks.classification import ClassificationTask

    return ClassificationTask(
        label_smoothing=cfg.label_smoothing,
        label_weight=cfg.student_label_weight,
        augment=cfg.augment,
        pad=max(1, data.input_shape[1] // 14),
        hflip=data.hflip,
    )


def atomic_save(obj: Any, path: Path) -> None:
    """torch.save to a temporary file in the same folder, then rename."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def safe_load(path: Path) -> dict[str, Any]:
    """``torch.load(weights_only=True)``; one-line errors for missing/corrupt files."""
    if not path.is_file():
        raise LightnasError(f"checkpoint {path} does not exist")
    try:
        with warnings.catch_warnings():  # torch warns (on stderr) about the pickle protocol of odd files
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "Weights only load failed" in why:
            why = "it holds Python objects besides tensors, and lightnas never unpickles those"
        raise LightnasError(f"cannot load {path}: {why}") from None
    if not isinstance(obj, dict):
        raise LightnasError(f"{path} is not a lightnas checkpoint")
    return obj
