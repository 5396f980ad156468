"""Conformance suites that every plug-in subclasses (in the manner of Optuna's sampler tests).

    from lightnas.testing import SupernetTests

    class TestMyNet(SupernetTests):
        supernet = "mynet"          # its registered name

pytest then runs every contract test on it. The suites import pytest, torch
only where the contract needs it; lightnas itself never imports this package.
"""

from lightnas.testing.backends import LatencyBackendTests
from lightnas.testing.strategies import StrategyTests
from lightnas.testing.supernets import SupernetTests

__all__ = ["LatencyBackendTests", "StrategyTests", "SupernetTests"]
