"""Image classification: label-smoothed cross-entropy, in-place distillation, top-1 accuracy."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lightnas.errors import LightnasError
from lightnas.tasks.base import TASKS, Task


@TASKS.register("classification")
class ClassificationTask(Task):
    """Top-1 accuracy (percent) of logits ``(N, classes)`` against integer labels.

    - ``loss``: cross-entropy with ``label_smoothing``;
    - ``distill_loss``: ``(1 - w) KL(teacher || student) + w loss``, where the
      teacher's outputs are logits and ``w = label_weight`` (0: pure in-place
      distillation; 0.5, the default, left the students 0.5 points from
      stand-alone training on 8 epochs against 3.6 for 0, ``bench/fidelity.py``);
    - ``augment``: random translations by up to ``pad`` pixels (zero padding)
      and, with ``hflip``, horizontal flips, per image; off unless ``augment``.
    """

    metric_name = "accuracy"

    def __init__(
        self,
        label_smoothing: float = 0.1,
        label_weight: float = 0.5,
        augment: bool = False,
        pad: int = 2,
        hflip: bool = False,
    ):
        if not 0 <= label_smoothing < 1:
            raise LightnasError(f"label smoothing must be in [0, 1), not {label_smoothing}")
        if not 0 <= label_weight <= 1:
            raise LightnasError(f"the students' label weight must be in [0, 1], not {label_weight}")
        self.label_smoothing = label_smoothing
        self.label_weight = label_weight
        self.pad = pad if augment else 0
        self.hflip = hflip and augment

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs, targets, label_smoothing=self.label_smoothing)

    def distill_loss(self, outputs: torch.Tensor, teacher: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        w = self.label_weight
        kd = F.kl_div(F.log_softmax(outputs, dim=1), F.softmax(teacher, dim=1), reduction="batchmean")
        return (1 - w) * kd + w * self.loss(outputs, targets)

    def metric(self, outputs: torch.Tensor, targets: torch.Tensor) -> float:
        return 100.0 * float((outputs.argmax(1) == targets).sum()) / max(len(targets), 1)

    def augment(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
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
