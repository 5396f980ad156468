"""The torch side of the data, shared by training, evaluation and export:
the process's torch settings, images as normalised tensors in batches,
prediction and the metric over a split, and checkpoint files (saved
atomically, loaded ``weights_only``)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lightnas.data.images import DiskImages
from lightnas.data.sources import Dataset
from lightnas.errors import LightnasError
from lightnas.io import atomic_write
from lightnas.tasks import Task

ImageRows = np.ndarray | DiskImages  # uint8 (N, C, H, W) images: in memory, or rows of the image cache
Index = int | slice | np.ndarray | torch.Tensor  # rows of a split
EVAL_BATCH = 256  # inference chunk: on this 2-core CPU, 1,000-image chunks ran 2-3x slower (cache misses)
CALIB_IMAGES = 1024
"""Training images handed to BatchNorm recalibration (``Supernet.calibrate`` uses as many of them as
its smallest maps need: 256 at 28x28, all of them on 64-px images' 3x3-4x4 maps)."""
INT8_CALIB_IMAGES = 256  # training images that calibrate a LiteRT INT8 model's activation ranges


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def setup_torch(threads: int | None = None) -> int:
    """Flush denormals (5x-300x slowdowns otherwise) and fix the thread count.

    Returns the thread count in force (default: every core this process may
    run on, so that ``taskset`` and a container's CPU set are honoured).
    """
    torch.set_flush_denormal(True)
    n = threads or usable_cores()
    torch.set_num_threads(n)
    return n


def to_tensor(x: ImageRows, data: Dataset) -> torch.Tensor:
    """uint8 NCHW images (an array or rows of the image cache) -> normalised
    float32 tensor (the card's preprocessing)."""
    return normalise(torch.from_numpy(_writable(x)), data.mean, data.std)


def _writable(x: ImageRows) -> np.ndarray:
    x = np.asarray(x)
    return x if x.flags.writeable else x.copy()  # memory-mapped or read-only files: torch wants writable memory


def normalise(u8: torch.Tensor, mean: list[float], std: list[float]) -> torch.Tensor:
    """uint8 images ``(N, C, H, W)`` -> float32 ``(x / 255 - mean[c]) / std[c]``, where ``u8`` lives."""
    m = torch.tensor(mean, dtype=torch.float32, device=u8.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=u8.device).view(1, -1, 1, 1)
    return (u8.float() / 255.0 - m) / s


class Images:
    """One split's images as training and evaluation index them: ``x[idx]``
    (an int range, a slice, an index tensor or array) is the normalised float32
    batch on ``device``, in ``memory_format``.

    The pixels stay uint8 (4x less memory than floats): on ``device`` when the
    split is an array in memory, on disk when it comes from the image cache
    (rows read per batch, so memory does not grow with the data set). A batch
    is normalised exactly as :func:`to_tensor` normalises the whole split."""

    def __init__(
        self,
        x: ImageRows,
        data: Dataset,
        device: torch.device | str = "cpu",
        memory_format: torch.memory_format = torch.contiguous_format,
    ):
        self.device = torch.device(device)
        self.mean, self.std = data.mean, data.std
        self.memory_format = memory_format
        self.on_disk = not isinstance(x, np.ndarray)
        self.source = x if self.on_disk else torch.from_numpy(_writable(x)).to(self.device)
        self.shape = tuple(int(s) for s in x.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def contiguous(self, memory_format: torch.memory_format = torch.contiguous_format) -> Images:
        """The same images, batches handed out in ``memory_format``."""
        out = object.__new__(Images)
        out.__dict__.update({k: v for k, v in self.__dict__.items() if k not in ("_pool", "_ahead")})
        out.memory_format = memory_format
        return out

    def uint8(self, idx: Index) -> torch.Tensor:
        """The raw uint8 pixels of ``idx`` on the device (the rows read ahead
        by :meth:`prefetch`, when it was asked for these)."""
        if not self.on_disk:
            return self.source[idx]
        rows = idx.cpu().numpy() if isinstance(idx, torch.Tensor) else idx
        ahead = self.__dict__.pop("_ahead", None)
        if ahead is not None and isinstance(rows, np.ndarray) and np.array_equal(ahead[0], rows):
            return ahead[1].result()
        return self._read(rows)

    def _read(self, rows: Index) -> torch.Tensor:
        batch = torch.from_numpy(_writable(self.source[rows]))
        if self.device.type == "cuda":  # pinned, so that the copy overlaps the GPU's work
            return batch.pin_memory().to(self.device, non_blocking=True)
        return batch

    def prefetch(self, idx: Index) -> None:
        """Start reading the rows ``idx`` from disk in a background thread, for
        the next ``x[idx]`` (images in memory: nothing to do)."""
        if not self.on_disk:
            return
        if "_pool" not in self.__dict__:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="lightnas-read")
        rows = idx.cpu().numpy() if isinstance(idx, torch.Tensor) else np.asarray(idx)
        self._ahead = (rows, self._pool.submit(self._read, rows))

    def __getitem__(self, idx: Index) -> torch.Tensor:
        return normalise(self.uint8(idx), self.mean, self.std).contiguous(memory_format=self.memory_format)

    def batches(self, batch_size: int = 0) -> Iterator[torch.Tensor]:
        """The whole split in order, ``batch_size`` images at a time (default :data:`EVAL_BATCH`)."""
        b = batch_size or EVAL_BATCH
        for i in range(0, len(self), b):
            yield self[i : i + b]


def split_tensors(
    data: Dataset, split: str, device: torch.device | str = "cpu", n: int | None = None
) -> tuple[Images, torch.Tensor]:
    """The first ``n`` (default: all) images of ``data``'s ``split`` ("train",
    "val" or "test") as :class:`Images` (normalised per batch), and their
    labels, on ``device``."""
    x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")[:n]
    if n is not None:
        x = x[:n] if isinstance(x, np.ndarray) else x.take(np.arange(min(n, len(x))))
    return Images(x, data, device), torch.from_numpy(y).to(device)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor | Images, batch_size: int = EVAL_BATCH) -> torch.Tensor:
    """Logits of ``model`` in eval mode over ``x``, computed ``batch_size`` images at a time."""
    model.eval()
    return torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def accuracy(model: nn.Module, x: torch.Tensor | Images, y: torch.Tensor, batch_size: int = EVAL_BATCH) -> float:
    """Top-1 accuracy in percent, model in eval mode."""
    correct = int((predict(model, x, batch_size).argmax(1) == y).sum()) if len(x) else 0
    return 100.0 * correct / max(len(x), 1)


def evaluate_metric(model: nn.Module, task: Task, x: torch.Tensor | Images, y: torch.Tensor) -> float:
    """The task's metric of ``model`` (eval mode) over a whole split."""
    return task.metric(predict(model, x), y) if len(x) else 0.0


def atomic_save(obj: object, path: Path) -> None:
    """torch.save to a temporary file in the same folder, then rename."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def safe_load(path: Path) -> dict[str, object]:
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
