"""Search strategies and the runner (torch-free)."""

from lightnas.search.base import STRATEGIES, Strategy, create_strategy, list_strategies, register_strategy
from lightnas.search.runner import Runner, SearchPlan, Trial

__all__ = [
    "STRATEGIES",
    "Runner",
    "SearchPlan",
    "Strategy",
    "Trial",
    "create_strategy",
    "list_strategies",
    "register_strategy",
]
