"""Image classification: label-smoothed cross-entropy, in-place distillation, top-1 accuracy."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from lightnas.errors import LightnasError
from lightnas.tasks.base import TASKS, Task

if TYPE_CHECKING:
    from lightnas.config import TrainConfig
    from lightnas.data.sources import Dataset


@TASKS.register("classification")
class ClassificationTask(Task):
    """Top-1 accuracy (percent) of logits ``(N, classes)`` against integer labels.

    - ``loss``: cross-entropy with ``label_smoothing``;
    - ``distill_loss``: ``(1 - w) KL(teacher || student) + w loss``, where the
      teacher's outputs are logits and ``w = label_weight`` (0: pure in-place
      distillation; 0.5, the default, left the students 0.5 points from
      stand-alone training on 8 epochs against 3.6 for 0, ``bench/fidelity.py``);
    - ``augment``: per image, with ``policy="shift"`` random translations by
      up to ``pad`` pixels (zero padding) and, with ``hflip``, horizontal
      flips; with ``policy="photo"`` a random-resized crop (a box of
      :data:`CROP_SCALE` of the area and :data:`CROP_RATIO` aspect, resized
      back to the input's size, bilinear) and, with ``hflip``, horizontal
      flips, as photos are trained; nothing unless ``augment``.
    """

    metric_name = "accuracy"

    def __init__(
        self,
        label_smoothing: float = 0.1,
        label_weight: float = 0.5,
        augment: bool = False,
        pad: int = 2,
        hflip: bool = False,
        policy: str = "shift",
    ):
        if policy not in ("shift", "photo"):
            raise LightnasError(f"augmentation policy must be shift or photo, not {policy!r}")
        if not 0 <= label_smoothing < 1:
            raise LightnasError(f"label smoothing must be in [0, 1), not {label_smoothing}")
        if not 0 <= label_weight <= 1:
            raise LightnasError(f"the students' label weight must be in [0, 1], not {label_weight}")
        self.label_smoothing = label_smoothing
        self.label_weight = label_weight
        self.pad = pad if augment and policy == "shift" else 0
        self.crop = augment and policy == "photo"
        self.hflip = hflip and augment

    @classmethod
    def for_data(cls, data: Dataset, cfg: TrainConfig) -> ClassificationTask:
        """``cfg``'s label smoothing, students' label weight and augmentation:
        of the kind the data calls for (``data.augmentation``), on where
        :meth:`TrainConfig.augments` says so for this training split (the user's
        choice, else the budget's); shifts by up to 1/14 of the side."""
        augment = cfg.augments(len(data.y_train))
        return cls(
            label_smoothing=cfg.label_smoothing,
            label_weight=cfg.student_label_weight,
            augment=augment,
            pad=max(1, data.input_shape[1] // 14),
            hflip=data.hflip,
            policy=data.augmentation,
        )

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs, targets, label_smoothing=self.label_smoothing)

    def distill_loss(self, outputs: torch.Tensor, teacher: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        w = self.label_weight
        kd = F.kl_div(F.log_softmax(outputs, dim=1), F.softmax(teacher, dim=1), reduction="batchmean")
        return (1 - w) * kd + w * self.loss(outputs, targets)

    def metric(self, outputs: torch.Tensor, targets: torch.Tensor) -> float:
        return 100.0 * float((outputs.argmax(1) == targets).sum()) / max(len(targets), 1)

    @property
    def augments(self) -> bool:
        return self.crop or self.pad > 0 or self.hflip

    def augment(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        if self.crop:
            return random_resized_crop(x, gen, self.hflip)
        b, _, h, w = x.shape
        pad = self.pad
        if pad > 0:
            xp = F.pad(x, (pad, pad, pad, pad))
            # drawn on the CPU generator (the same draws on every device), used where x lives
            oy = torch.randint(0, 2 * pad + 1, (b,), generator=gen).to(x.device)
            ox = torch.randint(0, 2 * pad + 1, (b,), generator=gen).to(x.device)
            rows = (oy[:, None] + torch.arange(h, device=x.device))[:, :, None]
            cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, :]
            x = xp[torch.arange(b, device=x.device)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)
        if self.hflip:
            flip = (torch.rand(b, generator=gen) < 0.5).to(x.device)
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        return x


CROP_SCALE = (0.25, 1.0)
"""Share of the image's area a random-resized crop keeps (Inception-style crops keep 0.08-1 on
ImageNet's long schedules; the short budgets here keep more of each image)."""
CROP_RATIO = (3 / 4, 4 / 3)


def random_resized_crop(x: torch.Tensor, gen: torch.Generator, hflip: bool) -> torch.Tensor:
    """A random box per image (area share in :data:`CROP_SCALE`, aspect in
    :data:`CROP_RATIO`, inside the image), resized to the input's size with
    bilinear sampling, mirrored with probability 1/2 when ``hflip``; one batched
    ``grid_sample``. Draws come from the CPU generator ``gen`` (the same on every device)."""
    b = x.shape[0]
    area = CROP_SCALE[0] + (CROP_SCALE[1] - CROP_SCALE[0]) * torch.rand(b, generator=gen)
    lo, hi = math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1])
    ratio = torch.exp(lo + (hi - lo) * torch.rand(b, generator=gen))
    w = torch.sqrt(area * ratio).clamp(max=1.0)  # box sides as fractions of the image's
    h = torch.sqrt(area / ratio).clamp(max=1.0)
    cx = (2 * torch.rand(b, generator=gen) - 1) * (1 - w)  # box centre, in [-1, 1] image coordinates
    cy = (2 * torch.rand(b, generator=gen) - 1) * (1 - h)
    sign = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0) if hflip else torch.ones(b)
    zero = torch.zeros(b)
    theta = torch.stack([torch.stack([w * sign, zero, cx], 1), torch.stack([zero, h, cy], 1)], 1)
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
