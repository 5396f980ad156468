"""Training recipes: which sub-networks each step trains (torch-free).

Every step trains a teacher (the largest sub-network) on the labels and, with
the task's distillation loss, the students a :class:`Recipe` names for that
step. A recipe is a schedule of *phases*: in each phase only dimensions of
some elastic kinds (``kernel``, ``depth``, ... as the super-network's
``elastic_groups()`` says) vary; the others are pinned to their largest value.
Students are the smallest sub-network (where ``Recipe.smallest``) plus
``TrainConfig.n_random`` drawn by the recipe's sampler: uniformly over every
dimension (``sampler = "uniform"``) or spread over the cost range
(``sampler = "cost"``, see :mod:`lightnas.train.sampling`).

``auto`` (the default) is not a recipe but a rule, :func:`resolve_recipe`:
the run's budget in image-epochs (training images times epochs) picks the
recipe that measured best at that budget with ``bench/fidelity.py``
(``docs/benchmarks.md``, "Fidelity"), and the same budget decides whether
training augments (:meth:`TrainConfig.augments`, whatever the recipe):

- under :data:`~lightnas.config.LONG_BUDGET` (the default CPU run: 12,000
  images x 8 epochs = 96k; measured at 13,500 x 8 = 108k) ``spread``,
  without augmentation: on that budget it ranks the long-budget reference's 12 sub-networks best of the
  recipes without augmentation (tau 0.29 against sandwich's 0.23) and gives
  the widest front; augmentation ranks slightly better (0.33) but costs every
  sub-network about 2 points of accuracy there (and a plain CNN 2.2 points on
  5,416 RGB emoji for 8 epochs, ``bench/images.py``);
- from :data:`~lightnas.config.LONG_BUDGET` on (the long GPU run: 54,000
  images x 20 epochs = 1.08M) ``sandwich`` with augmentation (unless the
  user set ``TrainConfig.augment``): 0.66-0.77 of the reference's
  seed-to-seed tau on two training seeds, against 0.54 for ``spread`` and
  0.24 for ``sandwich`` without augmentation.

Only those two budgets are measured; the threshold sits at their geometric
mean. The device does not enter the rule: a GPU is what makes the long
budget affordable, and the ranking depends on the budget.

Recipes register in :data:`RECIPES` (entry-point group ``lightnas.recipes``):

- ``spread`` (``auto`` on short budgets): the largest and students spread evenly over the
  log-MACs range, one per equal bin (AttentiveNAS-style cost-aware sampling),
  no fixed smallest. On the default run's budget (8 epochs of the embedded
  Fashion-MNIST) its front spans more latency with more models than
  ``sandwich``'s, whose always-trained smallest dominates much of the space
  (``bench/e2e_run.py``, ``bench/fidelity.py``; ``docs/benchmarks.md``).
  Its two students a step are what pay for the MobileNet there: one student
  a step, or the largest trained on every second step only, saves a quarter
  of the training and costs the largest 0.8 points, which more epochs in the
  saved time do not win back; a teacher one block shallower in every stage
  (a step 0.75x) ends the front at the teacher's cost, the deeper
  sub-networks no better than it; the attention super-networks measured better
  with one and set ``n_random`` in their ``train_defaults``
  (``docs/benchmarks.md``, "Cheaper steps and the students' costs").
  ``TrainConfig.spread_power`` moves the students towards the costly end,
  trading the cheapest ones' accuracy for ranking.
- ``sandwich`` (``auto`` on long budgets, with augmentation): BigNAS's
  sandwich rule from the first step: the largest, the smallest and uniformly
  drawn students. Without augmentation its always-trained smallest inherits
  above most of the space.
- ``warmup-sandwich``: the largest alone for ``warmup_fraction`` of the
  epochs, then the sandwich rule.
- ``progressive``: Once-for-All's progressive shrinking: the largest alone,
  then elastic kernel sizes (and other within-block kinds), then depth too,
  then everything, in equal shares of the remaining epochs.
- ``sorted``: SortedNet: after the same warm-up, the random students come
  from the chain of nested sub-networks that scales every dimension together
  (:meth:`SearchSpace.scaled`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from lightnas.config import LONG_BUDGET
from lightnas.registry import Registry
from lightnas.space import Arch, SearchSpace
from lightnas.train.sampling import CostSampler

if TYPE_CHECKING:
    from lightnas.config import TrainConfig

RECIPES: Registry[type[Recipe]] = Registry("recipe", group="lightnas.recipes")

AUTO = "auto"


def resolve_length(cfg: TrainConfig, train_images: int) -> tuple[TrainConfig, str]:
    """``cfg`` with a length in steps made epochs of ``train_images`` images
    (:meth:`TrainConfig.for_images`), and a sentence saying so (empty where
    the length was given in epochs: ``cfg`` comes back unchanged)."""
    resolved = cfg.for_images(train_images)
    if not cfg.steps:
        return cfg, ""
    per_epoch = math.ceil(train_images / cfg.batch_size)
    return resolved, f"{resolved.epochs} epochs ({cfg.steps:,} steps at {per_epoch} an epoch)"


def resolve_recipe(cfg: TrainConfig, train_images: int) -> tuple[TrainConfig, str]:
    """``cfg`` with ``recipe="auto"`` replaced by the rule's choice for
    ``train_images`` x ``cfg.epochs`` image-epochs (the module docstring) and
    ``augment`` by :meth:`TrainConfig.augments`, and a sentence saying what was
    chosen and why (empty where the user named a recipe: ``cfg`` comes back
    unchanged). An augmentation the user set is kept."""
    if cfg.recipe != AUTO:
        return cfg, ""
    budget = cfg.image_epochs(train_images)
    seen = f"{train_images:,} training images x {cfg.epochs} epochs = {budget / 1e3:.0f}k image-epochs"
    augment = cfg.augments(train_images)
    recipe, length = ("sandwich", "long") if budget >= LONG_BUDGET else ("spread", "short")
    chosen = dataclasses.replace(cfg, recipe=recipe, augment=augment)
    return chosen, f"recipe {recipe} {'with' if augment else 'without'} augmentation ({seen}: a {length} budget)"


ALL = None  # every dimension elastic
# within a block, and the input resolution (Once-for-All samples it from its first elastic phase)
LOCAL_KINDS = frozenset({"kernel", "expand", "heads", "mlp_ratio", "precision", "resolution"})


class Recipe:
    """The sandwich rule; subclasses change :meth:`free_kinds`, :meth:`draw`,
    ``smallest`` (the smallest is a student on every step) or ``sampler``.

    ``groups`` maps every dimension to its elastic kind; ``cost`` (MACs of an
    arch) is needed only by ``sampler = "cost"``.
    """

    smallest: bool = True
    sampler: str = "uniform"

    def __init__(
        self,
        cfg: TrainConfig,
        space: SearchSpace,
        groups: dict[str, str],
        cost: Callable[[Arch], float] | None = None,
    ):
        self.cfg = cfg
        self.space = space
        self.groups = groups
        self.cost_sampler = None
        if self.sampler == "cost":
            if cost is None:
                raise ValueError(f"recipe {self.registry_name!r} needs a cost function")
            self.cost_sampler = CostSampler(space, cost, power=cfg.spread_power)

    def free_kinds(self, epoch: int) -> frozenset[str] | None:
        """The elastic kinds that vary in ``epoch`` (0-based): ``None`` for all,
        an empty set for the largest alone (no students)."""
        return ALL

    def draw(self, rng: np.random.Generator, n: int) -> list[Arch]:
        if self.cost_sampler is not None:
            return self.cost_sampler.draw(rng, n)
        return [self.space.sample(rng) for _ in range(n)]

    def students(self, epoch: int, rng: np.random.Generator) -> list[Arch]:
        """The sub-networks trained by distillation in a step of ``epoch``."""
        free = self.free_kinds(epoch)
        if free is not None and not free:
            return []
        fixed = [self.space.smallest()] if self.smallest else []
        return [self.restrict(a, free) for a in fixed + self.draw(rng, self.cfg.n_random)]

    def restrict(self, arch: Arch, free: frozenset[str] | None) -> Arch:
        """Pin every dimension whose kind is not in ``free`` to its largest value."""
        if free is None:
            return arch
        largest = self.space.largest()
        return self.space.make({n: arch[n] if self.groups.get(n) in free else largest[n] for n in arch})

    def warm(self) -> int:
        return int(round(self.cfg.warmup_fraction * self.cfg.epochs))


@RECIPES.register("spread")
class Spread(Recipe):
    """The largest and students spread evenly over the cost range (default)."""

    smallest = False
    sampler = "cost"


@RECIPES.register("sandwich")
class Sandwich(Recipe):
    """BigNAS: the largest, the smallest and uniformly drawn students on every step."""


@RECIPES.register("warmup-sandwich")
class WarmupSandwich(Recipe):
    """The largest alone for the first ``warmup_fraction`` of the epochs, then the sandwich rule."""

    def free_kinds(self, epoch: int) -> frozenset[str] | None:
        return frozenset() if epoch < self.warm() else ALL


@RECIPES.register("progressive")
class Progressive(Recipe):
    """Once-for-All: the largest alone, then within-block kinds, then depth, then all."""

    def free_kinds(self, epoch: int) -> frozenset[str] | None:
        warm = self.warm()
        if epoch < warm:
            return frozenset()
        rest = (epoch - warm) / max(self.cfg.epochs - warm, 1)
        if rest < 1 / 3:
            return LOCAL_KINDS
        return LOCAL_KINDS | {"depth"} if rest < 2 / 3 else ALL


@RECIPES.register("sorted")
class Sorted(WarmupSandwich):
    """SortedNet: students from the chain of nested sub-networks, after a warm-up."""

    def draw(self, rng: np.random.Generator, n: int) -> list[Arch]:
        return [self.space.scaled(float(rng.uniform())) for _ in range(n)]
