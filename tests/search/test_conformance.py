"""Conformance suite: every registered strategy must pass every test here."""

import pytest

from lightnas.errors import LightnasError
from lightnas.evaluate import FunctionEvaluator
from lightnas.objectives import Constraint, Objective
from lightnas.search import Runner, create_strategy, list_strategies
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
