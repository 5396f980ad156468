"""The runner: drives ask -> evaluate -> store -> tell under an exact budget."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from lightnas.errors import LightnasError
from lightnas.evaluate.base import Evaluator
from lightnas.objectives import Constraint, feasible
from lightnas.search.base import Strategy
from lightnas.space import Arch, SearchSpace
from lightnas.store import OK, SKIPPED, Store


@dataclass(frozen=True)
class Trial:
    """One architecture the strategy asked for, with its outcome."""

    arch: Arch
    metrics: dict[str, float]
    status: str  # "ok" (evaluated) or "skipped" (a cheap constraint failed)
    feasible: bool


class Runner:
    """Runs a search.

    Guarantees: at most ``budget`` evaluations in the study (counting those
    already in the store); no architecture evaluated twice (the store is
    consulted before every evaluation, so a resumed run replays stored
    results instead of re-evaluating them, and a deterministic strategy
    resumes exactly where it stopped); every evaluation committed to the
    store as soon as it finishes. Architectures that fail a constraint on a
    cheap metric are stored as skipped and do not use the budget; at most
    ``max_skips`` of them are tolerated before the constraints are declared
    too tight.
    """

    def __init__(
        self,
        space: SearchSpace,
        evaluator: Evaluator,
        strategy: Strategy,
        store: Store,
        study: str,
        budget: int,
        constraints: Sequence[Constraint] = (),
        batch_size: int = 8,
        max_skips: int | None = None,
        progress: bool = True,
    ):
        if budget < 1:
            raise LightnasError(f"budget must be at least 1, not {budget}")
        self.space = space
        self.evaluator = evaluator
        self.strategy = strategy
        strategy.use_known_metrics(evaluator.known_metrics)
        self.store = store
        self.study = study
        self.budget = budget
        self.constraints = tuple(constraints)
        self.batch_size = batch_size
        self.max_skips = max_skips if max_skips is not None else 50 * budget + 1000
        self.progress = progress
        self.search_seconds = 0.0  # time spent inside ask/tell

    def run(self) -> list[Trial]:
        stored = {r.arch_key: r for r in self.store.records(self.study)}
        done = sum(1 for r in stored.values() if r.status == OK)
        if done >= self.budget:
            # the study already holds its budget: replay everything stored
            return [self._trial(self.space.make(r.arch), r.metrics, r.status) for r in stored.values()]
        trials: list[Trial] = []
        told = 0
        skips = 0
        bar = self._bar(done)
        try:
            while told < self.budget:
                t0 = time.perf_counter()
                archs = self.strategy.ask(min(self.batch_size, self.budget - told))
                self.search_seconds += time.perf_counter() - t0
                if not archs:
                    break  # the space is exhausted
                batch = self._batch(archs, stored, bar)
                told += sum(t.status == OK for t in batch)
                skips += sum(t.status != OK for t in batch)
                t0 = time.perf_counter()
                self.strategy.tell([t.arch for t in batch], [t.metrics for t in batch])
                self.search_seconds += time.perf_counter() - t0
                trials.extend(batch)
                if skips > self.max_skips:
                    raise LightnasError(
                        f"constraints look impossible: {skips} architectures rejected by "
                        f"{', '.join(map(str, self.constraints))} and only {told} feasible"
                    )
        finally:
            if bar is not None:
                bar.close()
        return trials

    # -- internals ------------------------------------------------------------
    def _trial(self, arch: Arch, metrics: dict[str, float], status: str) -> Trial:
        return Trial(arch, metrics, status, status == OK and feasible(metrics, self.constraints))

    def _batch(self, archs: Sequence[Arch], stored: dict, bar: object) -> list[Trial]:
        """The trials of one asked batch, in the order asked: stored ones
        replayed, cheap metrics of the others first (constraints checked,
        rejected ones stored as skipped), then the rest evaluated together
        (``evaluate_many``), each stored as soon as it finishes."""
        trials: dict[int, Trial] = {}
        pending: list[tuple[int, Arch, dict[str, float], float]] = []
        for i, arch in enumerate(archs):
            rec = stored.get(arch.key)
            if rec is not None:
                trials[i] = self._trial(arch, rec.metrics, rec.status)
                continue
            t0 = time.perf_counter()
            cheap = self.evaluator.cheap_metrics(arch)
            if not feasible(cheap, [c for c in self.constraints if c.metric in cheap]):
                self.store.add(self.study, arch.key, dict(arch), cheap, SKIPPED, time.perf_counter() - t0)
                trials[i] = self._trial(arch, cheap, SKIPPED)
                continue
            pending.append((i, arch, cheap, time.perf_counter() - t0))
        for j, result, seconds in self.evaluator.evaluate_many([p[1] for p in pending]):
            i, arch, cheap, cheap_seconds = pending[j]
            metrics = {**cheap, **result}
            self.store.add(self.study, arch.key, dict(arch), metrics, OK, cheap_seconds + seconds)
            if bar is not None:
                bar.update(1)  # type: ignore[attr-defined]
            trials[i] = self._trial(arch, metrics, OK)
        return [trials[i] for i in range(len(archs))]

    def _bar(self, initial: int) -> object:
        if not self.progress:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=self.budget, initial=initial, desc="search", unit="eval", file=sys.stderr)
