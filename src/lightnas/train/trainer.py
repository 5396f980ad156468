"""Train a super-network once: sandwich rule with in-place distillation.

Each step trains the largest sub-network on the labels, then the smallest
and ``n_random`` random sub-networks on the largest's soft predictions
(BigNAS / Once-for-All in-place distillation) and, with an equal weight by
default, on the labels (``TrainConfig.student_label_weight``), accumulating
gradients before one optimiser step. The students' summed gradient is projected off
the largest's when the two conflict (``TrainConfig.project_conflicts``), the
students run without dropout, and every residual block that a sub-network
can skip starts as the identity (``zero_init_residual``). The weights saved
for search and export are an exponential moving average. The checkpoint is
written atomically after every epoch; training resumes from it.

Recipes (``TrainConfig.recipe``):

- ``sandwich`` (default): BigNAS, the sandwich rule from the first step;
  the best fidelity of the four in ``bench/fidelity.py`` (the README's table).
- ``warmup-sandwich``: the largest sub-network alone for the first
  ``warmup_fraction`` of the epochs, then the sandwich rule: the largest
  learns faster, the students get half the epochs.
- ``progressive``: Once-for-All's progressive shrinking: the largest alone,
  then elastic kernel, then elastic depth, then everything (equal shares of
  the remaining epochs), always distilling from the largest.
- ``sorted``: SortedNet's nested schedule after the same warm-up as
  ``warmup-sandwich``: the students are the smallest and ``n_random`` sub-networks drawn
  from the sorted chain that scales every dimension together from smallest
  to largest (:meth:`SearchSpace.scaled`), instead of from the whole space.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from lightnas.data.sources import Dataset
from lightnas.errors import LightnasError
from lightnas.supernets import supernet_from_config
from lightnas.train.common import CALIB_IMAGES, accuracy, atomic_save, recalibrate_bn, safe_load, setup_torch, to_tensor
from lightnas.train.recipes import RECIPES

CHECKPOINT_FORMAT = "lightnas-supernet-1"


def phase_of(cfg: TrainConfig, epoch: int) -> str:
    """What is elastic in ``epoch`` (0-based): "largest", "kernel", "depth" or "all"."""
    if cfg.recipe == "sandwich":
        return "all"
    warm = int(round(cfg.warmup_fraction * cfg.epochs))
    if epoch < warm:
        return "largest"
    if cfg.recipe in ("warmup-sandwich", "sorted"):
        return "all"
    rest = (epoch - warm) / max(cfg.epochs - warm, 1)
    return "kernel" if rest < 1 / 3 else "depth" if rest < 2 / 3 else "all"


def restrict(space: Any, arch: Any, phase: str) -> Any:
    """Pin the dimensions that are not yet elastic in ``phase`` to their largest value."""
    if phase == "all":
        return arch
    largest = space.largest()
    free = {"kernel": ("k",), "depth": ("k", "d")}.get(phase, ())
    return space.make({n: (arch[n] if n.endswith(free) else largest[n]) for n in arch})


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of super-network training (validated on creation)."""

    epochs: int = 8
    batch_size: int = 256
    optimizer: str = "adamw"  # or "sgd" (Nesterov momentum)
    lr: float = 4e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1
    n_random: int = 1  # random sub-networks per step, besides largest and smallest
    warmup_epochs: float = 0.3  # learning-rate warm-up
    recipe: str = "sandwich"
    warmup_fraction: float = 0.5  # share of epochs with the largest alone (warmup-sandwich, progressive)
    ema_decay: float = 0.99  # exponential moving average of the weights (0: off), as in BigNAS
    zero_init_residual: bool = True  # residual branches start at zero: a skipped block is then a small change
    project_conflicts: bool = True  # students' gradient may not work against the largest's (see _add_projected)
    # students' loss: (1 - w) KL to the largest + w cross-entropy on the labels; pure distillation (w = 0)
    # left the sub-networks 3.6 points below stand-alone training on 8 epochs, w = 0.5 0.5 points (bench/fidelity.py)
    student_label_weight: float = 0.5
    augment: bool = False  # random shifts and flips; helps long runs, hurts 6-epoch ones (measured)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise LightnasError(f"epochs must be at least 1, not {self.epochs}")
        if self.batch_size < 2:
            raise LightnasError(f"batch size must be at least 2, not {self.batch_size}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise LightnasError(f"learning rate must be positive, not {self.lr}")
        if self.optimizer not in ("adamw", "sgd"):
            raise LightnasError(f"optimizer must be 'adamw' or 'sgd', not {self.optimizer!r}")
        if self.recipe not in RECIPES:
            raise LightnasError(f"unknown recipe {self.recipe!r} (choose from {', '.join(RECIPES)})")
        if not 0 <= self.warmup_fraction < 1:
            raise LightnasError("warmup_fraction must be in [0, 1)")
        if self.n_random < 0:
            raise LightnasError("n_random must be >= 0")
        if not 0 <= self.student_label_weight <= 1:
            raise LightnasError("student_label_weight must be in [0, 1]")


def augment(x: torch.Tensor, pad: int, hflip: bool, gen: torch.Generator) -> torch.Tensor:
    """Random translation by up to ``pad`` pixels (zero padding) and optional
    horizontal flips, per sample."""
    b, c, h, w = x.shape
    if pad > 0:
        xp = F.pad(x, (pad, pad, pad, pad))
        oy = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
        ox = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
        rows = (oy[:, None] + torch.arange(h))[:, :, None]
        cols = (ox[:, None] + torch.arange(w))[:, None, :]
        x = xp[torch.arange(b)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)
    if hflip:
        flip = torch.rand(b, generator=gen) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    return x.contiguous(memory_format=torch.channels_last)


def _take_grads(params: list[torch.nn.Parameter]) -> list[torch.Tensor | None]:
    """Remove and return the accumulated gradients."""
    grads = [p.grad for p in params]
    for p in params:
        p.grad = None
    return grads


@torch.no_grad()
def _add_projected(params: list[torch.nn.Parameter], largest: list[torch.Tensor | None]) -> None:
    """Set each gradient to ``largest + students``, where the students'
    gradient (what ``params`` hold) first loses its component against the
    largest's when the two conflict (negative dot product over all weights):
    a first-order guarantee that the step that teaches the students does not
    undo what it teaches the largest (gradient projection, as NASViT does
    for the same conflict; PCGrad in multi-task learning)."""
    dot = sq = 0.0
    for p, g in zip(params, largest, strict=True):
        if g is not None:
            sq += float((g * g).sum())
            if p.grad is not None:
                dot += float((p.grad * g).sum())
    scale = dot / sq if dot < 0 and sq > 0 else 0.0
    for p, g in zip(params, largest, strict=True):
        if g is None:
            continue
        if p.grad is None:
            p.grad = g
        else:
            p.grad.add_(g, alpha=1.0 - scale)


def student_loss(logits: torch.Tensor, soft: torch.Tensor, labels: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """A student's loss: ``(1 - w)`` KL divergence to the largest's
    probabilities ``soft`` (in-place distillation) plus ``w`` label-smoothed
    cross-entropy on the labels, ``w = cfg.student_label_weight``."""
    w = cfg.student_label_weight
    kd = F.kl_div(F.log_softmax(logits, dim=1), soft, reduction="batchmean")
    return (1 - w) * kd + w * F.cross_entropy(logits, labels, label_smoothing=cfg.label_smoothing)


def lr_at(step: float, total: float, warmup: float, base: float) -> float:
    """Linear warm-up then cosine decay to zero."""
    if step < warmup:
        return base * (step + 1) / warmup
    return 0.5 * base * (1 + math.cos(math.pi * (step - warmup) / max(total - warmup, 1)))


def train_supernet(
    supernet_name: str,
    supernet_config: dict[str, Any],
    data: Dataset,
    cfg: TrainConfig,
    checkpoint: Path,
    resume: bool = True,
    progress: bool = True,
    threads: int | None = None,
    only: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train (or resume training) and return the final checkpoint dictionary.

    ``only`` (an architecture as a dict) trains that one sub-network alone on
    the labels, with the same data, schedule and epochs: the stand-alone
    baseline of the fidelity benchmark.

    The checkpoint (``torch.load(weights_only=True)``-safe) holds the state
    dict, optimiser state, epoch, configs, data description and history.
    """
    setup_torch(threads)
    torch.manual_seed(cfg.seed)  # the initial weights: the same seed trains the same network
    # channels-last before anything is loaded into it, so that a resumed run
    # computes in the same layout (and so the same floats) as an uninterrupted one
    net = supernet_from_config(supernet_name, supernet_config).to(memory_format=torch.channels_last)
    if cfg.zero_init_residual and hasattr(net, "zero_init_residual"):
        net.zero_init_residual()
    space = net.space
    dropouts = [m for m in net.modules() if isinstance(m, torch.nn.Dropout)]
    teacher = space.make(only) if only is not None else space.largest()

    def draw(rng: np.random.Generator) -> Any:
        return space.scaled(float(rng.uniform())) if cfg.recipe == "sorted" else space.sample(rng)

    if cfg.optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(
            net.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=True, weight_decay=cfg.weight_decay
        )
    else:
        opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    state: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "supernet": supernet_name,
        "config": supernet_config,
        "train_config": asdict(cfg),
        "data": data.describe(),
        "epoch": 0,
        "history": [],
    }
    if resume and checkpoint.exists():
        old = safe_load(checkpoint)
        if old.get("format") != CHECKPOINT_FORMAT or old.get("config") != supernet_config:
            raise LightnasError(f"{checkpoint} holds a different super-network; use --force to replace it")
        net.load_state_dict(old.get("train_state_dict", old["state_dict"]))
        opt.load_state_dict(old["optimizer"])
        state.update(epoch=int(old["epoch"]), history=list(old["history"]))
    params = dict(net.named_parameters())
    plist = list(params.values())
    ema = {n: p.detach().clone() for n, p in params.items()}
    if resume and checkpoint.exists() and "ema" in old:
        for n, v in old["ema"].items():
            ema[n].copy_(v)
    x_train = to_tensor(data.x_train, data)
    y_train = torch.from_numpy(data.y_train)
    x_val = to_tensor(data.x_val, data)
    y_val = torch.from_numpy(data.y_val)
    pad = max(1, data.input_shape[1] // 14)
    steps_per_epoch = math.ceil(len(x_train) / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    warmup = cfg.warmup_epochs * steps_per_epoch
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.epochs, initial=state["epoch"], desc="train", unit="epoch", file=sys.stderr)
    for epoch in range(state["epoch"], cfg.epochs):
        net.train()
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        torch.manual_seed(cfg.seed * 100_003 + epoch)  # dropout: a resumed epoch draws what it would have
        rng = np.random.default_rng([cfg.seed, epoch])
        order = torch.randperm(len(x_train), generator=gen)
        t0 = time.perf_counter()
        seen, loss_sum = 0, 0.0
        for i in range(steps_per_epoch):
            step = epoch * steps_per_epoch + i
            for group in opt.param_groups:
                group["lr"] = lr_at(step, total, warmup, cfg.lr)
            idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            if len(idx) < 2:
                continue
            xb = augment(x_train[idx], pad if cfg.augment else 0, data.hflip and cfg.augment, gen)
            yb = y_train[idx]
            opt.zero_grad(set_to_none=True)
            net.set_active(teacher)
            logits = net(xb)
            loss = F.cross_entropy(logits, yb, label_smoothing=cfg.label_smoothing)
            loss.backward()
            soft = F.softmax(logits.detach(), dim=1)
            phase = phase_of(cfg, epoch)
            students = [] if phase == "largest" else [space.smallest()] + [draw(rng) for _ in range(cfg.n_random)]
            largest_grads = _take_grads(plist) if students and cfg.project_conflicts else None
            for m in dropouts:  # BigNAS: only the largest is regularised; the students learn from it
                m.train(False)
            for arch in students:
                net.set_active(restrict(space, arch, phase))
                student_loss(net(xb), soft, yb, cfg).backward()
            for m in dropouts:
                m.train(True)
            if largest_grads is not None:
                _add_projected(plist, largest_grads)
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            if cfg.ema_decay > 0:
                d = min(cfg.ema_decay, (1 + step) / (10 + step))
                with torch.no_grad():
                    for n, p in params.items():
                        ema[n].mul_(d).add_(p.detach(), alpha=1 - d)
            seen += len(idx)
            loss_sum += float(loss.detach()) * len(idx)
            if bar is not None:
                bar.set_postfix(
                    step=f"{i + 1}/{steps_per_epoch}",
                    loss=f"{loss_sum / seen:.3f}",
                    img_s=f"{seen / (time.perf_counter() - t0):.0f}",
                )
        seconds = time.perf_counter() - t0
        state["train_state_dict"] = {k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}
        if cfg.ema_decay > 0:  # the averaged weights are the ones searched and exported
            with torch.no_grad():
                for n, p in params.items():
                    p.copy_(ema[n])
        # quick health check: the largest (or only) sub-network on the validation split
        net.set_active(teacher)
        recalibrate_bn(net, x_train[:CALIB_IMAGES])
        val = accuracy(net, x_val, y_val)
        state["history"].append(
            {"epoch": epoch + 1, "loss": loss_sum / max(seen, 1), "val_acc_largest": val, "seconds": seconds}
        )
        state["epoch"] = epoch + 1
        # copies: the raw weights are loaded back into these very tensors below
        state["state_dict"] = {k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}
        state["ema"] = {n: v.contiguous() for n, v in ema.items()}
        state["optimizer"] = opt.state_dict()
        net.load_state_dict(state["train_state_dict"])  # training continues from the raw weights
        atomic_save(state, checkpoint)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(
                loss=f"{loss_sum / max(seen, 1):.3f}", val_largest=f"{val:.1f}%", img_s=f"{seen / seconds:.0f}"
            )
    if bar is not None:
        bar.close()
    if "state_dict" not in state:  # nothing left to train: return what is on disk
        state = safe_load(checkpoint)
    return state


def load_supernet(checkpoint: Path) -> tuple[Any, dict[str, Any]]:
    """Rebuild the trained super-network (eval mode) from its checkpoint."""
    state = safe_load(checkpoint)
    if state.get("format") != CHECKPOINT_FORMAT:
        raise LightnasError(f"{checkpoint} is not a lightnas super-network checkpoint")
    net = supernet_from_config(state["supernet"], state["config"])
    net.load_state_dict(state["state_dict"])
    net.eval()
    return net, state


def standalone_train_seconds(
    net: Any, arch: Any, data: Dataset, cfg: TrainConfig, steps: int = 4, threads: int | None = None
) -> float:
    """Estimated seconds to train ``arch`` alone with ``cfg``'s schedule:
    ``steps`` timed training steps (forward, loss, backward, AdamW step on a
    batch of ``cfg.batch_size`` training images, after one untimed step) of a
    fresh copy of the extracted sub-network, times the steps of ``cfg.epochs``
    epochs. ``threads`` as in :func:`setup_torch` (the training thread count;
    call this after any latency measurement, see ``measure_latency``)."""
    setup_torch(threads)
    model = copy.deepcopy(net.extract(arch)).train().to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = min(cfg.batch_size, len(data.x_train))
    xb, yb = to_tensor(data.x_train[:n], data), torch.from_numpy(data.y_train[:n])

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(xb), yb, label_smoothing=cfg.label_smoothing).backward()
        opt.step()

    step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    per_step = (time.perf_counter() - t0) / steps
    return per_step * math.ceil(len(data.x_train) / cfg.batch_size) * cfg.epochs


def finetune(
    student: torch.nn.Module,
    teacher: torch.nn.Module,
    data: Dataset,
    epochs: int,
    lr: float = 1e-3,
    batch_size: int = 128,
    seed: int = 0,
    progress: bool = True,
) -> list[dict[str, float]]:
    """Fine-tune a plain sub-network with knowledge distillation from
    ``teacher`` (eval mode): loss = KL(teacher || student) + cross-entropy,
    AdamW with cosine decay. ``student`` ends with the weights of its best
    validation accuracy, the starting weights included (entry 0 of the
    returned per-epoch history, ``"kept"`` marks the epoch kept), so
    fine-tuning never makes it worse on the validation split."""
    if epochs < 1:
        raise LightnasError(f"epochs must be at least 1, not {epochs}")
    setup_torch()
    x_train, y_train = to_tensor(data.x_train, data), torch.from_numpy(data.y_train)
    x_val, y_val = to_tensor(data.x_val, data), torch.from_numpy(data.y_val)
    teacher.eval()
    opt = torch.optim.AdamW(student.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * math.ceil(len(x_train) / batch_size)
    history = [{"epoch": 0, "val_accuracy": accuracy(student, x_val, y_val)}]
    best = (history[0]["val_accuracy"], 0, copy.deepcopy(student.state_dict()))
    gen = torch.Generator().manual_seed(seed)
    step = 0
    for epoch in range(epochs):
        student.train()
        order = torch.randperm(len(x_train), generator=gen)
        for i in range(0, len(x_train), batch_size):
            idx = order[i : i + batch_size]
            if len(idx) < 2:
                continue
            for group in opt.param_groups:
                group["lr"] = lr_at(step, steps, 0, lr)
            with torch.no_grad():
                soft = F.softmax(teacher(x_train[idx]), dim=1)
            logits = student(x_train[idx])
            loss = F.kl_div(F.log_softmax(logits, dim=1), soft, reduction="batchmean") + F.cross_entropy(
                logits, y_train[idx]
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
        history.append({"epoch": epoch + 1, "val_accuracy": accuracy(student, x_val, y_val)})
        if history[-1]["val_accuracy"] > best[0]:
            best = (history[-1]["val_accuracy"], epoch + 1, copy.deepcopy(student.state_dict()))
        if progress:
            print(f"finetune epoch {epoch + 1}/{epochs}: val {history[-1]['val_accuracy']:.2f}%", file=sys.stderr)
    student.load_state_dict(best[2])
    student.eval()
    history[best[1]]["kept"] = True
    return history
