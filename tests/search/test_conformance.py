"""Conformance suite: every registered strategy must pass every test here."""

import numpy as np
import pytest

from lightnas.errors import LightnasError
from lightnas.evaluate import FunctionEvaluator
from lightnas.objectives import Constraint, Objective
from lightnas.search import Runner, create_strategy, list_strategies
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


def metrics(arch):
    code = SPACE.encode(arch)
    lat = 1.0 + code[0] + 0.5 * code[1] + 0.3 * code[2] + 0.1 * code[3]
    acc = 50 + 10 * np.log1p(code[0] + code[1] + code[2]) + (3 if arch["c"] == "y" else 0)
    return {"acc": float(acc), "lat": float(lat)}


def cheap(arch):
    return {"lat": metrics(arch)["lat"]}


STRATEGIES = list_strategies()


def run(name, budget, seed=0, constraints=(), store=None, study="s", evaluator=None):
    strat = create_strategy(name, SPACE, OBJ, constraints, seed=seed)
    store = store or Store(":memory:")
    runner = Runner(
        SPACE,
        evaluator or FunctionEvaluator(metrics, cheap),
        strat,
        store,
        study,
        budget,
        constraints,
        batch_size=4,
        progress=False,
    )
    return runner.run(), store


def test_every_builtin_strategy_is_registered():
    assert {"random", "nsga2", "agemoea", "evolution", "linas", "lightnas"} <= set(STRATEGIES)


@pytest.mark.parametrize("name", STRATEGIES)
def test_exact_budget_and_no_duplicates(name):
    trials, store = run(name, 37)
    ok = [t for t in trials if t.status == "ok"]
    assert len(ok) == 37
    assert len({t.arch for t in trials}) == len(trials)
    assert store.count("s") == 37


@pytest.mark.parametrize("name", STRATEGIES)
def test_same_seed_same_sequence(name):
    a, _ = run(name, 25, seed=3)
    b, _ = run(name, 25, seed=3)
    assert [t.arch for t in a] == [t.arch for t in b]


@pytest.mark.parametrize("name", STRATEGIES)
def test_constraints_skip_infeasible_and_results_feasible(name):
    c = [Constraint("lat", "<=", 3.0)]
    trials, store = run(name, 20, constraints=c)
    ok = [t for t in trials if t.status == "ok"]
    assert len(ok) == 20
    assert all(t.metrics["lat"] <= 3.0 for t in ok)
    assert all(t.feasible for t in ok)
    skipped = [t for t in trials if t.status == "skipped"]
    assert all(t.metrics["lat"] > 3.0 for t in skipped)
    assert all("acc" not in t.metrics for t in skipped)  # never paid for


@pytest.mark.parametrize("name", STRATEGIES)
def test_ask_tell_contract(name):
    strat = create_strategy(name, SPACE, OBJ, seed=1)
    seen = set()
    for _ in range(6):
        archs = strat.ask(5)
        assert 1 <= len(archs) <= 5
        assert len(set(archs)) == len(archs)
        assert not (set(archs) & seen)
        seen |= set(archs)
        strat.tell(archs, [metrics(a) for a in archs])
    with pytest.raises(ValueError):
        strat.tell(archs[:1], [metrics(archs[0])])


class Killed(Exception):
    pass


@pytest.mark.parametrize("name", STRATEGIES)
def test_resume_after_kill_loses_and_repeats_nothing(name, tmp_path):
    calls = []

    def dying(arch):
        if len(calls) == 13:
            raise Killed
        calls.append(arch)
        return metrics(arch)

    store = Store(tmp_path / "db.sqlite")
    with pytest.raises(Killed):
        run(name, 30, seed=2, store=store, evaluator=FunctionEvaluator(dying, cheap))
    store.close()
    assert len(calls) == 13
    store = Store(tmp_path / "db.sqlite")
    assert store.count("s") == 13
    calls2 = []

    def counting(arch):
        calls2.append(arch)
        return metrics(arch)

    trials, _ = run(name, 30, seed=2, store=store, evaluator=FunctionEvaluator(counting, cheap))
    assert len(calls2) == 17
    assert not set(calls) & set(calls2)
    assert store.count("s") == 30
    uninterrupted, _ = run(name, 30, seed=2)
    assert [t.arch for t in trials] == [t.arch for t in uninterrupted]


def test_small_space_is_exhausted_without_error():
    space = SearchSpace((Choice("x", (1, 2, 3)),))
    strat = create_strategy("random", space, [Objective("y")])
    runner = Runner(
        space, FunctionEvaluator(lambda a: {"y": float(a["x"])}), strat, Store(":memory:"), "s", 10, progress=False
    )
    assert len(runner.run()) == 3


def test_impossible_constraints_stop_with_an_error():
    c = [Constraint("lat", "<=", 0.5)]
    strat = create_strategy("random", SPACE, OBJ, c)
    runner = Runner(
        SPACE, FunctionEvaluator(metrics, cheap), strat, Store(":memory:"), "s", 5, c, max_skips=20, progress=False
    )
    with pytest.raises(LightnasError, match="impossible"):
        runner.run()


def test_unknown_strategy_is_an_error():
    with pytest.raises(LightnasError, match="unknown strategy"):
        create_strategy("nope", SPACE, OBJ)
