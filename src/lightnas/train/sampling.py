"""Which sub-networks a training step trains: students spread over the cost range.

Drawing every dimension uniformly concentrates the students around the median
cost of the space (for the default CNN space, half of all draws fall within
1.6x of the median MACs), so the cheap and the costly ends of the front are
trained by the fixed smallest and largest sub-networks only, and the
sub-networks between them are undertrained. :class:`CostSampler` instead draws
each student at a target cost uniform in log-MACs between the smallest and the
largest sub-network (AttentiveNAS, BigNAS-style cost-aware sampling), with
``n`` students per step stratified over ``n`` equal bins of that range.

Costs come from :class:`PartCost`: the MACs of a sub-network are the sum of its
latency-table parts' MACs (the parts cover the network exactly), each part
counted once, so the cost of a candidate is a few dictionary look-ups.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING

import numpy as np

from lightnas.space import Arch, SearchSpace

if TYPE_CHECKING:
    from lightnas.supernets.base import Supernet


class PartCost:
    """MACs of sub-networks as the sum of their parts' MACs (counted once per part).

    ``net`` is a super-network exposing ``latency_parts(arch)`` and ``build_part(part)``.
    """

    def __init__(self, net: Supernet):
        self.net = net
        self._parts: dict[Hashable, float] = {}

    def part_macs(self, part: Hashable) -> float:
        if part not in self._parts:
            # torch: the recipes are looked up (and checked) without it
            import torch

            from lightnas.hardware.cost import count_cost

            with torch.random.fork_rng(devices=[]):  # building a part must not move training's random stream
                module, shape = self.net.build_part(part)
            self._parts[part] = count_cost(module, tuple(shape))["macs"]
        return self._parts[part]

    def macs(self, arch: Arch) -> float:
        """Multiply-accumulates of one forward pass at batch 1."""
        return float(sum(self.part_macs(p) for p in self.net.latency_parts(arch)))


def sample_near(space: SearchSpace, t: float, rng: np.random.Generator, spread: float = 0.5) -> Arch:
    """An architecture whose every dimension sits about ``t`` (0 to 1) of the way
    from its first value to its last, each with Gaussian noise of ``spread``
    (in the same units): around :meth:`SearchSpace.scaled` (``t``), varied."""
    k = space.cardinalities - 1
    idx = np.rint((t + spread * rng.standard_normal(space.n_dims)) * k)
    return space.decode(np.clip(idx, 0, k))


class CostSampler:
    """Draws students at target costs spread uniformly over log-MACs.

    ``draw(rng, n)`` splits ``[log cost(smallest), log cost(largest)]`` into
    ``n`` equal bins and returns one sub-network per bin: the candidate (of
    ``candidates`` drawn near the bin's target with :func:`sample_near`) whose
    log-cost is closest to a target drawn uniformly in the bin.

    ``power`` > 0 draws the targets uniformly in MACs**power instead
    (:meth:`warp`; 1: in MACs): fewer cheap students and more costly ones.
    On the default budget ``power = 0.5`` ranks the long-budget reference's
    sub-networks better (Kendall tau +0.09 and +0.12 on two seeds) at the
    cost of the cheapest ones' accuracy and 1.10-1.14x the step time
    (``docs/benchmarks.md``, "Cheaper steps and the students' costs"); the
    default stays at 0.
    """

    def __init__(self, space: SearchSpace, cost: Callable[[Arch], float], candidates: int = 12, power: float = 0.0):
        self.space = space
        self.cost = cost
        self.candidates = candidates
        self.power = power
        self.lo = math.log(cost(space.smallest()))
        self.hi = math.log(cost(space.largest()))

    def warp(self, u: float) -> float:
        """The log-cost fraction of a target ``u`` uniform in MACs**power (log-MACs at 0)."""
        if self.power == 0:
            return u
        p, lo, hi = self.power, math.exp(self.lo), math.exp(self.hi)
        c = (lo**p + u * (hi**p - lo**p)) ** (1 / p)
        return (math.log(c) - self.lo) / max(self.hi - self.lo, 1e-12)

    def fraction(self, arch: Arch) -> float:
        """Where ``arch`` sits in the log-cost range (0: smallest, 1: largest)."""
        return (math.log(self.cost(arch)) - self.lo) / max(self.hi - self.lo, 1e-12)

    def draw(self, rng: np.random.Generator, n: int) -> list[Arch]:
        out = []
        for i in range(n):
            target = self.warp((i + rng.uniform()) / n)
            pool = [sample_near(self.space, target, rng) for _ in range(self.candidates)]
            out.append(min(pool, key=lambda a: abs(self.fraction(a) - target)))
        return out
