"""Latency lookup tables built on the machine that runs lightnas.

``LatencyTable.build`` measures every distinct part of the space (the stem,
every block configuration at every position and input size, the head) with
:func:`~lightnas.hardware.latency.measure_many` and calibrates the sum of
parts against whole sub-networks measured in the same interleaved rounds:
``latency = a * sum(parts) + c * n_parts + b`` (least relative squares on a
sample; ``c`` prices each part's share of the
whole network's overhead), recorded in the table with its fit quality.
Prediction is a handful of dictionary look-ups (microseconds).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lightnas.errors import LightnasError
from lightnas.io import write_json
from lightnas.space import Arch

LUT_FORMAT = "lightnas-lut-1"


def machine_info() -> dict[str, Any]:
    # torch, ONNX Runtime, SciPy: a table is read and priced without them
    import torch

    info = {
        "node": platform.node(),
        "machine": platform.machine(),
        "processor": platform.processor() or _cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
    }
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:  # pragma: no cover
        pass
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def _key(part: tuple) -> str:
    return "/".join(str(p) for p in part)


@dataclass
class LatencyTable:
    """Per-part latencies (ms) plus calibration; JSON-serialisable."""

    supernet: str
    config: dict[str, Any]
    backend: str
    threads: int
    parts: dict[str, float]
    calibration: dict[str, float] = field(default_factory=lambda: {"a": 1.0, "b": 0.0})
    meta: dict[str, Any] = field(default_factory=dict)

    # -- building ---------------------------------------------------------------
    @classmethod
    def build(
        cls,
        net: Any,
        backend: str = "torch",
        threads: int = 1,
        calib_samples: int = 24,
        seed: int = 0,
        progress: bool = False,
        window_s: float = 30.0,
        batch: int = 1,
    ) -> LatencyTable:
        """Measure every part of ``net``'s space, then calibrate on
        ``calib_samples`` whole sub-networks (plus the smallest and largest).
        ``window_s``: the least time (seconds) the interleaved measurement
        spans (see :func:`~lightnas.hardware.latency.interleaved_timings`)."""
        # torch, ONNX Runtime, SciPy: a table is read and priced without them
        from lightnas.hardware.latency import measure_many

        t0 = time.perf_counter()
        specs = net.all_latency_parts()
        rng = np.random.default_rng(seed)
        archs = [net.space.smallest(), net.space.largest()] + [net.space.sample(rng) for _ in range(calib_samples)]
        if progress:
            print(f"measuring {len(specs)} parts and {len(archs)} whole sub-networks ...", file=sys.stderr)
        # parts and whole sub-networks in one interleaved measurement, so that
        # the calibration compares them at the same machine speed
        items = [net.build_part(spec) for spec in specs] + [(net.extract(a), net.input_shape_for(a)) for a in archs]
        values = measure_many(items, backend, threads, seed=seed, min_seconds=window_s, batch=batch)
        parts = {_key(spec): v for spec, v in zip(specs, values, strict=False)}
        measured = values[len(specs) :]
        table = cls(net.registry_name, net.config.to_dict(), backend, threads, parts)
        sums = [table.raw_sum(net, a) for a in archs]
        counts = [len(net.latency_parts(a)) for a in archs]
        A = np.stack([np.array(sums), np.array(counts, dtype=float), np.ones(len(sums))], axis=1)
        y = np.array(measured)
        coef, *_ = np.linalg.lstsq(A / y[:, None], np.ones(len(y)), rcond=None)  # least relative squares
        rel = np.abs(A @ coef - measured) / np.array(measured)
        table.calibration = {
            "a": float(coef[0]),
            "c": float(coef[1]),
            "b": float(coef[2]),
            "n": len(archs),
            "mean_abs_rel_error": float(rel.mean()),
            "max_abs_rel_error": float(rel.max()),
            "points": [[round(float(v), 5) for v in row] for row in np.column_stack([sums, counts, measured])],
        }
        table.meta = {
            "format": LUT_FORMAT,
            "machine": machine_info(),
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "build_seconds": round(time.perf_counter() - t0, 1),
            "window_s": float(window_s),
            "n_parts": len(parts),
            "input_shape": list(net.config.input_shape),
            "batch": batch,
        }
        return table

    # -- prediction ---------------------------------------------------------------
    def raw_sum(self, net: Any, arch: Arch) -> float:
        try:
            return float(sum(self.parts[_key(p)] for p in net.latency_parts(arch)))
        except KeyError as exc:
            raise LightnasError(f"the latency table has no entry for part {exc.args[0]}") from None

    def bind(self, net: Any) -> LatencyTable:
        """Attach the super-network whose parts this table prices."""
        if net.config.to_dict() != self.config:
            raise LightnasError("the latency table was built for a different super-network configuration")
        self._net = net
        return self

    def predict(self, arch: Arch) -> float:
        """Predicted latency of ``arch`` in ms (the table must be bound)."""
        net = getattr(self, "_net", None)
        if net is None:
            raise LightnasError("bind the latency table to its super-network before predicting")
        c = self.calibration
        n_parts = len(net.latency_parts(arch))
        return c["a"] * self.raw_sum(net, arch) + c.get("c", 0.0) * n_parts + c["b"]

    # -- files ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "supernet": self.supernet,
            "config": self.config,
            "backend": self.backend,
            "threads": self.threads,
            "calibration": self.calibration,
            "meta": self.meta,
            "parts": self.parts,
        }

    def save(self, path: Path) -> None:
        write_json(self.to_dict(), Path(path))

    @classmethod
    def load(cls, path: Path) -> LatencyTable:
        path = Path(path)
        if not path.is_file():
            raise LightnasError(f"latency table {path} does not exist")
        try:
            d = json.loads(path.read_text())
            if d.get("meta", {}).get("format") != LUT_FORMAT:
                raise LightnasError(f"{path} is not a lightnas latency table")
            return cls(
                d["supernet"],
                d["config"],
                d["backend"],
                int(d["threads"]),
                {k: float(v) for k, v in d["parts"].items()},
                d["calibration"],
                d["meta"],
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise LightnasError(f"{path} is not a valid latency table: {exc}") from None

    def check_compatible(self, backend: str, threads: int) -> list[str]:
        """Warn (and return the reasons) when used on another machine, backend or thread count."""
        here = machine_info()
        problems = []
        built = self.meta.get("machine", {})
        for k in ("node", "processor", "cpu_count", "torch", "onnxruntime"):
            if built.get(k) != here.get(k):
                problems.append(f"{k} was {built.get(k)!r}, is {here.get(k)!r}")
        if backend != self.backend:
            problems.append(f"backend was {self.backend!r}, is {backend!r}")
        if threads != self.threads:
            problems.append(f"threads were {self.threads}, are {threads}")
        if problems:
            warnings.warn("latency table built elsewhere: " + "; ".join(problems), stacklevel=2)
        return problems


def measure_whole(
    net: Any, archs: list[Arch], backend: str, threads: int, seed: int = 0, window_s: float = 30.0, batch: int = 1
) -> list[float]:
    """Latency (ms) of whole sub-networks, measured as robustly as the parts."""
    # torch, ONNX Runtime, SciPy: a table is read and priced without them
    from lightnas.hardware.latency import measure_many

    items = [(net.extract(a), net.input_shape_for(a)) for a in archs]
    return measure_many(items, backend, threads, seed=seed, min_seconds=window_s, batch=batch)


def check_table(
    table: LatencyTable, net: Any, samples: int = 50, seed: int = 1, window_s: float = 30.0
) -> dict[str, Any]:
    """Measure ``samples`` random sub-networks and compare with the table.

    The sub-networks are measured twice (two independent interleaved passes);
    the ground truth is the mean of the two, and the agreement of the passes
    with each other (``remeasure_*``) is reported beside the table's: it is
    the best any predictor can score against this machine's measurements.
    """
    # torch, ONNX Runtime, SciPy: a table is read and priced without them
    from scipy.stats import spearmanr

    rng = np.random.default_rng(seed)
    archs = list(dict.fromkeys(net.space.sample(rng) for _ in range(samples)))
    pred = np.array([table.predict(a) for a in archs])
    batch = int(table.meta.get("batch", 1))
    first = np.array(measure_whole(net, archs, table.backend, table.threads, seed, window_s, batch))
    second = np.array(measure_whole(net, archs, table.backend, table.threads, seed + 1, window_s, batch))
    meas = (first + second) / 2
    rel = (pred - meas) / meas
    again = (second - first) / first
    worst = np.argsort(-np.abs(rel))[:5]
    return {
        "samples": len(archs),
        "within_10pct": float(np.mean(np.abs(rel) <= 0.10)),
        "spearman": float(spearmanr(pred, meas)[0]),
        "mean_abs_rel_error": float(np.mean(np.abs(rel))),
        "remeasure_within_10pct": float(np.mean(np.abs(again) <= 0.10)),
        "remeasure_spearman": float(spearmanr(first, second)[0]),
        "worst": [
            {
                "key": archs[i].key,
                "predicted_ms": float(pred[i]),
                "measured_ms": float(meas[i]),
                "rel_error": float(rel[i]),
            }
            for i in worst
        ],
    }
