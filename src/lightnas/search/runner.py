"""The runner: drives ask -> evaluate -> store -> tell under an exact budget."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from tqdm.auto import tqdm

from lightnas.errors import LightnasError
from lightnas.evaluate.base import Evaluator
from lightnas.objectives import Constraint, feasible
from lightnas.search.base import EXHAUSTED, Asked, Strategy
from lightnas.space import Arch, SearchSpace
from lightnas.store import OK, SKIPPED, Store


@dataclass(frozen=True)
class Trial:
    """One architecture the strategy asked for, with its outcome."""

    arch: Arch
    metrics: dict[str, float]
    status: str  # "ok" (evaluated) or "skipped" (a cheap constraint failed)
    feasible: bool


SCHEDULES = ("batch", "async")


@dataclass(frozen=True)
class SearchPlan:
    """How much a search may evaluate and how: ``budget`` evaluations,
    asked ``batch_size`` at a time, on the ``schedule`` (see :class:`Runner`),
    giving up after ``max_skips`` architectures rejected by a cheap
    constraint (None: 50 per evaluation of the budget, plus 1000)."""

    budget: int
    batch_size: int = 8
    schedule: str = "batch"
    max_skips: int | None = None

    def __post_init__(self) -> None:
        if self.budget < 1:
            raise LightnasError(f"budget must be at least 1, not {self.budget}")
        if self.schedule not in SCHEDULES:
            raise LightnasError(f"schedule must be one of {', '.join(SCHEDULES)}, not {self.schedule!r}")


class Runner:
    """Runs a search.

    Guarantees: at most ``budget`` evaluations in the study (counting those
    already in the store); no architecture evaluated twice (the store is
    consulted before every evaluation); every evaluation committed to the
    store as soon as it finishes. Architectures that fail a constraint on a
    cheap metric are stored as skipped and do not use the budget; at most
    ``max_skips`` of them are tolerated before the constraints are declared
    too tight.

    Two schedules of the evaluator's ``slots`` (parallel evaluations):

    - ``batch`` (default): the strategy's batches of ``batch_size``, each
      told whole, in the order asked, whatever order its evaluations finish
      in. The same seed gives the same evaluations on any number of workers,
      and a resumed run replays the stored results the strategy asks for
      again, so a deterministic strategy resumes exactly where it stopped.
    - ``async``: every slot kept busy; each result is told as it arrives, a
      free slot takes the next asked candidate, and once none is left the
      strategy is asked for up to ``batch_size`` more while the other slots
      work (a strategy that has nothing worth proposing before a pending
      result says ``wait``, see :class:`lightnas.search.base.Asked`). A
      resumed run tells the strategy every stored result first.

    The cheap metrics of the architectures asked together are obtained
    before any of them is submitted; when the evaluator times them on its
    own machine (``times_cheap_metrics``) no evaluation is in flight meanwhile.
    """

    def __init__(
        self,
        strategy: Strategy,
        evaluator: Evaluator,
        store: Store,
        study: str,
        plan: SearchPlan,
        progress: bool = True,
    ):
        self.space: SearchSpace = strategy.space
        self.constraints: tuple[Constraint, ...] = strategy.constraints  # the strategy searches under them
        self.evaluator = evaluator
        self.strategy = strategy
        strategy.use_known_metrics(self._known_metrics)
        self.store = store
        self.study = study
        self.budget = plan.budget
        self.batch_size = plan.batch_size
        self.max_skips = plan.max_skips if plan.max_skips is not None else 50 * plan.budget + 1000
        self.progress = progress
        self.schedule = plan.schedule
        self.search_seconds = 0.0  # time spent inside ask/tell, known_seconds excluded
        self.known_seconds = 0.0  # time inside the evaluator's known_metrics (proxies, tables: once per arch)

    def run(self) -> list[Trial]:
        stored = {r.arch_key: r for r in self.store.records(self.study)}
        done = sum(1 for r in stored.values() if r.status == OK)
        if done >= self.budget:
            # the study already holds its budget: replay everything stored
            return [self._trial(self.space.make(r.arch), r.metrics, r.status) for r in stored.values()]
        self._trials: list[Trial] = []
        self._results: dict[Arch, Trial] = {}  # known, not yet told
        self._asked: list[Arch] = []  # asked, not yet told, in the order asked
        self._ok = 0  # ok results told or held
        self._skips = 0
        new = 0  # evaluations submitted by this run
        in_flight: dict[Arch, tuple[dict[str, float], float]] = {}
        asynchronous = self.schedule == "async"
        if asynchronous and stored:  # resume: the strategy learns every stored result first
            self._warm_start(stored)
            stored = {}
        queue: list[tuple[Arch, dict[str, float], float]] = []  # asked, feasible, not yet submitted
        exhausted = full = False
        bar = self._bar(done)
        try:
            while True:
                while queue and len(in_flight) < self.evaluator.slots:
                    arch, cheap, seconds = queue.pop(0)
                    in_flight[arch] = (cheap, seconds)
                    self.evaluator.submit(arch)
                if asynchronous:  # when a worker is free and nothing is queued for it
                    can_ask = len(in_flight) < self.evaluator.slots and not queue
                else:  # the next batch once the last is told
                    can_ask = not self._asked
                room = self.budget - self._ok - len(in_flight) - len(queue)
                ask = can_ask and room > 0 and not exhausted and not full
                asked = self._ask(min(self.batch_size, room)) if ask else Asked()
                exhausted = exhausted or asked.state == EXHAUSTED
                if asked:
                    for item in self._accept(asked, stored, in_flight, bar):
                        if done + new >= self.budget:  # a resumed strategy that strays from its stored asks
                            full = True
                            break
                        queue.append(item)
                        new += 1
                elif in_flight:
                    self._collect(in_flight, bar)
                elif not queue:
                    break
                if asynchronous or not (in_flight or queue):
                    self._tell()
                if self._skips > self.max_skips:
                    raise LightnasError(
                        f"constraints look impossible: {self._skips} architectures rejected by "
                        f"{', '.join(map(str, self.constraints))} and only {self._ok} feasible"
                    )
        finally:
            if bar is not None:
                bar.close()
        return self._trials

    # -- internals ------------------------------------------------------------
    def _trial(self, arch: Arch, metrics: dict[str, float], status: str) -> Trial:
        return Trial(arch, metrics, status, status == OK and feasible(metrics, self.constraints))

    def _known_metrics(self, arch: Arch) -> Mapping[str, float]:
        t0 = time.perf_counter()
        try:
            return self.evaluator.known_metrics(arch)
        finally:
            self.known_seconds += time.perf_counter() - t0

    @contextmanager
    def _search_clock(self) -> Iterator[None]:
        """Counts the time inside into ``search_seconds``, known metrics excluded."""
        t0, known = time.perf_counter(), self.known_seconds
        try:
            yield
        finally:
            self.search_seconds += time.perf_counter() - t0 - (self.known_seconds - known)

    def _ask(self, n: int) -> Asked:
        with self._search_clock():
            return self.strategy.ask(n)

    def _record(self, arch: Arch, metrics: dict[str, float], status: str) -> None:
        self._results[arch] = self._trial(arch, metrics, status)
        self._ok += status == OK
        self._skips += status != OK

    def _warm_start(self, stored: dict) -> None:
        """Tell the strategy every stored result (an asynchronous resume)."""
        for r in stored.values():
            arch = self.space.make(r.arch)
            self._record(arch, r.metrics, r.status)
            self._asked.append(arch)
        self._tell()

    def _accept(
        self, asked: Sequence[Arch], stored: dict, in_flight: dict[Arch, tuple[dict[str, float], float]], bar: object
    ) -> list[tuple[Arch, dict[str, float], float]]:
        """Record what the store already holds of ``asked``; return the
        others that pass the constraints on their cheap metrics, with them.
        When the evaluator times those here, the evaluations in flight finish
        first: a timing never shares the machine with an evaluation."""
        self._asked.extend(asked)
        for a in asked:
            if a.key in stored:
                self._record(a, stored[a.key].metrics, stored[a.key].status)
        fresh = [a for a in asked if a.key not in stored]
        if fresh and in_flight and self.evaluator.times_cheap_metrics:
            while in_flight:
                self._collect(in_flight, bar)
        return self._cheap(fresh)

    def _cheap(self, archs: Sequence[Arch]) -> list[tuple[Arch, dict[str, float], float]]:
        """The cheap metrics of ``archs``; those a constraint rejects are
        stored as skipped, the others returned with the seconds they took."""
        out = []
        for arch in archs:
            t0 = time.perf_counter()
            cheap = self.evaluator.cheap_metrics(arch)
            if not feasible(cheap, [c for c in self.constraints if c.metric in cheap]):
                self.store.add(self.study, arch.key, dict(arch), cheap, SKIPPED, time.perf_counter() - t0)
                self._record(arch, cheap, SKIPPED)
            else:
                out.append((arch, cheap, time.perf_counter() - t0))
        return out

    def _collect(self, in_flight: dict[Arch, tuple[dict[str, float], float]], bar: object) -> None:
        """Wait for the next evaluation to finish and store it."""
        arch, result, seconds = self.evaluator.collect()
        cheap, cheap_seconds = in_flight.pop(arch)
        metrics = {**cheap, **result}
        self.store.add(self.study, arch.key, dict(arch), metrics, OK, cheap_seconds + seconds)
        if bar is not None:
            bar.update(1)  # type: ignore[attr-defined]
        self._record(arch, metrics, OK)

    def _tell(self) -> None:
        """Tell the strategy every known result, in the order asked."""
        known = [a for a in self._asked if a in self._results]
        if not known:
            return
        trials = [self._results.pop(a) for a in known]
        with self._search_clock():
            self.strategy.tell([t.arch for t in trials], [t.metrics for t in trials])
        told = set(known)
        self._asked = [a for a in self._asked if a not in told]
        self._trials.extend(trials)

    def _bar(self, initial: int) -> object:
        if not self.progress:
            return None

        return tqdm(total=self.budget, initial=initial, desc="search", unit="eval", file=sys.stderr)
