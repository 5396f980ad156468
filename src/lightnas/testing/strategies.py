"""``StrategyTests``: the strategy contract of :mod:`lightnas.search.base`, tested (torch-free)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest

from lightnas.evaluate import FunctionEvaluator
from lightnas.objectives import Constraint, Objective
from lightnas.search import Runner, SearchPlan, create_strategy
from lightnas.space import Choice, SearchSpace
from lightnas.store import Store

SPACE = SearchSpace(
    (
        Choice("d", (1, 2, 3), ordinal=True),
        Choice("a", (0, 1, 2, 3), ordinal=True),
        Choice("b", (0, 1, 2, 3), active_if=("d", 2), ordinal=True),
        Choice("c", ("x", "y", "z")),
    )
)
OBJ = [Objective("acc", "max"), Objective("lat", "min")]


def metrics(arch: Any) -> dict[str, float]:
    """A smooth two-objective toy problem over :data:`SPACE`."""
    code = SPACE.encode(arch)
    lat = 1.0 + code[0] + 0.5 * code[1] + 0.3 * code[2] + 0.1 * code[3]
    acc = 50 + 10 * np.log1p(code[0] + code[1] + code[2]) + (3 if arch["c"] == "y" else 0)
    return {"acc": float(acc), "lat": float(lat)}


def cheap(arch: Any) -> dict[str, float]:
    return {"lat": metrics(arch)["lat"]}


def known(arch: Any) -> dict[str, float]:
    """Known without evaluation: the latency and a toy zero-cost proxy
    (a noisy, monotone view of the accuracy's capacity term)."""
    code = SPACE.encode(arch)
    return {**cheap(arch), "zc_toy": float(code[0] + code[1] + code[2] + 0.5 * (code[3] == 1))}


def toy_evaluator(fn: Any = metrics) -> FunctionEvaluator:
    """The toy problem's evaluator: metrics, cheap latency and known metrics."""
    return FunctionEvaluator(fn, cheap, known)


class ShufflingEvaluator(FunctionEvaluator):
    """The toy evaluator as a parallel executor of ``slots`` workers whose
    evaluations finish in a seeded random order."""

    def __init__(self, fn: Any = metrics, slots: int = 3, seed: int = 0):
        super().__init__(fn, cheap, known)
        self.slots = slots
        self.rng = np.random.default_rng(seed)
        self.flight: list[Any] = []

    def submit(self, arch: Any) -> None:
        assert len(self.flight) < self.slots, "more evaluations submitted than the executor has slots"
        self.flight.append(arch)

    def collect(self) -> tuple[Any, dict[str, float], float]:
        arch = self.flight.pop(int(self.rng.integers(len(self.flight))))
        return arch, self.evaluate(arch), 0.0


class _Killed(Exception):
    pass


def _recording(calls: list, die_after: int | None = None) -> Any:
    """The toy metrics, each call recorded in ``calls``; raises :class:`_Killed`
    once ``die_after`` calls are recorded (a search killed mid-way)."""

    def fn(arch: Any) -> dict[str, float]:
        if len(calls) == die_after:
            raise _Killed
        calls.append(arch)
        return metrics(arch)

    return fn


class StrategyTests:
    """Subclass with ``strategy = "name"`` (and ``options`` for its keywords)."""

    strategy: ClassVar[str] = ""
    options: ClassVar[dict[str, Any]] = {}

    def run(self, budget: int, seed: int = 0, constraints=(), store=None, evaluator=None, schedule="batch"):  # noqa: ANN001, ANN201
        strat = create_strategy(self.strategy, SPACE, OBJ, constraints, seed=seed, **self.options)
        store = store or Store(":memory:")
        evaluator = evaluator or toy_evaluator()
        runner = Runner(strat, evaluator, store, "s", SearchPlan(budget, 4, schedule), progress=False)
        self.last = strat
        return runner.run(), store

    def test_async_exact_budget_every_result_told_once(self) -> None:
        c = [Constraint("lat", "<=", 4.0)]
        trials, store = self.run(37, constraints=c, evaluator=ShufflingEvaluator(), schedule="async")
        ok = [t for t in trials if t.status == "ok"]
        assert len(ok) == 37 == store.count("s")
        assert len({t.arch for t in trials}) == len(trials)
        assert all(t.metrics["lat"] <= 4.0 for t in ok)
        assert self.last.archs == [t.arch for t in trials] and not self.last.pending

    def test_async_resume_after_kill_keeps_the_budget(self, tmp_path) -> None:  # noqa: ANN001
        calls: list = []
        store = Store(tmp_path / "db.sqlite")
        with pytest.raises(_Killed):
            self.run(30, seed=2, store=store, evaluator=ShufflingEvaluator(_recording(calls, 11)), schedule="async")
        assert store.count("s") == 11
        calls2: list = []
        trials, _ = self.run(
            30, seed=2, store=store, evaluator=ShufflingEvaluator(_recording(calls2)), schedule="async"
        )
        assert len(calls2) == 19 and not set(calls) & set(calls2)
        assert store.count("s") == 30 and len(trials) == 30

    def test_exact_budget_and_no_duplicates(self) -> None:
        trials, store = self.run(37)
        assert len([t for t in trials if t.status == "ok"]) == 37
        assert len({t.arch for t in trials}) == len(trials)
        assert store.count("s") == 37

    def test_same_seed_same_sequence(self) -> None:
        a, _ = self.run(25, seed=3)
        b, _ = self.run(25, seed=3)
        assert [t.arch for t in a] == [t.arch for t in b]

    def test_constraints_skip_infeasible_and_results_feasible(self) -> None:
        c = [Constraint("lat", "<=", 3.0)]
        trials, _ = self.run(20, constraints=c)
        ok = [t for t in trials if t.status == "ok"]
        assert len(ok) == 20
        assert all(t.metrics["lat"] <= 3.0 and t.feasible for t in ok)
        skipped = [t for t in trials if t.status == "skipped"]
        assert all(t.metrics["lat"] > 3.0 for t in skipped)
        assert all("acc" not in t.metrics for t in skipped)  # never paid for

    def test_ask_tell_contract(self) -> None:
        strat = create_strategy(self.strategy, SPACE, OBJ, seed=1, **self.options)
        strat.use_known_metrics(known)
        seen: set = set()
        archs: list = []
        for _ in range(6):
            archs = strat.ask(5)
            assert 1 <= len(archs) <= 5
            assert len(set(archs)) == len(archs)
            assert not (set(archs) & seen)
            seen |= set(archs)
            strat.tell(archs, [metrics(a) for a in archs])
        with pytest.raises(ValueError):
            strat.tell(archs[:1], [metrics(archs[0])])

    def test_resume_after_kill_loses_and_repeats_nothing(self, tmp_path) -> None:  # noqa: ANN001
        calls: list = []
        store = Store(tmp_path / "db.sqlite")
        with pytest.raises(_Killed):
            self.run(30, seed=2, store=store, evaluator=toy_evaluator(_recording(calls, 13)))
        store.close()
        assert len(calls) == 13
        store = Store(tmp_path / "db.sqlite")
        assert store.count("s") == 13
        calls2: list = []
        trials, _ = self.run(30, seed=2, store=store, evaluator=toy_evaluator(_recording(calls2)))
        assert len(calls2) == 17 and not set(calls) & set(calls2)
        assert store.count("s") == 30
        uninterrupted, _ = self.run(30, seed=2)
        assert [t.arch for t in trials] == [t.arch for t in uninterrupted]
