"""Search strategies and the runner (torch-free)."""

from lightnas.search.base import Strategy, create_strategy, list_strategies, register_strategy
from lightnas.search.runner import Runner, Trial

__all__ = ["Runner", "Strategy", "Trial", "create_strategy", "list_strategies", "register_strategy"]
