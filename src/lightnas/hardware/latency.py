"""Latency measured on this machine: one function used everywhere."""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from lightnas.errors import LightnasError
from lightnas.hardware.onnx_graph import deployed_onnx, onnx_session
from lightnas.registry import Registry

Backend = Callable[..., Callable[[], float | None]]  # (model, input_shape, threads, batch, device) -> run
LATENCY_BACKENDS: Registry[Backend] = Registry(
    "latency backend", builtins=("lightnas.litert.runtime",), group="lightnas.latency_backends"
)
"""Runtimes latency is measured in. A backend is a function
``(model, input_shape, threads, batch, device) -> run`` that prepares the
model once (export, session, device placement) and returns a zero-argument
callable running one synchronised forward pass; when ``run`` returns a float,
that is the pass's time in ms as the device measured it (CUDA events),
otherwise the wall clock around the call is. A backend that cannot run a
model here (its runtime not installed, an operator it lacks) raises
:class:`BackendUnavailable`."""


class BackendUnavailable(LightnasError):
    """A latency backend cannot run this model here: as the target, the one-line
    error of the run; beside the target on a card, the backend is left out."""


QUANTILE = 10
"""``latency_ms`` is this percentile of the timed runs, not the median: on a
shared machine other tenants only ever add time, in bursts lasting seconds, and
a low percentile of runs spread over the measurement window is the latency the
hardware gives the model. Measured here (bench/lut_fidelity.py prints it): 50
sub-networks measured in three passes agreed within ±10% pass to pass for 100%
of them with the 10th percentile, for 20-86% with the median."""


def _summary(times_ms: list[float], backend: str, threads: int, batch: int, device: str) -> dict[str, Any]:
    q = np.percentile(times_ms, [QUANTILE, 25, 50, 75])
    return {
        "latency_ms": float(q[0]),
        "latency_median_ms": float(q[2]),
        "latency_iqr_ms": float(q[3] - q[1]),
        "latency_mean_ms": float(statistics.fmean(times_ms)),
        "repeats": len(times_ms),
        "backend": backend,
        "threads": threads,
        "batch": batch,
        "device": device,
    }


def _repeat(fn: Any, warmup: int, repeats: int, min_seconds: float) -> list[float]:
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < repeats or (time.perf_counter() - start < min_seconds and len(times) < 50 * repeats):
        t0 = time.perf_counter()
        timed = fn()
        wall = (time.perf_counter() - t0) * 1e3
        times.append(float(timed) if isinstance(timed, float) else wall)
    return times


@LATENCY_BACKENDS.register("onnxruntime")
def _onnxruntime(model: nn.Module, input_shape: tuple[int, ...], threads: int, batch: int, device: str) -> Any:
    """ONNX Runtime (CPU, or its CUDA execution provider), the deployed graph exported once."""
    sess = onnx_session(deployed_onnx(model, input_shape), threads, device)
    feed = {"input": np.random.default_rng(0).standard_normal((batch, *input_shape)).astype(np.float32)}
    return lambda: sess.run(None, feed)


@LATENCY_BACKENDS.register("torch")
def _torch_eager(model: nn.Module, input_shape: tuple[int, ...], threads: int, batch: int, device: str) -> Any:
    """PyTorch eager mode; on CUDA each run is timed by CUDA events around it
    and waits for the later one."""
    if getattr(model, "int8_modules", ()):
        raise LightnasError("PyTorch eager does not run lightnas's INT8 models: measure them in onnxruntime")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise LightnasError(f"latency on {device} requested but PyTorch sees no GPU")
    model = model.eval() if dev.type == "cpu" else copy.deepcopy(model).eval().to(dev)
    x = torch.randn(batch, *input_shape, device=dev)
    if dev.type == "cpu":

        def run() -> None:
            with torch.no_grad():
                model(x)

        return run
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def run_cuda() -> float:
        with torch.no_grad():
            start.record()
            model(x)
            end.record()
        end.synchronize()
        return start.elapsed_time(end)

    return run_cuda


class Probe:
    """A fixed small network timed beside every measurement: the machine's speed gauge.

    On a shared machine the speed of a core drops by 1.5-1.9x for spells of
    a second or more (another tenant on the same physical core); a short
    measurement window can fall entirely in one, and then its 10th
    percentile is the spell's, not the model's (seen on this 2-core machine:
    9 of a search's 60 sub-networks timed 1.75x slower than the same
    sub-networks timed again later). :func:`measure_latency` interleaves the
    model's runs with the probe's in each window and keeps a window only
    when the probe ran at its quiet speed.

    The probe network (a 3x3 convolution, a depthwise 3x3 and a 1x1, 16-32
    channels, global pooling, a linear layer: ~0.6 M MACs on its own 1x28x28
    input, whatever the model's input) is prepared once in ``backend`` with
    ``threads``, ``batch`` and ``device``, the settings of every measurement
    it gauges. ``quiet_ms`` is the lowest
    :data:`QUANTILE`-th percentile of its runs seen so far (``windows``
    short windows ``pause_s`` apart at construction, then every
    measurement's), ms.
    """

    INPUT_SHAPE = (1, 28, 28)

    def __init__(
        self,
        backend: str = "onnxruntime",
        threads: int = 1,
        batch: int = 1,
        device: str = "cpu",
        windows: int = 5,
        pause_s: float = 0.1,
    ):
        gen = torch.Generator().manual_seed(0)
        model = nn.Sequential(
            nn.Conv2d(self.INPUT_SHAPE[0], 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 16, 3, padding=1, groups=16),
            nn.ReLU(),
            nn.Conv2d(16, 32, 1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(32, 10),
        )
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
        with _thread_count(threads):
            self.run = LATENCY_BACKENDS.get(backend)(model.eval(), self.INPUT_SHAPE, threads, batch, device)
            quiet = []
            for k in range(max(1, windows)):
                time.sleep(pause_s if k else 0.0)
                quiet.append(_quantile(_repeat(self.run, 3, 20, 0.02)))
        self.quiet_ms = min(quiet)

    def slowdown(self, times_ms: list[float]) -> float:
        """How much slower than quiet the probe ran in ``times_ms`` (its runs
        in one window, in order; >= 1 up to noise): the slower of the two
        halves' percentiles, so that a window in which a spell began or
        ended counts as slow. A quieter window lowers ``quiet_ms``."""
        half = max(1, len(times_ms) // 2)
        now = [_quantile(times_ms[:half]), _quantile(times_ms[half:] or times_ms)]
        self.quiet_ms = min(self.quiet_ms, *now)
        return max(now) / self.quiet_ms


_PROBES: dict[tuple[Any, ...], Probe] = {}


def probe_for(backend: str, threads: int, batch: int, device: str) -> Probe:
    """This process's probe for these settings (built on first use, then shared:
    the machine's speed is the same for every caller)."""
    key = (backend, threads, batch, str(device))
    if key not in _PROBES:
        _PROBES[key] = Probe(backend, threads, batch, device)
    return _PROBES[key]


def _quantile(times_ms: list[float]) -> float:
    return float(np.percentile(times_ms, QUANTILE))


@contextmanager
def _thread_count(threads: int) -> Iterator[None]:
    """Denormals flushed and torch's intra-op threads set to ``threads`` for the block."""
    if threads < 1:
        raise LightnasError("threads must be at least 1")
    torch.set_flush_denormal(True)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _paired_window(run: Any, probe: Any, repeats: int, min_seconds: float, burst: int = 3) -> tuple[list, list]:
    """Timings (ms) of ``run`` and ``probe`` alternating in bursts, each burst
    after one untimed call, until ``run`` has ``repeats`` and ``min_seconds`` passed."""
    mine: list[float] = []
    theirs: list[float] = []
    start = time.perf_counter()
    while len(mine) < repeats or (time.perf_counter() - start < min_seconds and len(mine) < 50 * repeats):
        mine += _repeat(run, 1, burst, 0.0)
        theirs += _repeat(probe, 1, burst, 0.0)
    return mine, theirs


def _quietest_window(run: Any, probe: Probe, t: Timing) -> tuple[float, list[float], int]:
    """(probe slowdown, the model's times, windows timed) of the quietest of
    up to ``t.retries + 1`` paired windows, stopping at one within ``t.tolerance``."""
    best: tuple[float, list[float]] | None = None
    for window in range(1, t.retries + 2):
        if window > 1:
            time.sleep(t.pause_s)
        times, probe_times = _paired_window(run, probe.run, t.repeats, t.min_seconds)
        slow = probe.slowdown(probe_times)
        if best is None or slow < best[0]:
            best = (slow, times)
        if slow <= 1 + t.tolerance:
            break
    assert best is not None
    return best[0], best[1], window


@dataclass(frozen=True)
class Timing:
    """How a latency is timed (:func:`measure_latency`): ``warmup`` untimed
    runs, at least ``repeats`` timed ones over at least ``min_seconds``; with
    ``gauge``, probe-guarded windows retried ``retries`` times after
    ``pause_s`` seconds while the probe runs over ``tolerance`` slower than quiet."""

    warmup: int = 10
    repeats: int = 30
    min_seconds: float = 0.1
    gauge: bool = True
    tolerance: float = 0.1
    retries: int = 5
    pause_s: float = 0.25


@torch.no_grad()
def measure_latency(
    model: nn.Module,
    input_shape: tuple[int, ...],
    backend: str = "onnxruntime",
    threads: int = 1,
    batch: int = 1,
    device: str = "cpu",
    timing: Timing = Timing(),  # noqa: B008 - frozen, shared safely
) -> dict[str, Any]:
    """Latency of one forward pass, in milliseconds, timed as ``timing`` says.

    Fixed thread count (``threads``), denormals flushed, ``warmup`` untimed
    runs, then at least ``repeats`` timed runs and at least ``min_seconds``
    of timing. ``latency_ms`` is the :data:`QUANTILE`-th percentile of the
    timed runs (see there why not the median, which is reported too). On
    CUDA each run is synchronised. Call it in a process whose global thread
    count already is ``threads`` (``setup_torch(threads)``): on this 2-core
    machine a 1-thread measurement in a process that had used 2 threads ran
    30-60% slower than in a 1-thread process. Returns ``latency_ms``, the
    median (``latency_median_ms``), the interquartile range (``latency_iqr_ms``),
    the mean, and how it was measured (backend, threads, batch, device, repeats).

    With ``gauge`` (default), the runs of this process's :class:`Probe` for
    the same settings alternate with the model's in each window, and a
    window whose probe ran more than ``tolerance`` slower than quiet is
    retried after ``pause_s`` seconds, at most ``retries`` times; the figures
    are the quietest window's, with its ``probe_slowdown`` and the
    ``windows`` timed. When even that window was slow (a spell longer than
    the retries), its times are divided by the probe's slowdown
    (``scaled_to_quiet``): a spell slows the model about as much as the
    probe (three such measurements here, scaled, came within 6-14% of the
    same models timed at quiet speed, unscaled they were 1.5-1.6x off).
    ``gauge=False`` times one window, ungauged.
    """
    prepare = LATENCY_BACKENDS.get(backend)
    with _thread_count(threads):
        run = prepare(model.eval(), input_shape, threads, batch, device)
        if not timing.gauge:
            times = _repeat(run, timing.warmup, timing.repeats, timing.min_seconds)
            return _summary(times, backend, threads, batch, str(device))
        _repeat(run, timing.warmup, 0, 0.0)
        probe = probe_for(backend, threads, batch, device)
        slow, times, window = _quietest_window(run, probe, timing)
    # the spell outlasted the retries: count the model's times at the probe's quiet speed
    scaled = slow > 1 + timing.tolerance
    summary = _summary([v / slow for v in times] if scaled else times, backend, threads, batch, str(device))
    return {**summary, "probe_slowdown": round(slow, 3), "windows": window, "scaled_to_quiet": scaled}


def interleaved_timings(
    items: list[tuple[nn.Module, tuple[int, ...]]],
    backend: str = "torch",
    threads: int = 1,
    sweeps: int = 20,
    burst: int = 5,
    seed: int = 0,
    min_seconds: float = 30.0,
    batch: int = 1,
) -> list[np.ndarray]:
    """Timings (ms, ``batch`` images a run) of each (module, input shape), taken
    so that every item sees the same machine state.

    At least ``sweeps`` passes over all items in shuffled order, and more
    until ``min_seconds`` have passed; each visit runs the item once untimed
    (warm caches) and ``burst`` times timed, so an item's timings are spread
    over the whole measurement window: on a shared machine whose speed drifts
    by tens of percent for seconds at a time, items measured one after the
    other would otherwise be compared at different speeds, and a window of a
    second or two can fall entirely in a slow spell. Same thread rule as :func:`measure_latency`.
    """
    prepare = LATENCY_BACKENDS.get(backend)
    rng = np.random.default_rng(seed)
    prepared = [prepare(module.eval(), shape, threads, batch, "cpu") for module, shape in items]
    results: list[list[float]] = [[] for _ in items]
    with _thread_count(threads), torch.no_grad():
        for fn in prepared:
            _repeat(fn, 5, 0, 0.0)
        start = time.perf_counter()
        done = 0
        while done < sweeps or time.perf_counter() - start < min_seconds:
            done += 1
            for i in rng.permutation(len(items)):
                results[i] += _repeat(prepared[i], 1, burst, 0.0)
    return [np.array(r) for r in results]


def measure_many(
    items: list[tuple[nn.Module, tuple[int, ...]]],
    backend: str = "torch",
    threads: int = 1,
    sweeps: int = 20,
    burst: int = 5,
    seed: int = 0,
    min_seconds: float = 30.0,
    batch: int = 1,
) -> list[float]:
    """``latency_ms`` (the :data:`QUANTILE`-th percentile, ms) of each item,
    from :func:`interleaved_timings`."""
    return [
        float(np.percentile(t, QUANTILE))
        for t in interleaved_timings(items, backend, threads, sweeps, burst, seed, min_seconds, batch)
    ]
