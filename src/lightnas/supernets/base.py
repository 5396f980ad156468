"""The super-network contract: what a plug-in implements and what lightnas relies on.

A super-network is a :class:`torch.nn.Module` holding the weights of every
sub-network of its search space. Everything above this module (training,
evaluation, export, latency tables, reports, the command line) uses only the
members below, so a new super-network is one file with a registered subclass
(``@register_supernet("name")``, or the ``lightnas.supernets`` entry-point
group from another package); :class:`lightnas.testing.SupernetTests` checks
every invariant stated here.

Invariants:

- **Built from a typed config.** ``config_class`` is a frozen dataclass
  subclassing :class:`SupernetConfig`; its ``input_shape`` (C, H, W) and
  ``n_classes`` come from the data, every other field has a default. The
  config round-trips through a plain JSON-able dict (:meth:`SupernetConfig.to_dict`
  / :meth:`SupernetConfig.from_dict`), which is what checkpoints and exported
  models store; ``cls(cls.config_class.from_dict(d))`` rebuilds the same network.
- **The space.** ``space`` is a :class:`~lightnas.space.SearchSpace` whose
  ``smallest()`` is the cheapest and ``largest()`` the costliest sub-network
  in every cost metric; the largest uses every weight.
- **Activation.** ``set_active(arch)`` validates ``arch`` against the space
  and selects it; ``forward(x)`` maps a float32 batch ``(N, *input_shape)`` to
  logits ``(N, n_classes)`` of the active sub-network; ``active_arch`` is the
  arch in force.
- **Extraction.** ``extract(arch)`` returns a plain module (standard PyTorch
  layers, no elastic machinery, weights copied, not shared) that in eval mode
  computes what the super-network computes in eval mode after
  ``set_active(arch)`` (max abs difference <= 1e-5 on logits), and that
  exports to ONNX.
- **Input resolution.** ``input_shape_for(arch)`` is the (C, H, W) input the
  extracted module of ``arch`` takes (default: the config's ``input_shape``).
  A super-network whose space chooses the resolution (a dimension of kind
  ``resolution``) is given inputs at the full ``input_shape`` and brings them
  to the active sub-network's with :func:`resize_input` first, so that
  training, calibration and evaluation see each sub-network at its own
  resolution; its extracted module takes ``input_shape_for(arch)`` and is
  equal to the super-network on ``resize_input(x, input_shape_for(arch))``.
- **Calibration.** ``calibrate(x)`` prepares the active sub-network's
  normalisation statistics for evaluation from training images ``x``
  (BatchNorm: re-estimated exactly over ``x``; LayerNorm: nothing to do) and
  leaves the network in eval mode.
- **Meaning of the dimensions.** ``elastic_groups()`` maps every dimension of
  the space to one of :data:`ELASTIC_KINDS`, so that recipes (progressive
  shrinking, ...) pin dimensions by what they are, not by their names.
- **Latency parts.** ``latency_parts(arch)`` lists hashable, JSON-able specs
  (tuples of strings and numbers) of the parts that run one after the other
  in ``arch``; ``all_latency_parts()`` is every part of every sub-network;
  ``build_part(part)`` returns a module computing it and its input shape
  (without the batch axis). The parts of an arch cover it exactly: their MACs
  add up to the arch's. ``describe_part(part)`` says a part in words
  (reports), from the field names in ``part_fields``.
- **Structure features.** ``arch_features(arch)`` gives numbers describing
  ``arch`` known without training (e.g. the receptive field), the same names
  for every arch; predictors use them beside the encoding, with the MACs of
  each precision group. The default gives none.
- **Training hook.** ``init_for_training()`` is called once on a freshly
  initialised network before training (for example zero-initialised residual
  branches); the default does nothing. ``train_defaults`` (fields of
  :class:`~lightnas.config.TrainConfig`) replace the general training
  defaults for this super-network where the user sets none (as timm's
  per-model default configurations do). A default length may be counted in
  optimiser steps (``{"steps": n}``: the epochs follow from the training
  split, so a small data set trains as many steps as a large one); a length
  the user gives, ``--epochs`` or ``--steps``, replaces it.
- **Distillation teacher.** ``distillation_teacher()`` may return a fixed
  module (eval mode, no gradients) whose logits every sub-network, the
  largest included, distils from, instead of the largest sub-network's (a
  network made elastic from a trained model: that model); default: none.
- **Recomputation.** A super-network's forward runs its repeated blocks
  through :meth:`Supernet.block`; while ``recompute`` is set (the trainer
  sets it when a training step's saved activations would exceed its memory
  budget) a training forward keeps only each block's input for the backward
  pass and recomputes the rest there, with the same gradients and no second
  update of any buffer.
- **Precision groups.** ``precision_groups()`` names the block groups whose
  numeric precision is chosen together (stages of a CNN, blocks of a
  Transformer), each with the space's condition under which it exists (as
  ``Choice.active_if``); ``precision_plan(arch)`` lists the groups present in
  ``arch`` with their modules (qualified names in ``extract(arch)``) and their
  latency parts (indices into ``latency_parts(arch)``). Every latency part and
  every weight-bearing module belongs to at most one group. The default is one
  group, ``all``: the whole network.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Hashable
from typing import Any, ClassVar, TypeVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from lightnas.errors import LightnasError
from lightnas.space import Arch, SearchSpace, Value
from lightnas.strict import build, plain

ELASTIC_KINDS = (
    "depth",
    "width",
    "kernel",
    "expand",
    "heads",
    "mlp_ratio",
    "embed",
    "precision",
    "resolution",
    "other",
)
"""What an elastic dimension changes; recipes pin or free dimensions by these."""

C = TypeVar("C", bound="SupernetConfig")


@dataclasses.dataclass(frozen=True)
class SupernetConfig:
    """Base of every super-network config: the data's input spec plus the
    plug-in's own fields (frozen dataclass fields of JSON-able types: numbers,
    strings, booleans, tuples of them, nested frozen dataclasses)."""

    input_shape: tuple[int, int, int] = (1, 28, 28)
    n_classes: int = 10

    def __post_init__(self) -> None:
        shape = tuple(int(v) for v in self.input_shape)
        if len(shape) != 3 or min(shape) < 1:
            raise LightnasError(f"input shape must be (C, H, W) with positive sizes, not {self.input_shape}")
        object.__setattr__(self, "input_shape", shape)
        if int(self.n_classes) < 2:
            raise LightnasError("a classifier needs at least 2 classes")

    def to_dict(self) -> dict[str, Any]:
        """A plain JSON-able dict (tuples become lists)."""
        return plain(self)

    @classmethod
    def from_dict(cls: type[C], d: dict[str, Any]) -> C:
        """Inverse of :meth:`to_dict`; a one-line error for unknown or malformed fields."""
        return build(cls, d, "super-network config")

    @classmethod
    def current(cls, d: dict[str, Any]) -> dict[str, Any]:
        """``d`` (from a checkpoint or a card) as this class writes it today:
        fields added since it was written take their defaults."""
        return cls.from_dict(d).to_dict()


@dataclasses.dataclass(frozen=True)
class PrecisionGroup:
    """One block group of a sub-network whose precision is chosen as a whole.

    ``modules``: qualified module names in the extracted sub-network (``""``:
    the whole module); ``parts``: indices into its ``latency_parts``."""

    name: str
    modules: tuple[str, ...]
    parts: tuple[int, ...]


def group_parts(entries: list[tuple[str, tuple[str, ...]]]) -> list[PrecisionGroup]:
    """``entries[i]``: (group, modules) of latency part ``i`` -> the groups, in order of first appearance."""
    modules: dict[str, list[str]] = {}
    parts: dict[str, list[int]] = {}
    for i, (group, mods) in enumerate(entries):
        modules.setdefault(group, []).extend(mods)
        parts.setdefault(group, []).append(i)
    return [PrecisionGroup(g, tuple(modules[g]), tuple(parts[g])) for g in modules]


class Supernet(nn.Module, ABC):
    """Base class of every super-network (see the module docstring for the contract)."""

    config_class: ClassVar[type[SupernetConfig]] = SupernetConfig
    registry_name: ClassVar[str] = ""
    train_defaults: ClassVar[dict[str, object]] = {}
    part_fields: ClassVar[dict[str, tuple[str, ...]]] = {}
    """Per part kind, the names of the numbers after the kind in its spec (reports)."""
    needs_input: ClassVar[bool] = False
    """True where the config's defaults alone build nothing (the elastic super-network
    needs the user's model); such a network is left out of ``list_supernets(standalone=True)``."""
    space: SearchSpace
    active_arch: Arch
    recompute: bool = False
    """Recompute the blocks' activations in the backward pass (see :meth:`block`)."""

    def __init__(self, config: SupernetConfig):
        super().__init__()
        if not isinstance(config, self.config_class):
            raise LightnasError(f"{type(self).__name__} needs a {self.config_class.__name__}")
        self.config = config

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.config.input_shape

    @property
    def n_classes(self) -> int:
        return self.config.n_classes

    def block(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """``module(x)``; with :attr:`recompute` set, in a training forward
        that autograd records, through activation checkpointing: only ``x`` is
        kept for the backward pass, which runs ``module`` again (its buffers,
        such as BatchNorm statistics, left as the first run left them)."""
        if not (self.recompute and self.training and torch.is_grad_enabled()):
            return module(x)

        return checkpoint(_Replay(module), x, use_reentrant=False)

    @abstractmethod
    def set_active(self, arch: Arch) -> None:
        """Validate ``arch`` against the space and select it."""

    @abstractmethod
    def extract(self, arch: Arch) -> nn.Module:
        """A plain module equal to the sub-network ``arch`` (eval mode)."""

    @abstractmethod
    def elastic_groups(self) -> dict[str, str]:
        """Every dimension name -> one of :data:`ELASTIC_KINDS`."""

    @abstractmethod
    def latency_parts(self, arch: Arch) -> list[Hashable]:
        """The parts of ``arch`` in order (hashable specs)."""

    @abstractmethod
    def all_latency_parts(self) -> list[Hashable]:
        """Every distinct part of every sub-network."""

    @abstractmethod
    def build_part(self, part: Hashable) -> tuple[nn.Module, tuple[int, ...]]:
        """A module (eval mode) computing ``part`` and its input shape, batch axis excluded."""

    @torch.no_grad()
    def calibrate(self, x: torch.Tensor, batch_size: int = 256) -> None:
        """Re-estimate every BatchNorm's running statistics as an exact average
        over leading images of ``x`` (train-mode forward passes, ``batch_size``
        at a time), then switch to eval mode. It takes batches until the
        smallest map a BatchNorm of the active sub-network normalises has given
        :data:`CALIB_VALUES` values per channel, or ``x`` ends: one batch of 256
        on 7x7 maps, four on 64-px images' 3x3 and 4x4 maps. ``x`` should be in
        random order (the training split is). A network without BatchNorm only
        switches to eval mode."""
        bns = [m for m in self.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if bns:
            saved = [m.momentum for m in bns]
            for m in bns:
                m.reset_running_stats()
                m.momentum = None
            self.train()
            positions = set()  # per channel and image, at each BatchNorm the sub-network runs
            hooks = [m.register_forward_pre_hook(lambda m, a: positions.add(a[0][0, 0].numel())) for m in bns]
            try:
                for i in range(0, len(x), batch_size):
                    self(x[i : i + batch_size])
                    if positions and (i + batch_size) * min(positions) >= CALIB_VALUES:
                        break
            finally:
                for h in hooks:
                    h.remove()
            for m, mom in zip(bns, saved, strict=True):
                m.momentum = mom
        self.eval()

    def input_shape_for(self, arch: Arch) -> tuple[int, int, int]:
        """The (C, H, W) input of ``extract(arch)``; default: the config's ``input_shape``."""
        return self.config.input_shape

    def arch_features(self, arch: Arch) -> dict[str, float]:
        """Structural numbers of ``arch`` known without training (predictor
        inputs), the same names for every arch; default: none."""
        return {}

    def init_for_training(self) -> None:  # noqa: B027 - an optional hook
        """Called once on fresh weights before training; default: nothing."""

    def distillation_teacher(self) -> nn.Module | None:
        """A fixed module every sub-network distils from; default: none (the largest sub-network teaches)."""
        return None

    def describe_part(self, part: Hashable) -> str:
        """A latency part in words for reports, e.g. ``block: in 16, out 24, kernel 5``
        (field names from :attr:`part_fields`; the bare spec otherwise)."""
        kind, *rest = part  # type: ignore[misc]
        names = self.part_fields.get(str(kind), ())
        if len(names) != len(rest):
            return " ".join(str(v) for v in (kind, *rest))
        return f"{kind}: " + ", ".join(f"{n} {v}" for n, v in zip(names, rest, strict=True)) if rest else str(kind)

    def precision_groups(self) -> dict[str, tuple[str, Value] | None]:
        """Group name -> the condition (``Choice.active_if``) under which the
        group exists; default: one group ``all`` (the whole network)."""
        return {"all": None}

    def precision_plan(self, arch: Arch) -> list[PrecisionGroup]:
        """The groups present in ``arch`` with their modules and latency parts."""
        return [PrecisionGroup("all", ("",), tuple(range(len(self.latency_parts(arch)))))]


def resize_input(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Images ``(N, C, H, W)`` brought to ``shape``'s (H, W): bilinear,
    antialiased (as Pillow's bilinear resize), ``x`` itself when the size is
    already right. What a sub-network of lower resolution sees, and what its
    model card tells a user to do."""
    hw = tuple(int(v) for v in shape[-2:])
    if tuple(x.shape[-2:]) == hw:
        return x
    return F.interpolate(x, size=hw, mode="bilinear", align_corners=False, antialias=True)


class _Replay:
    """``module``'s forward for activation checkpointing: every call after
    the first (the recomputation in the backward pass) restores the buffers."""

    def __init__(self, module: nn.Module):
        self.module, self.calls = module, 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == 1:
            return self.module(x)
        saved = [b.clone() for b in self.module.buffers()]
        try:
            return self.module(x)
        finally:
            with torch.no_grad():
                for b, v in zip(self.module.buffers(), saved, strict=True):
                    b.copy_(v)


class AtResolution(nn.Module):
    """``module`` (a sub-network that takes inputs of ``shape``) fed full-size
    images through :func:`resize_input`: how a sub-network of lower resolution
    is trained or fine-tuned alone on the data set's images."""

    def __init__(self, module: nn.Module, shape: tuple[int, ...]):
        super().__init__()
        self.module = module
        self.shape = tuple(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(resize_input(x, self.shape))


CALIB_VALUES = 256 * 49
"""Values per channel that calibrate a BatchNorm: 256 images on 7x7 maps (on
Fashion-MNIST 256, 1,024 and 4,096 images gave the same accuracies). On 64-px
emoji (3x3 and 4x4 last maps) 256 random images left sub-networks 1.5-4.3
points of test accuracy under 1,024, and 1,024 within 0.7 of 4,096."""


@torch.no_grad()
def trained_like(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every normalisation layer non-trivial statistics and affine
    parameters, seeded, as a trained network has: fresh ones are the identity,
    which hides slicing errors in tests and, exported to ONNX, folds into
    identical constants that the exporter merges (ONNX Runtime then cannot
    fuse INT8 convolutions whose bias is such a merged constant)."""
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm | torch.nn.LayerNorm) and m.weight is not None:
            m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
            m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return net.eval()
