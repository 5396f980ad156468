"""Conformance suite: every registered strategy must pass every test here."""

import pytest

from lightnas.errors import LightnasError
from lightnas.evaluate import FunctionEvaluator
from lightnas.objectives import Constraint, Objective
from lightnas.search import Runner, SearchPlan, create_strategy, list_strategies
from lightnas.space import Choice, SearchSpace
from lightnas.store import Store
from lightnas.testing import StrategyTests
from lightnas.testing.strategies import OBJ, SPACE, cheap, metrics

STRATEGIES = list_strategies()


def test_every_builtin_strategy_is_registered():
    assert {"random", "nsga2", "agemoea", "evolution", "linas", "lightnas"} <= set(STRATEGIES)


# every registered strategy gets the whole conformance suite
for _name in STRATEGIES:
    globals()[f"TestStrategy_{_name.replace('-', '_')}"] = type(
        f"TestStrategy_{_name}", (StrategyTests,), {"strategy": _name}
    )


def test_small_space_is_exhausted_without_error():
    space = SearchSpace((Choice("x", (1, 2, 3)),))
    strat = create_strategy("random", space, [Objective("y")])
    ev = FunctionEvaluator(lambda a: {"y": float(a["x"])})
    runner = Runner(strat, ev, Store(":memory:"), "s", SearchPlan(10), progress=False)
    assert len(runner.run()) == 3


def test_impossible_constraints_stop_with_an_error():
    c = [Constraint("lat", "<=", 0.5)]
    strat = create_strategy("random", SPACE, OBJ, c)
    ev = FunctionEvaluator(metrics, cheap)
    runner = Runner(strat, ev, Store(":memory:"), "s", SearchPlan(5, max_skips=20), progress=False)
    with pytest.raises(LightnasError, match="impossible"):
        runner.run()


def test_unknown_strategy_is_an_error():
    with pytest.raises(LightnasError, match="unknown strategy"):
        create_strategy("nope", SPACE, OBJ)


def test_ask_waits_for_pending_results_instead_of_sampling():
    strat = create_strategy("nsga2", SPACE, OBJ, pop_size=6)
    first = strat.ask(6)  # pymoo's first generation
    assert first.state == "candidates" and len(first) == 6
    assert strat.ask(3).state == "wait"
    strat.tell(first[:5], [metrics(a) for a in first[:5]])
    held = strat.ask(3)  # the generation is not complete: nothing worth proposing yet
    assert held.state == "wait" and len(held) == 0
    strat.tell(first[5:], [metrics(a) for a in first[5:]])
    nxt = strat.ask(3)
    assert nxt.state == "candidates" and 1 <= len(nxt) <= 3 and not set(nxt) & set(first)


def test_exhausted_space_says_so():
    space = SearchSpace((Choice("x", (1, 2)),))
    strat = create_strategy("lightnas", space, [Objective("y")])
    both = strat.ask(5)
    assert len(both) == 2
    strat.tell(both, [{"y": 1.0}, {"y": 2.0}])
    assert strat.ask(1).state == "exhausted"


def test_async_schedule_keeps_every_slot_busy():
    from lightnas.testing.strategies import ShufflingEvaluator

    class Watching(ShufflingEvaluator):
        def collect(self):  # noqa: ANN202
            self.busy.append(len(self.flight))
            return super().collect()

    ev = Watching(slots=3)
    ev.busy = []
    strat = create_strategy("evolution", SPACE, OBJ, pop_size=6, sample_size=3)
    trials = Runner(strat, ev, Store(":memory:"), "s", SearchPlan(30, schedule="async"), progress=False).run()
    assert len(trials) == 30
    assert ev.busy.count(3) >= 25  # full but for the last two collections


def test_unknown_schedule_is_an_error():
    strat = create_strategy("random", SPACE, OBJ)
    with pytest.raises(LightnasError, match="schedule"):
        Runner(strat, FunctionEvaluator(metrics), Store(":memory:"), "s", SearchPlan(5, schedule="eager"))


def test_known_metrics_time_is_counted_apart(monkeypatch):
    """The evaluator's known metrics (tables, proxies: once per architecture)
    are timed apart from the search's own work."""
    import time

    from lightnas.testing.strategies import known

    clock = [0.0]
    calls = []

    def timed_known(arch):
        calls.append(arch)
        clock[0] += 1.0  # only known metrics take time on this clock
        return known(arch)

    monkeypatch.setattr(time, "perf_counter", lambda: clock[0])
    strat = create_strategy("lightnas", SPACE, OBJ)
    evaluator = FunctionEvaluator(metrics, known=timed_known)
    runner = Runner(strat, evaluator, Store(":memory:"), "s", SearchPlan(15), progress=False)
    runner.run()
    assert calls and runner.known_seconds == len(calls)
    assert runner.search_seconds == 0.0


def test_guided_search_learns_a_rare_feasible_region_from_rejections():
    """0.5% of this space meets the bound on a cheap (measured, not known)
    metric: uniform sampling rejects hundreds per feasible architecture; the
    guided strategy models the rejected ones' latency and asks likely
    feasible candidates from its first batch after the start design."""
    space = SearchSpace(tuple(Choice(f"x{i}", (0, 1, 2, 3, 4), ordinal=True) for i in range(6)))

    def lat(a):  # noqa: ANN001, ANN202
        return {"lat": 1.0 + sum(a[f"x{i}"] * (1 + 0.2 * i) for i in range(6))}

    def evaluate(a):  # noqa: ANN001, ANN202
        return {**lat(a), "acc": float(sum(a.values()))}

    c = [Constraint("lat", "<=", 4.0)]
    skips = {}
    for name in ("lightnas", "random"):
        strat = create_strategy(name, space, OBJ, c)
        ev = FunctionEvaluator(evaluate, lat)
        runner = Runner(strat, ev, Store(":memory:"), "s", SearchPlan(12, max_skips=10**5), progress=False)
        trials = runner.run()
        assert sum(t.status == "ok" and t.feasible for t in trials) == 12
        skips[name] = sum(t.status != "ok" for t in trials)
    assert skips["lightnas"] <= 40 < 10 * skips["lightnas"] < skips["random"]
