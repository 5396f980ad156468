"""Accuracy evaluations in parallel on a Ray cluster (``--executor ray``).

Workers are Ray actors of one CPU each that load the super-network and the
data once from the run folder and evaluate accuracy (BatchNorm calibration,
validation metric). The driver stays the only writer of the store: results
come back to it and the runner stores each as it arrives. Costs and
latencies (``cheap_metrics``) are measured by the driver, or, with
``target_resource``, by one dedicated actor placed on the node that holds
that Ray custom resource; the runner asks for a whole batch's latencies
before any of its accuracies, so no timing shares its machine with a
worker's evaluation.

A worker that dies (killed, out of memory, node lost) is replaced and its
candidate evaluated again by another worker; a candidate whose evaluation
kills three workers stops the search with a one-line error. No wait is
unbounded: every :data:`POLL_S` seconds a waiting driver checks that the
cluster still has a live node (none left, or the cluster unreachable, stops
the search in one line, resumable), and an evaluation that runs past
:meth:`RayPool.patience` (derived from the evaluation times measured so far)
counts as a dead worker. With the
runner's ``batch`` schedule results do not depend on the number of workers
(the strategy's batches, told in the order asked, whatever order they
finish in); with ``async`` a worker that finishes gets the next candidate at
once (:class:`lightnas.search.runner.Runner`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lightnas.config import RunConfig
from lightnas.errors import LightnasError
from lightnas.evaluate.base import Evaluator
from lightnas.space import Arch, Value

WorkerEvaluator = Callable[[Path, RunConfig, int, bool], Evaluator]
"""``(run folder, its configuration, threads, latency) -> evaluator``: what a
worker evaluates with, built in the worker's process (a module-level function,
so that Ray sends it by name); ``latency``: the one that measures the
target's latency, else one that evaluates accuracy."""

MAX_ATTEMPTS = 3
POLL_S = 10.0  # how often a wait checks that the cluster's nodes are alive (a lost node is seen within this)
FIRST_WAIT_S = 600.0  # the longest a first evaluation may take (a worker loads the super-network and the data)
WAIT_FACTOR = 10.0  # later: this many times the slowest evaluation seen, and at least MIN_WAIT_S
MIN_WAIT_S = 60.0


def _ray() -> Any:
    try:
        # Ray is an optional extra
        import ray
    except ImportError:
        raise LightnasError("--executor ray needs Ray: pip install 'lightnas[ray]'") from None
    return ray


class Worker:
    """What a Ray actor runs: the run's super-network and data, loaded once by ``build``."""

    def __init__(
        self, out: str, config: dict[str, object], threads: int, build: WorkerEvaluator, latency: bool = False
    ):
        self.evaluator = build(Path(out), RunConfig.from_dict(config), threads, latency)

    def evaluate(self, arch: dict[str, Value]) -> tuple[dict[str, float], float]:
        """The accuracy of ``arch`` and the seconds it took."""
        t0 = time.perf_counter()
        metrics = self.evaluator.evaluate(self.evaluator.net.space.make(arch))
        return metrics, time.perf_counter() - t0

    def cheap_metrics(self, arch: dict[str, Value]) -> dict[str, float]:
        return self.evaluator.cheap_metrics(self.evaluator.net.space.make(arch))

    def pid(self) -> int:
        return os.getpid()


class RayPool(Evaluator):
    """An :class:`Evaluator` whose ``evaluate_many`` runs on ``workers`` Ray
    actors (one CPU and ``threads`` threads each; default ``cfg.search.workers``)
    that load the run in ``out`` (configuration ``cfg``) with ``build``; ``local`` supplies the
    cheap and known metrics unless ``cfg.search.target_resource`` names the Ray
    custom resource of the node whose latency is searched. Connects to the
    cluster at ``cfg.search.ray_address``, or starts a local one of
    ``workers`` CPUs (no dashboard) that :meth:`close` stops."""

    def __init__(
        self,
        local: Evaluator,
        out: Path,
        cfg: RunConfig,
        build: WorkerEvaluator,
        workers: int | None = None,
        threads: int = 1,
    ) -> None:
        workers = workers or cfg.search.workers
        address, target_resource, config = cfg.search.ray_address, cfg.search.target_resource, cfg.to_dict()
        ray = self.ray = _ray()
        self.local, self.retries = local, 0
        self.started = not ray.is_initialized()
        if self.started:
            if not address:  # a private local cluster: no token file written to the home folder
                os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            try:
                ray.init(
                    address=address or None,
                    num_cpus=None if address else workers,
                    resources=None if address or not target_resource else {target_resource: 1},
                    include_dashboard=False,
                    log_to_driver=False,
                    configure_logging=False,
                )
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = address or "this machine"
                raise LightnasError(f"cannot start or reach a Ray cluster at {where}: {exc}") from None
        if target_resource and ray.cluster_resources().get(target_resource, 0) < 1:
            self.close()
            raise LightnasError(f"no node of the Ray cluster has the resource {target_resource!r}")
        self._actor = ray.remote(num_cpus=1, max_restarts=0)(Worker)
        self._args = (str(out), config, threads, build)
        self.actors = [self._actor.remote(*self._args) for _ in range(workers)]
        self._idle = list(self.actors)
        self._queue: list[Arch] = []
        self._running: dict[Any, tuple[Arch, Any, float]] = {}
        self._seconds: list[float] = []
        self._attempts: dict[Arch, int] = {}
        self.latency = None
        if target_resource:
            place = ray.remote(num_cpus=0, resources={target_resource: 1}, max_restarts=1)(Worker)
            self.latency = place.remote(str(out), config, cfg.latency.threads, build, True)

    def pids(self) -> list[int]:
        """The worker processes' ids (waits until every worker is ready)."""
        return self._get([a.pid.remote() for a in self.actors])

    def _get(self, refs: Any, timeout: float | None = None) -> Any:
        try:
            return self.ray.get(refs, timeout=timeout if timeout is not None else self.patience())
        except self.ray.exceptions.GetTimeoutError:
            self._check_nodes()
            raise LightnasError(f"a Ray worker gave no answer within {self.patience():.0f} s; stopping") from None
        except self.ray.exceptions.RayTaskError as exc:
            raise LightnasError(f"a Ray worker failed: {str(exc.cause).splitlines()[0]}") from None

    def cheap_metrics(self, arch: Arch) -> dict[str, float]:
        if self.latency is None:
            return self.local.cheap_metrics(arch)
        return dict(self._get(self.latency.cheap_metrics.remote(dict(arch))))

    def known_metrics(self, arch: Arch) -> dict[str, float]:
        return self.local.known_metrics(arch)

    @property
    def slots(self) -> int:  # type: ignore[override]
        return len(self.actors)

    @property
    def times_cheap_metrics(self) -> bool:  # type: ignore[override]
        return self.latency is None and bool(getattr(self.local, "times_cheap_metrics", False))

    def evaluate(self, arch: Arch) -> dict[str, float]:
        return next(self.evaluate_many([arch]))[1]

    def submit(self, arch: Arch) -> None:
        self._queue.append(arch)
        self._dispatch()

    def _dispatch(self) -> None:
        while self._queue and self._idle:
            arch, actor = self._queue.pop(0), self._idle.pop(0)
            self._attempts[arch] = self._attempts.get(arch, 0) + 1
            self._running[actor.evaluate.remote(dict(arch))] = (arch, actor, time.monotonic())

    def patience(self) -> float:
        """Seconds an evaluation may run before its worker counts as lost:
        :data:`FIRST_WAIT_S` before any evaluation has finished, then
        :data:`WAIT_FACTOR` times the slowest one (at least :data:`MIN_WAIT_S`)."""
        if not self._seconds:
            return FIRST_WAIT_S
        return max(MIN_WAIT_S, WAIT_FACTOR * max(self._seconds))

    def _check_nodes(self) -> None:
        """A one-line error when the cluster has no live node left (or cannot be asked)."""
        try:
            alive = [n for n in self.ray.nodes() if n.get("Alive")]
        except Exception:  # noqa: BLE001 - any failure to reach the cluster's control store
            alive = []
        if not alive:
            raise LightnasError(
                "the Ray cluster has no live node left; every evaluation already stored is kept "
                "(resume the run with --resume once the cluster is back, or with --executor local)"
            )

    def collect(self) -> tuple[Arch, dict[str, float], float]:
        ray = self.ray
        while self._running:
            ready, _ = ray.wait(list(self._running), num_returns=1, timeout=POLL_S)
            if not ready:
                self._check_nodes()
                late = [r for r, (_, _, t0) in self._running.items() if time.monotonic() - t0 > self.patience()]
                for ref in late:  # hung or on a lost node: counted as a dead worker
                    arch, actor, _ = self._running.pop(ref)
                    self.ray.kill(actor)
                    self._replace(arch, actor, f"ran past {self.patience():.0f} s")
                continue
            (ref,) = ready
            arch, actor, _ = self._running.pop(ref)
            try:
                metrics, seconds = self._get(ref)
            except ray.exceptions.RayActorError:  # the worker died: replace it, evaluate again elsewhere
                self._replace(arch, actor, "died")
                continue
            self._seconds.append(float(seconds))
            self._idle.append(actor)
            del self._attempts[arch]
            self._dispatch()
            return arch, metrics, seconds
        raise RuntimeError("collect() without a submitted evaluation")

    def _replace(self, arch: Arch, actor: Any, what: str) -> None:
        """A new worker for ``actor``, and ``arch`` queued first again; a
        one-line error once :data:`MAX_ATTEMPTS` workers have failed on it."""
        if self._attempts[arch] >= MAX_ATTEMPTS:
            raise LightnasError(f"{MAX_ATTEMPTS} Ray workers {what} evaluating {arch.key}; stopping the search")
        self.retries += 1
        self.actors.remove(actor)
        replacement = self._actor.remote(*self._args)
        self.actors.append(replacement)
        self._idle.append(replacement)
        self._queue.insert(0, arch)
        self._dispatch()

    def close(self) -> None:
        """Stop the workers, and the local cluster if this pool started it."""
        for a in [*getattr(self, "actors", []), *([self.latency] if getattr(self, "latency", None) else [])]:
            self.ray.kill(a)
        if self.started and self.ray.is_initialized():
            self.ray.shutdown()
