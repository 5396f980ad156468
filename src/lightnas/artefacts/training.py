"""What training is given and what it writes: :class:`TrainJob`, :class:`Checkpoint` (``supernet.pt``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from lightnas.config import TrainConfig
from lightnas.errors import LightnasError


@dataclass(frozen=True)
class TrainJob:
    """One super-network's training: the registered ``supernet`` and its
    ``config`` (a dictionary of its config class), the training settings, the
    seed (initial weights, data order, students), ``only`` (a fixed
    sub-network trained alone on the labels, or None), the device and the CPU
    threads (None: the process's setting). Picklable: processes of a
    distributed run receive it."""

    supernet: str
    config: dict[str, Any]
    train: TrainConfig
    seed: int = 0
    only: dict[str, Any] | None = None
    device: str = "cpu"
    threads: int | None = None


CHECKPOINT_FORMAT = "lightnas-supernet-2"

_REQUIRED = {"format": str, "supernet": str, "config": dict, "train_config": dict, "seed": int, "data": dict}
_OPTIONAL = {
    "only": (dict, type(None)),
    "epoch": int,
    "history": list,
    "state_dict": dict,
    "train_state_dict": dict,
    "ema": dict,
    "optimizer": dict,
}


@dataclass
class Checkpoint:
    """A super-network's training, as ``supernet.pt`` holds it.

    ``supernet`` (registered name) and ``config`` (its config as a dictionary)
    rebuild the network; ``train_config``, ``seed``, ``only`` (a fixed
    sub-network, or None) and ``data`` (the data's description, with the
    splits' digest) say what it was trained with. ``epoch`` epochs are done,
    ``history`` holds one record per epoch (loss, seconds, validation figures,
    the device settings). ``state_dict`` is the moving average of the weights
    (what is searched and exported), ``train_state_dict``, ``ema`` and
    ``optimizer`` what training continues from; all four are absent before
    the first epoch ends."""

    supernet: str
    config: dict[str, Any]
    train_config: dict[str, Any]
    seed: int
    data: dict[str, Any]
    only: dict[str, Any] | None = None
    epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    state_dict: dict[str, Any] | None = None
    train_state_dict: dict[str, Any] | None = None
    ema: dict[str, Any] | None = None
    optimizer: dict[str, Any] | None = None
    format: str = CHECKPOINT_FORMAT

    @property
    def trained(self) -> bool:
        """Whether at least one epoch's weights are in it."""
        return self.state_dict is not None

    @property
    def train_seconds(self) -> float:
        """Seconds its epochs took to train (from the history)."""
        return float(sum(float(h.get("seconds", 0.0)) for h in self.history))

    @property
    def settings(self) -> dict[str, Any]:
        """The device settings of the last epoch (device, memory format, precision), {} before one."""
        return dict(self.history[-1].get("settings") or {}) if self.history else {}

    def to_dict(self) -> dict[str, Any]:
        """The dictionary ``supernet.pt`` stores (absent weights left out)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {k: v for k, v in d.items() if v is not None or k == "only"}

    @classmethod
    def from_dict(cls, d: Any, where: str = "checkpoint") -> Checkpoint:
        """The checkpoint ``d`` holds; a one-line error naming ``where`` otherwise."""
        if not isinstance(d, dict) or d.get("format") != CHECKPOINT_FORMAT:
            raise LightnasError(f"{where} is not a lightnas super-network checkpoint")
        unknown = sorted(set(d) - set(_REQUIRED) - set(_OPTIONAL))
        missing = sorted(set(_REQUIRED) - set(d))
        if unknown or missing:
            what = f"unknown key {unknown[0]!r}" if unknown else f"no {missing[0]!r}"
            raise LightnasError(f"{where} is damaged or incomplete: {what}")
        for key, kind in {**_REQUIRED, **_OPTIONAL}.items():
            if key in d and (not isinstance(d[key], kind) or isinstance(d[key], bool)):
                raise LightnasError(f"{where} is damaged or incomplete: {key} is a {type(d[key]).__name__}")
        return cls(**d)
