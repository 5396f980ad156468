"""``LatencyBackendTests``: the contract of a latency backend, tested on any registered one."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from lightnas.hardware.latency import LATENCY_BACKENDS, Timing, measure_latency


class _Small(nn.Module):
    """A convolution, a pooling and a classifier: what every backend must run."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean((2, 3)))


class LatencyBackendTests:
    """Subclass with ``backend = "name"`` (its registered name) and, where it
    runs elsewhere, ``device``. A backend is ``(model, input_shape, threads,
    batch, device) -> run``: it prepares the model once and ``run()`` makes one
    synchronised forward pass, returning nothing (the wall clock is timed) or
    the pass's own time in ms (a float, e.g. from CUDA events)."""

    backend: ClassVar[str] = ""
    device: ClassVar[str] = "cpu"
    input_shape: ClassVar[tuple[int, int, int]] = (1, 12, 12)

    def test_is_registered(self) -> None:
        assert self.backend in LATENCY_BACKENDS.names()

    def test_prepares_once_then_runs_a_pass_each_call(self) -> None:
        run = LATENCY_BACKENDS.get(self.backend)(_Small().eval(), self.input_shape, 1, 2, self.device)
        assert callable(run)
        for _ in range(3):
            out = run()
            assert out is None or not isinstance(out, float) or (math.isfinite(out) and out > 0), out

    def test_the_model_is_left_unchanged(self) -> None:
        model = _Small().eval()
        x = torch.from_numpy(np.random.default_rng(0).standard_normal((2, *self.input_shape)).astype(np.float32))
        with torch.no_grad():
            before = model(x)
        LATENCY_BACKENDS.get(self.backend)(model, self.input_shape, 1, 2, self.device)()
        with torch.no_grad():
            assert torch.equal(model.cpu()(x), before)

    def test_measured_figures_are_ordered_and_say_how(self) -> None:
        m = measure_latency(
            _Small(), self.input_shape, self.backend, 1, device=self.device, timing=Timing(5, 5, 0.0, gauge=False)
        )
        assert 0 < m["latency_ms"] <= m["latency_median_ms"] and m["latency_iqr_ms"] >= 0
        assert m["repeats"] >= 5 and m["backend"] == self.backend and m["threads"] == 1
