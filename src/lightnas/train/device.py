"""Where tensors live: the ``--device`` of training, calibration, evaluation and fine-tuning.

``auto`` is a GPU when PyTorch sees one, else the CPU. The device that trains
is independent of the latency *target* (``LatencyConfig.target``): a
super-network trained on a GPU is searched for the CPU that serves it.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

from lightnas.config import check_device_name
from lightnas.errors import LightnasError


def resolve_device(text: str = "auto") -> torch.device:
    """The :class:`torch.device` that ``text`` names on this machine; a
    one-line error when it names a GPU that is not there."""
    check_device_name(text)
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(text)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise LightnasError(f"device {text!r} requested but PyTorch sees no GPU (use --device cpu)")
        index = dev.index or 0
        if index >= torch.cuda.device_count():
            raise LightnasError(f"device {text!r} requested but only {torch.cuda.device_count()} GPU(s) are visible")
        dev = torch.device("cuda", index)
    return dev


def describe_device(dev: torch.device) -> dict[str, object]:
    """What a run records of the device it computed on."""
    if dev.type == "cuda":
        return {"device": str(dev), "name": torch.cuda.get_device_name(dev), "torch": str(torch.__version__)}
    return {"device": "cpu", "threads": torch.get_num_threads(), "torch": str(torch.__version__)}


def synchronize(dev: torch.device) -> None:
    """Wait for the device's queued work (no-op on the CPU)."""
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def time_calls(fn: Callable[[], object], dev: torch.device, repeats: int, warmup: int = 1) -> float:
    """Seconds per call of ``fn`` after ``warmup`` untimed calls, the device synchronised
    before and after (wall clock; CUDA's queue drained, so it is the work's time)."""
    for _ in range(warmup):
        fn()
    synchronize(dev)
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    synchronize(dev)
    return (time.perf_counter() - t0) / max(repeats, 1)


class Sections:
    """Wall-clock seconds spent in named sections of training, summed over
    calls (off by default: a section then costs a context manager's entry and
    exit, about a microsecond). When on, the device is synchronised at each
    section's ends, so a GPU section counts its work, not its launches (and
    training runs slower)."""

    def __init__(self, dev: torch.device, on: bool = False):
        self.dev, self.on = dev, on
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        if not self.on:
            yield
            return
        synchronize(self.dev)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            synchronize(self.dev)
            self.seconds[name] += time.perf_counter() - t0
            self.calls[name] += 1


MEMORY_FORMATS = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}


def training_format(model: torch.nn.Module) -> torch.memory_format:
    """The memory format a plain ``model`` trains in on the CPU: channels-last
    (faster for depthwise convolutions), unless the model holds a strided 1x1
    convolution over fewer than 8 input channels per group. PyTorch's CPU
    channels-last weight gradient of that convolution writes out of bounds on
    AVX2 CPUs (torch 2.13 on an AMD EPYC: a heap corruption or a segmentation
    fault within a few steps; contiguous tensors and other shapes train), so
    such a model trains contiguous. Elastic layers avoid the case themselves
    (:class:`lightnas.elastic.modules.ElasticConv2d`)."""
    for m in model.modules():
        if (
            isinstance(m, torch.nn.Conv2d)
            and m.kernel_size == (1, 1)
            and m.stride != (1, 1)
            and m.in_channels // m.groups < 8
        ):
            return torch.contiguous_format
    return torch.channels_last


def training_settings(dev: torch.device) -> list[dict[str, str]]:
    """The settings a super-network's training step is timed in on ``dev``
    (:meth:`lightnas.train.trainer.SupernetTrainer._choose_layout` keeps the fastest): on the CPU
    channels-last in float32 only (measured faster for these networks); on a
    GPU both memory formats, in float32 and, where the GPU supports it, in
    bfloat16 autocast (weights, optimiser and losses stay float32)."""
    if dev.type != "cuda":
        return [{"memory_format": "channels_last", "precision": "float32"}]
    precisions = ["float32"] + (["bfloat16"] if torch.cuda.is_bf16_supported() else [])
    return [{"memory_format": f, "precision": p} for p in precisions for f in MEMORY_FORMATS]
