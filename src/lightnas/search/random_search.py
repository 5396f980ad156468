"""Uniform random search: the baseline every other strategy must beat."""

from __future__ import annotations

from lightnas.search.base import Strategy, register_strategy
from lightnas.space import Arch


@register_strategy("random")
class RandomSearch(Strategy):
    """Uniform samples without replacement."""

    def _ask(self, n: int) -> list[Arch]:
        return self.random_new(n)
