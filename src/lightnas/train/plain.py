"""Training of plain (extracted) sub-networks: fine-tuning with distillation,
training alone from scratch, and the timing of stand-alone training."""

from __future__ import annotations

import copy
import dataclasses
import math
import sys

import torch

from lightnas.config import TrainConfig
from lightnas.data.sources import Dataset
from lightnas.space import Arch
from lightnas.supernets.base import AtResolution, Supernet
from lightnas.tasks import Task, task_for
from lightnas.tensors import evaluate_metric, setup_torch, split_tensors
from lightnas.train.device import resolve_device, time_calls, training_format
from lightnas.train.optim import lr_at, make_optimizer

FINETUNE_LR = 1e-3  # peak learning rate of a fine-tuning (AdamW, cosine decay, no warm-up)
FINETUNE_BATCH = 128


def fit(
    model: torch.nn.Module,
    data: Dataset,
    task: Task,
    cfg: TrainConfig,
    seed: int = 0,
    teacher: torch.nn.Module | None = None,
    progress: bool = False,
    device: str = "cpu",
) -> list[dict[str, float]]:
    """Train ``model`` on the training split for ``cfg``'s epochs, batch size,
    learning rate, weight decay and warm-up, with AdamW, linear warm-up and
    cosine decay; with a ``teacher`` (eval mode) the loss is the task's
    distillation loss, otherwise its plain loss. Returns the validation
    metric after every epoch, the start included (entry 0); ``model`` ends with
    the weights of the best of them (``"kept"`` marks it), so it never ends
    worse on the validation split than it started. It trains on ``device``
    (the data moved there once) and ends on the CPU, in the memory format it
    trained in (:func:`lightnas.train.device.training_format`)."""
    cfg = cfg.for_images(len(data.y_train))  # a length in steps, as epochs of this data
    epochs, lr, batch_size = cfg.epochs, cfg.lr, cfg.batch_size  # TrainConfig holds epochs >= 1
    dev = resolve_device(device)
    for m in (model, teacher):
        if m is not None:
            m.to(dev)
    (x_train, y_train), (x_val, y_val) = (split_tensors(data, name, dev) for name in ("train", "val"))
    layout = training_format(model)
    model.to(memory_format=layout)
    opt = make_optimizer(model.parameters(), dataclasses.replace(cfg, optimizer="adamw"))
    per_epoch = math.ceil(len(x_train) / batch_size)
    history = [{"epoch": 0, "val_metric": evaluate_metric(model, task, x_val, y_val)}]
    best = (history[0]["val_metric"], 0, copy.deepcopy(model.state_dict()))
    gen = torch.Generator().manual_seed(seed)
    step = 0
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=gen).to(dev)
        for i in range(0, len(x_train), batch_size):
            idx = order[i : i + batch_size]
            if len(idx) < 2:
                continue
            for group in opt.param_groups:
                group["lr"] = lr_at(step, epochs * per_epoch, cfg.warmup_epochs * per_epoch, lr)
            xb, yb = task.augment(x_train[idx], gen).contiguous(memory_format=layout), y_train[idx]
            opt.zero_grad(set_to_none=True)
            _loss(model, teacher, task, xb, yb).backward()
            opt.step()
            step += 1
        history.append({"epoch": epoch + 1, "val_metric": evaluate_metric(model, task, x_val, y_val)})
        if history[-1]["val_metric"] > best[0]:
            best = (history[-1]["val_metric"], epoch + 1, copy.deepcopy(model.state_dict()))
        if progress:
            print(f"epoch {epoch + 1}/{epochs}: val {history[-1]['val_metric']:.2f}", file=sys.stderr)
    model.load_state_dict(best[2])
    for m in (model, teacher):
        if m is not None:
            m.eval().to("cpu", memory_format=layout)
    history[best[1]]["kept"] = True
    return history


def _loss(
    model: torch.nn.Module, teacher: torch.nn.Module | None, task: Task, xb: torch.Tensor, yb: torch.Tensor
) -> torch.Tensor:
    """The task's loss, or its distillation loss against ``teacher``'s outputs."""
    if teacher is None:
        return task.loss(model(xb), yb)
    with torch.no_grad():
        soft = teacher(xb)
    return task.distill_loss(model(xb), soft, yb)


def finetune(
    student: torch.nn.Module,
    teacher: torch.nn.Module,
    data: Dataset,
    epochs: int,
    seed: int = 0,
    progress: bool = True,
    device: str = "cpu",
) -> list[dict[str, float]]:
    """Fine-tune a plain sub-network with distillation from ``teacher``
    (students' loss of the default task, no augmentation, no warm-up); see :func:`fit`."""
    setup_torch()
    teacher.eval()
    task = task_for(data, TrainConfig(augment=False))
    cfg = TrainConfig(epochs=epochs, lr=FINETUNE_LR, batch_size=FINETUNE_BATCH, warmup_epochs=0.0)
    return fit(student, data, task, cfg, seed, teacher, progress=progress, device=device)


def train_alone(
    model: torch.nn.Module,
    data: Dataset,
    cfg: TrainConfig,
    seed: int = 0,
    threads: int | None = None,
    device: str = "cpu",
) -> list[dict[str, float]]:
    """Re-initialise ``model`` (seeded) and train it alone from scratch on the
    labels: ``cfg``'s epochs, batch size, learning rate, warm-up, weight decay
    and task, augmented where :meth:`TrainConfig.augments` says so for this
    data (as the super-network on the same budget), no distillation (the
    stand-alone baseline of the fidelity bench)."""
    setup_torch(threads)
    torch.manual_seed(seed)
    for m in model.modules():
        if m is not model and hasattr(m, "reset_parameters"):
            m.reset_parameters()
    task = task_for(data, cfg)
    return fit(model, data, task, cfg, seed, device=device)


def standalone_train_seconds(
    net: Supernet,
    arch: Arch,
    data: Dataset,
    cfg: TrainConfig,
    steps: int = 4,
    threads: int | None = None,
    device: str = "cpu",
) -> float:
    """Estimated seconds to train ``arch`` alone with ``cfg``'s schedule on
    ``device``: ``steps`` timed training steps (forward, loss, backward,
    optimiser step on a batch of ``cfg.batch_size`` training images, after one
    untimed step) of a fresh copy of the extracted sub-network, times the
    steps of ``cfg``'s epochs (its ``steps`` where set). ``threads`` as in :func:`setup_torch` (the
    training thread count; call this after any latency measurement, see
    ``measure_latency``)."""

    setup_torch(threads)
    dev = resolve_device(device)
    plain = copy.deepcopy(net.extract(arch)).train()
    plain.to(dev, memory_format=training_format(plain))
    model = AtResolution(plain, net.input_shape_for(arch))  # trained at its own resolution
    opt = make_optimizer(model.parameters(), cfg)
    task = task_for(data, cfg)
    n = min(cfg.batch_size, len(data.x_train))
    images, yb = split_tensors(data, "train", dev, n)
    xb = images[:n]

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        task.loss(model(xb), yb).backward()
        opt.step()

    per_step = time_calls(step, dev, repeats=steps)
    return per_step * math.ceil(len(data.x_train) / cfg.batch_size) * cfg.for_images(len(data.y_train)).epochs
