"""Train a super-network once: a teacher on the labels, students by distillation.

Each step trains the teacher (the largest sub-network) on the labels with the
task's loss, then the students the recipe names (:mod:`lightnas.train.recipes`)
with the task's distillation loss against the teacher's outputs, accumulating
gradients before one optimiser step. The students' summed gradient is
projected off the teacher's where the two conflict
(``TrainConfig.project_conflicts``), the students run without dropout (only
the teacher is regularised, BigNAS), and the super-network's
``init_for_training`` hook runs on the fresh weights. The weights saved for
search and export are an exponential moving average. The checkpoint is
written atomically after every epoch; training resumes from it and computes
the same weights as an uninterrupted run (seeded initial weights, data order,
students and dropout).
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm.auto import tqdm

from lightnas.artefacts import Checkpoint, TrainJob
from lightnas.config import TrainConfig
from lightnas.data.sources import Dataset
from lightnas.errors import LightnasError
from lightnas.space import Arch
from lightnas.supernets import supernet_from_config
from lightnas.tasks import Task, task_for
from lightnas.tensors import (
    CALIB_IMAGES,
    atomic_save,
    predict,
    setup_torch,
    split_tensors,
)
from lightnas.train.checkpoint import read_checkpoint
from lightnas.train.collective import (
    GlobalBatchDropout,
    barrier,
    share_batch_norm,
    sum_over_processes,
    synced_batch_norm,
)
from lightnas.train.device import (
    MEMORY_FORMATS,
    Sections,
    describe_device,
    resolve_device,
    synchronize,
    time_calls,
    training_settings,
)
from lightnas.train.gradients import add_projected, take_grads
from lightnas.train.memory import choose_recompute, release_free_memory
from lightnas.train.optim import lr_at, make_optimizer
from lightnas.train.recipes import RECIPES, resolve_length, resolve_recipe
from lightnas.train.sampling import PartCost

if TYPE_CHECKING:
    from tqdm import tqdm


class SupernetTrainer:
    """One training run of one super-network (see the module docstring).

    ``only`` (an architecture as a dict) trains that one sub-network alone,
    on the labels, with no students.
    """

    def __init__(self, job: TrainJob, data: Dataset, task: Task | None = None, rank: int = 0, world: int = 1):
        seed, only = job.seed, job.only
        # a length in steps becomes epochs of this data, 'auto' the recipe the budget calls for;
        # the checkpoint keeps what was asked
        cfg, self.length = resolve_length(job.train, len(data.y_train))
        cfg, self.chosen = resolve_recipe(cfg, len(data.y_train)) if only is None else (cfg, "")
        setup_torch(job.threads)
        self.rank, self.world = rank, world
        self.device = resolve_device(job.device)
        torch.manual_seed(seed)  # the initial weights: the same seed trains the same network
        self.net = supernet_from_config(job.supernet, job.config)
        if cfg.init_for_training:
            self.net.init_for_training()
        if world > 1:
            share_batch_norm(self.net)
        self.net.to(self.device)
        self.cfg, self.seed, self.data = cfg, seed, data
        self.task = task or task_for(data, cfg)
        space = self.net.space
        self.teacher = space.make(only) if only is not None else space.largest()
        self.recipe = None if only is not None else self._recipe()
        # a fixed teacher (the user's model a super-network was made from) teaches every sub-network
        self.frozen = self.net.distillation_teacher() if self.recipe is not None else None
        self.fixed: torch.Tensor | None = None  # its outputs on the training images, where fixed
        if self.frozen is not None:
            self.frozen.to(self.device)
        self.dropouts = [m for m in self.net.modules() if isinstance(m, torch.nn.Dropout)]
        self.masks = GlobalBatchDropout(self.dropouts)
        self.sections = Sections(self.device)  # bench/step_profile.py turns it on
        self.x_train, self.y_train = split_tensors(data, "train", self.device)
        self.x_val, self.y_val = split_tensors(data, "val", self.device)
        self.steps_per_epoch = math.ceil(len(self.x_train) / cfg.batch_size)
        self.params = dict(self.net.named_parameters())
        # activations bounded before any full-batch step; the layout fixed before any weights
        # are loaded, so that a resumed run computes the same floats as an uninterrupted one
        self.net.set_active(self.teacher)
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            recompute = choose_recompute(self.net, self.x_train[:4], cfg.batch_size, cfg.activation_budget_mb)
        self.settings = {**self._choose_layout(), **recompute}
        self.settings.update({k: v for k, v in (("recipe", self.chosen), ("length", self.length)) if v})
        self.opt = make_optimizer(self.net.parameters(), cfg)
        self.ema = {n: p.detach().clone() for n, p in self.params.items()}
        self.ckpt = Checkpoint(
            job.supernet, job.config, dataclasses.asdict(job.train), seed, data.describe(), only=only
        )

    def _choose_layout(self) -> dict[str, Any]:
        """The memory format and precision the super-network trains in, and why.

        Each of :func:`training_settings` (one on the CPU: channels-last,
        float32) is timed over a few training steps of the recipe's students
        and the fastest kept: on a GPU sliced depthwise convolutions make the
        usual choices (channels-last, bfloat16 autocast) the slow ones for
        small networks, and the fast ones for others. The trial leaves no
        trace: weights, buffers and the random streams are restored, the
        optimiser is made after. Returns the settings recorded in the
        checkpoint's history (with each candidate's milliseconds per step)."""
        info = {**describe_device(self.device), "processes": self.world}
        candidates = training_settings(self.device)
        if len(candidates) == 1:
            self._apply(candidates[0])
            return {**info, **candidates[0]}
        saved = {k: v.clone() for k, v in self.net.state_dict().items()}
        n = min(self.cfg.batch_size, len(self.x_train))
        xb, yb = self.x_train[:n], self.y_train[:n]
        timings = {}
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            for cand in candidates:
                self._apply(cand)
                self.opt = torch.optim.SGD(self.net.parameters(), lr=0.0)
                rng = np.random.default_rng(0)
                students = [self.recipe.students(0, rng) if self.recipe is not None else [] for _ in range(4)]
                batch = xb.contiguous(memory_format=self.memory_format)
                ms = 1e3 * time_calls(lambda s=students, b=batch: [self.step(b, yb, t) for t in s], self.device, 2)
                timings["/".join(cand.values())] = ms / len(students)
        self.net.load_state_dict(saved)
        best = candidates[int(np.argmin(list(timings.values())))]
        self._apply(best)
        return {**info, **best, "step_ms": {k: round(v, 2) for k, v in timings.items()}}

    def _apply(self, settings: dict[str, Any]) -> None:
        """Train in ``settings`` (``memory_format``, ``precision``) from now on."""
        self.memory_format = MEMORY_FORMATS[settings["memory_format"]]
        self.net.to(memory_format=self.memory_format)
        if self.frozen is not None:
            self.frozen.to(memory_format=self.memory_format)
        self.autocast = settings.get("precision", "float32") == "bfloat16"

    def _forward(self, xb: torch.Tensor, module: torch.nn.Module | None = None) -> torch.Tensor:
        """The active sub-network's logits (or ``module``'s), under bfloat16 autocast when the settings say so."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            return (module or self.net)(xb)

    def _recipe(self) -> Any:
        cls = RECIPES.get(self.cfg.recipe)
        cost = PartCost(self.net).macs if cls.sampler == "cost" else None
        return cls(self.cfg, self.net.space, self.net.elastic_groups(), cost)

    def resume(self, checkpoint: Path) -> None:
        """Continue from ``checkpoint`` (the same super-network, data and settings)."""
        old = read_checkpoint(checkpoint)
        old.config = type(self.net.config).current(old.config)  # fields added since it was written
        old.train_config = {**dataclasses.asdict(TrainConfig()), **old.train_config}  # take their defaults
        for key in ("supernet", "config", "train_config", "seed", "only"):
            if getattr(old, key) != getattr(self.ckpt, key):
                raise LightnasError(f"{checkpoint} was trained with a different {key.replace('_', ' ')}")
        if old.data.get("splits") != self.ckpt.data.get("splits"):
            raise LightnasError(f"{checkpoint} was trained on different data")
        recorded = old.settings
        if "memory_format" in recorded and all(recorded.get(k) == self.settings.get(k) for k in ("device", "name")):
            self._apply(recorded)  # the same device again: the same layout and precision, so the same floats
            chosen = {k: recorded[k] for k in ("memory_format", "precision") if k in recorded}
            self.settings = {**self.settings, **chosen}
        try:
            if old.train_state_dict is None or old.optimizer is None or old.ema is None:
                raise KeyError("no weights")
            self.net.load_state_dict(old.train_state_dict)
            self.opt.load_state_dict(old.optimizer)
            for n, v in old.ema.items():
                self.ema[n].copy_(v)
        except (KeyError, RuntimeError, ValueError) as exc:
            raise LightnasError(f"{checkpoint} does not fit this super-network: {str(exc).splitlines()[0]}") from None
        self.ckpt.epoch, self.ckpt.history = old.epoch, list(old.history)

    def save(self, checkpoint: Path) -> None:
        atomic_save(self.ckpt.to_dict(), checkpoint)

    # -- training -------------------------------------------------------------------------
    def step(
        self,
        xb: torch.Tensor,
        yb: torch.Tensor,
        students: list[Arch],
        share: float = 1.0,
        fixed: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One optimiser step on a batch; returns the teacher's loss (a 0-d
        tensor on the training device: reading it would wait for the device).
        In distributed training ``xb`` is this process's ``share`` of the
        global batch: losses are weighted by it and gradients summed over the
        processes before the projection, so every process takes the step one
        process would take on the whole batch. ``fixed``: the fixed teacher's
        outputs on ``xb`` where known (:meth:`_fixed_outputs`)."""
        net, plist, section = self.net, list(self.params.values()), self.sections
        self.opt.zero_grad(set_to_none=True)
        with section("teacher"):
            net.set_active(self.teacher)
            logits = self._forward(xb)
            if self.frozen is None:
                loss = self.task.loss(logits.float(), yb)
                soft = logits.detach().float()
            else:
                with torch.no_grad():
                    soft = self._forward(xb, self.frozen).float() if fixed is None else fixed
                loss = self.task.distill_loss(logits.float(), soft, yb)
            (loss * share).backward()
            self._release()
        teacher_grads = None
        if students and self.cfg.project_conflicts:
            with section("projection"):
                teacher_grads = take_grads(plist)
                sum_over_processes(teacher_grads, self.world)
        for m in self.dropouts:  # BigNAS: only the teacher is regularised; the students learn from it
            m.train(False)
        with section("students"):
            for arch in students:
                net.set_active(arch)
                (self.task.distill_loss(self._forward(xb).float(), soft, yb) * share).backward()
                self._release()
        for m in self.dropouts:
            m.train(True)
        with section("projection"):
            sum_over_processes([p.grad for p in plist], self.world)
            if teacher_grads is not None:
                add_projected(plist, teacher_grads)
        with section("optimiser"):
            torch.nn.utils.clip_grad_norm_(plist, 5.0)
            self.opt.step()
        return loss.detach()

    def _release(self) -> None:
        """Under an activation budget, the last sub-network's freed activations go back to the OS."""
        if self.net.recompute and self.device.type == "cpu":
            release_free_memory()

    @torch.no_grad()
    def _average(self, step: int) -> None:
        d = min(self.cfg.ema_decay, (1 + step) / (10 + step))
        ema = list(self.ema.values())
        torch._foreach_mul_(ema, d)
        torch._foreach_add_(ema, [p.detach() for p in self.params.values()], alpha=1 - d)

    def train_epoch(self, epoch: int, bar: tqdm | None = None) -> dict[str, float]:
        """One epoch; returns its mean teacher loss and seconds."""
        cfg, net = self.cfg, self.net
        net.train()
        gen = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        torch.manual_seed(self.seed * 100_003 + epoch)  # dropout: a resumed epoch draws what it would have
        rng = np.random.default_rng([self.seed, epoch])
        order = torch.randperm(len(self.x_train), generator=gen).to(self.device)
        total = cfg.epochs * self.steps_per_epoch
        if self.fixed is None:
            self.fixed = self._fixed_outputs()
        t0, seen = time.perf_counter(), 0
        loss_sum = torch.zeros((), device=self.device)
        for i in range(self.steps_per_epoch):
            step = epoch * self.steps_per_epoch + i
            for group in self.opt.param_groups:
                group["lr"] = lr_at(step, total, cfg.warmup_epochs * self.steps_per_epoch, cfg.lr)
            idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            if len(idx) < 2:
                continue
            with self.sections("data"):  # the students drawn, the batch read and augmented
                students = self.recipe.students(epoch, rng) if self.recipe is not None else []
                if i + 1 < self.steps_per_epoch:  # images on disk: the next batch is read while this one trains
                    self.x_train.prefetch(order[(i + 1) * cfg.batch_size : (i + 2) * cfg.batch_size])
                xb = self.task.augment(self.x_train[idx], gen).contiguous(memory_format=self.memory_format)
                yb = self.y_train[idx]
            lo, hi = len(idx) * self.rank // self.world, len(idx) * (self.rank + 1) // self.world
            if self.world > 1:  # this process's contiguous part of the global batch, augmented as a whole
                xb, yb = xb[lo:hi], yb[lo:hi]
            fixed = self.fixed[idx][lo:hi] if self.fixed is not None else None
            with self.masks.rows(lo, hi, len(idx), self.seed * 1_000_003 + step):
                loss_sum += self.step(xb, yb, students, len(yb) / len(idx), fixed) * len(yb)
            if cfg.ema_decay > 0:
                with self.sections("average"):
                    self._average(step)
            seen += len(idx)
            if bar is not None and (i % 20 == 0 or i + 1 == self.steps_per_epoch):
                rate = seen / (time.perf_counter() - t0)
                bar.set_postfix(
                    step=f"{i + 1}/{self.steps_per_epoch}", loss=f"{float(loss_sum) / seen:.3f}", img_s=f"{rate:.0f}"
                )
        sum_over_processes([loss_sum], self.world)  # the processes' sums add up to the whole epoch's
        synchronize(self.device)
        return {"loss": float(loss_sum) / max(seen, 1), "seconds": time.perf_counter() - t0}

    @torch.no_grad()
    def _fixed_outputs(self) -> torch.Tensor | None:
        """The fixed teacher's outputs on every training image where each image is the same every
        epoch (no augmentation) and they fit in 256 MiB; None otherwise (computed per step)."""
        if self.frozen is None or self.task.augments or len(self.x_train) * self.net.n_classes > 2**26:
            return None
        with self.sections("teacher"):
            return predict(self.frozen, self.x_train).float()

    def end_epoch(self, epoch: int, result: dict[str, float]) -> float:
        """Swap in the averaged weights, check the teacher on the validation
        split, record the epoch in the state; returns that validation metric."""
        net = self.net
        raw = {k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}
        if self.cfg.ema_decay > 0:  # the averaged weights are the ones searched and exported
            with torch.no_grad():
                for n, p in self.params.items():
                    p.copy_(self.ema[n])
        record = {"epoch": epoch + 1, "loss": result["loss"], "seconds": result["seconds"], "settings": self.settings}
        record["val_largest"], record["val_loss_largest"] = self._validate(self.teacher)
        # copies: the raw weights are loaded back into these very tensors below
        self.ckpt.state_dict = {k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}
        if self.recipe is not None:  # the other end of the space, for the training curves of the report
            record["val_smallest"], record["val_loss_smallest"] = self._validate(net.space.smallest())
        self.ckpt.history.append(record)
        self.ckpt.epoch = epoch + 1
        self.ckpt.train_state_dict = raw
        self.ckpt.ema = {n: v.contiguous() for n, v in self.ema.items()}
        self.ckpt.optimizer = self.opt.state_dict()
        net.load_state_dict(raw)  # training continues from the raw weights
        return record["val_largest"]

    def _validate(self, arch: Any) -> tuple[float, float]:
        """(task metric, task loss) of sub-network ``arch`` on the validation
        split, BatchNorm calibrated on training images first."""
        self.net.set_active(arch)
        with self.sections("calibration"):
            self.net.calibrate(self.x_train[:CALIB_IMAGES])
        if not len(self.x_val):
            return 0.0, 0.0
        with self.sections("validation"):
            logits = predict(self.net, self.x_val)
        return self.task.metric(logits, self.y_val), float(self.task.loss(logits, self.y_val))

    def run(self, checkpoint: Path, resume: bool = True, progress: bool = True) -> Checkpoint:
        """Train (or resume) to ``cfg.epochs``, writing ``checkpoint`` after every
        epoch; returns the final checkpoint."""
        if resume and checkpoint.exists():
            self.resume(checkpoint)
        bar = None
        if progress and self.rank == 0 and self.settings["recompute"]:
            print(
                f"a training step of the largest sub-network keeps {self.settings['activation_mib']:.0f} MiB of "
                f"activations (budget {self.settings['budget_mib']:.0f} MiB, --activation-budget-mb): "
                "recomputed in the backward pass",
                file=sys.stderr,
            )
        if progress and self.rank == 0 and self.length and self.ckpt.epoch < self.cfg.epochs:
            print(f"training {self.length} (--epochs or --steps names another length)", file=sys.stderr)
        if progress and self.rank == 0 and self.chosen and self.ckpt.epoch < self.cfg.epochs:
            print(f"training with {self.chosen} (--recipe names another)", file=sys.stderr)
        if progress:
            bar = tqdm(total=self.cfg.epochs, initial=self.ckpt.epoch, desc="train", unit="epoch", file=sys.stderr)
        for epoch in range(self.ckpt.epoch, self.cfg.epochs):
            with synced_batch_norm(self.world):
                result = self.train_epoch(epoch, bar)
            val = self.end_epoch(epoch, result)
            if self.rank == 0:
                with self.sections("checkpoint"):
                    self.save(checkpoint)
            barrier(self.world)  # every process continues only once the epoch is on disk
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{result['loss']:.3f}", val_largest=f"{val:.1f}")
        if bar is not None:
            bar.close()
        return self.ckpt if self.ckpt.trained else read_checkpoint(checkpoint)


def train_supernet(
    job: TrainJob, data: Dataset, checkpoint: Path, resume: bool = True, progress: bool = True
) -> Checkpoint:
    """Train (or resume training) and return the final checkpoint (stored
    ``torch.load(weights_only=True)``-safe: :class:`lightnas.artefacts.Checkpoint`)."""
    return SupernetTrainer(job, data).run(checkpoint, resume, progress)
