"""Evaluate sub-networks of a trained super-network (weights inherited)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from lightnas.config import TrainConfig
from lightnas.data.sources import Dataset
from lightnas.evaluate.base import Evaluator
from lightnas.hardware.cost import count_cost, count_macs
from lightnas.hardware.latency import measure_latency
from lightnas.hardware.lut import LatencyTable
from lightnas.hardware.onnx_graph import deployed_onnx, onnx_logits, onnx_session
from lightnas.objectives import TABLE_LATENCY
from lightnas.quantization.wrapper import Searchable
from lightnas.space import Arch
from lightnas.supernets.base import resize_input
from lightnas.tasks import Task, task_for
from lightnas.tensors import CALIB_IMAGES, evaluate_metric, split_tensors
from lightnas.train.device import resolve_device


@dataclass(frozen=True)
class LatencySource:
    """How an evaluator knows a sub-network's latency (ms): measured with
    :func:`~lightnas.hardware.latency.measure_latency` in ``backend`` with
    ``threads`` threads at ``batch`` images on ``target``, or predicted by the
    bound lookup table ``lut``; ``tables``: other devices' bound tables (name -> table)."""

    backend: str = "onnxruntime"
    threads: int = 1
    batch: int = 1
    target: str = "cpu"
    lut: LatencyTable | None = None
    tables: dict[str, LatencyTable] = field(default_factory=dict)
    mcu: bool = False
    """Also ``sram_bytes`` and ``flash_bytes`` from the ``.tflite`` (``lightnas.litert.arena``)."""


class SupernetEvaluator(Evaluator):
    """The task's metric after the super-network's calibration; cost and latency on this machine.

    ``cheap_metrics`` (checked against constraints before accuracy is paid
    for): ``params``, ``macs``, ``bytes``, ``peak_act_bytes`` of the extracted
    plain sub-network (and ``sram_bytes``, ``flash_bytes`` where
    ``latency.mcu``), its latency in ms (``latency_ms``, as ``latency``
    says: :class:`LatencySource`), and the latency each of its ``tables``
    predicts, as ``latency_ms@NAME`` (also among the known metrics). ``evaluate`` adds the
    task's metric (``accuracy``: validation top-1, percent) after
    ``net.calibrate`` on ``calib_size`` training images, computed on ``device``
    (the super-network and the splits are moved there once).

    When ``net`` searches precision (:class:`~lightnas.quantization.wrapper.PrecisionSupernet`),
    a sub-network with INT8 groups is measured as deployed: its cost counts
    1-byte weights and activations there, its latency is the INT8 graph's in
    ONNX Runtime, and its accuracy is what ONNX Runtime's INT8 model gives on
    the validation split.
    """

    def __init__(
        self,
        net: Searchable,
        data: Dataset,
        latency: LatencySource = LatencySource(),
        device: str = "cpu",
        task: Task | None = None,
        calib_size: int = CALIB_IMAGES,
    ):
        dev = resolve_device(device)
        self.net = net.eval().to(dev, memory_format=torch.channels_last)
        self.data = data
        self.task = task or task_for(data, TrainConfig())
        self.latency = latency
        self.threads = latency.threads  # ONNX Runtime's, for INT8 validation too
        self.lut = latency.lut
        self.tables = dict(latency.tables)
        self.x_calib = split_tensors(data, "train", dev, calib_size)[0].contiguous(memory_format=torch.channels_last)
        x_val, self.y_val = split_tensors(data, "val", dev)
        self.x_val = x_val.contiguous(memory_format=torch.channels_last)
        self._cheap: dict[Arch, dict[str, float]] = {}
        self._part_macs: dict[object, float] = {}

    @property
    def times_cheap_metrics(self) -> bool:  # type: ignore[override]
        """Latency is measured here unless a lookup table prices it."""
        return self.lut is None

    def cheap_metrics(self, arch: Arch) -> dict[str, float]:
        if arch not in self._cheap:
            plain = self.net.extract(arch).eval().cpu()  # costs and latency of the deployed (CPU) module
            shape = self.net.input_shape_for(arch)
            metrics = count_cost(plain, shape)
            if self.lut is not None:
                metrics["latency_ms"] = float(self.lut.predict(arch))
            else:
                src = self.latency
                lat = measure_latency(plain, shape, src.backend, src.threads, src.batch, device=src.target)
                metrics["latency_ms"] = lat["latency_ms"]
                metrics["latency_iqr_ms"] = lat["latency_iqr_ms"]
            metrics.update(self._table_latencies(arch))
            if self.latency.mcu:
                from lightnas.litert.runtime import mcu_memory

                metrics.update(mcu_memory(plain, shape))
            self._cheap[arch] = metrics
        return dict(self._cheap[arch])

    def known_metrics(self, arch: Arch) -> dict[str, float]:
        """``macs`` (the sum over the sub-network's latency parts, each
        counted once and cached: equal to the whole module's count), the
        MACs of each precision group (``macs_<group>``, e.g. per stage; 0
        for a group the arch lacks), the number of parts (``n_parts``, a
        depth), the super-network's :meth:`arch_features` (e.g.
        ``receptive_field``), and the latency table's prediction
        (``latency_ms``) when searching with one."""
        parts = self.net.latency_parts(arch)
        for p in parts:
            if p not in self._part_macs:
                self._part_macs[p] = count_macs(*self.net.build_part(p))
        macs = [self._part_macs[p] for p in parts]
        out = {"macs": float(sum(macs)), "n_parts": float(len(parts))}
        out.update({f"macs_{g}": 0.0 for g in self.net.precision_groups()})
        out.update({f"macs_{g.name}": float(sum(macs[i] for i in g.parts)) for g in self.net.precision_plan(arch)})
        out.update(self.net.arch_features(arch))
        if self.lut is not None:
            out["latency_ms"] = float(self.lut.predict(arch))
        return {**out, **self._table_latencies(arch)}

    def _table_latencies(self, arch: Arch) -> dict[str, float]:
        """``latency_ms@NAME`` of each other device's table (ms)."""
        return {TABLE_LATENCY + name: float(t.predict(arch)) for name, t in self.tables.items()}

    @torch.no_grad()
    def evaluate(self, arch: Arch) -> dict[str, float]:
        if getattr(self.net, "int8_modules", lambda a: ())(arch):
            deployed = self.net.extract(arch)  # calibrated and quantized once per sub-network
            shape = self.net.input_shape_for(arch)
            sess = onnx_session(deployed_onnx(deployed, shape), self.threads)
            batches = (resize_input(b, shape).cpu().numpy() for b in self.x_val.batches())
            logits = torch.from_numpy(np.concatenate([onnx_logits(sess, b) for b in batches]))
            return {self.task.metric_name: self.task.metric(logits, self.y_val.cpu())}
        self.net.set_active(arch)
        self.net.calibrate(self.x_calib)
        return {self.task.metric_name: evaluate_metric(self.net, self.task, self.x_val, self.y_val)}
