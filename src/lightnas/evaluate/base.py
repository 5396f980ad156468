"""The evaluator contract (torch-free)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

from lightnas.space import Arch


class Evaluator:
    """``evaluate(arch)`` returns the full metric dictionary of one architecture.

    ``cheap_metrics(arch)`` returns the metrics that cost little to obtain
    (parameters, MACs, table latency, ...). The runner checks constraints on
    them before paying for ``evaluate`` and records rejected architectures
    as skipped. The default has none.

    The runner asks for the cheap metrics of a whole batch before it
    evaluates any of it (``evaluate_many``), so a latency measured there never
    shares the machine with an evaluation running in parallel.

    ``known_metrics(arch)`` returns the metrics known in microseconds, without
    building or measuring anything (table look-ups, latency-table
    predictions): strategies may compute them for thousands of candidates
    instead of predicting them. They must equal what ``cheap_metrics`` or
    ``evaluate`` report for the same metric. The default has none.

    Evaluations run through ``submit(arch)`` and ``collect()``: up to
    ``slots`` of them at once (1 here, one per worker in a parallel executor
    such as :mod:`lightnas.evaluate.ray_pool`), each submitted architecture
    collected exactly once, in the order they finish. ``times_cheap_metrics``
    is True when ``cheap_metrics`` times something on the machine that
    evaluates, so that no evaluation may run meanwhile.
    """

    slots: int = 1
    times_cheap_metrics: bool = False

    def evaluate(self, arch: Arch) -> dict[str, float]:
        raise NotImplementedError

    def submit(self, arch: Arch) -> None:
        """Start evaluating ``arch``; its metrics come back from :meth:`collect`.
        The default queues it and evaluates it when collected."""
        self.__dict__.setdefault("_queued", []).append(arch)

    def collect(self) -> tuple[Arch, dict[str, float], float]:
        """Wait for the next submitted evaluation to finish: ``(arch, metrics,
        seconds it took)``. Raises ``RuntimeError`` when nothing is submitted."""
        queued = self.__dict__.get("_queued")
        if not queued:
            raise RuntimeError("collect() without a submitted evaluation")
        arch = queued.pop(0)
        t0 = time.perf_counter()
        metrics = self.evaluate(arch)
        return arch, metrics, time.perf_counter() - t0

    def evaluate_many(self, archs: Sequence[Arch]) -> Iterator[tuple[int, dict[str, float], float]]:
        """Evaluate the distinct ``archs`` (all submitted at once); yields
        ``(position in archs, metrics, seconds)`` as each finishes, every
        position exactly once."""
        position = {a: i for i, a in enumerate(archs)}
        for a in archs:
            self.submit(a)
        for _ in archs:
            arch, metrics, seconds = self.collect()
            yield position[arch], metrics, seconds

    def cheap_metrics(self, arch: Arch) -> dict[str, float]:
        return {}

    def known_metrics(self, arch: Arch) -> dict[str, float]:
        return {}

    def close(self) -> None:  # noqa: B027 - an optional hook
        """Release workers or connections the evaluator holds; the default holds none."""


class FunctionEvaluator(Evaluator):
    """Wraps a plain function ``arch -> metrics`` (and optional cheap and
    known ones, see :class:`Evaluator`)."""

    def __init__(
        self,
        fn: Callable[[Arch], dict[str, float]],
        cheap: Callable[[Arch], dict[str, float]] | None = None,
        known: Callable[[Arch], dict[str, float]] | None = None,
    ):
        self.fn = fn
        self.cheap = cheap
        self.known = known

    def evaluate(self, arch: Arch) -> dict[str, float]:
        return dict(self.fn(arch))

    def cheap_metrics(self, arch: Arch) -> dict[str, float]:
        return dict(self.cheap(arch)) if self.cheap else {}

    def known_metrics(self, arch: Arch) -> dict[str, float]:
        return dict(self.known(arch)) if self.known else {}
