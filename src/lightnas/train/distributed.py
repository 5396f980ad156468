"""Super-network training on several processes (``lightnas train DIR --nproc N``).

Every process holds the whole super-network and the whole data set, draws
the same data order, augmentation and students (all seeded per epoch, as one
process does), and trains on its contiguous part of each global batch. Losses
are weighted by each part's share, BatchNorm statistics are those of the
whole global batch (summed over the processes, see ``ElasticBN``), and the
gradients are summed over the processes before the conflict projection, the
clipping and the optimiser step; so every process takes the step that one
process would take on the whole batch, within float rounding, and the weights
stay equal everywhere. Only the teacher's dropout masks are drawn per part.
Process 0 writes the checkpoint after every epoch (the others wait for it),
so a stopped run resumes like a one-process run, with any process count.
gloo on the CPU, NCCL on GPUs (one per process).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lightnas.artefacts import TrainJob
from lightnas.data import load_dataset
from lightnas.errors import LightnasError
from lightnas.tensors import usable_cores
from lightnas.train.trainer import SupernetTrainer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class DistributedJob:
    """What each process of a distributed run is given: the training, the
    data as a :func:`~lightnas.data.load_dataset` spec (every process loads
    it, at ``image_size``), the checkpoint and whether to resume from it and
    to show progress (process 0). ``job.device``: ``cpu`` or ``cuda`` (one
    GPU per process); ``job.threads``: per process (None: the cores shared out)."""

    job: TrainJob
    data: str
    image_size: int
    checkpoint: Path
    resume: bool = True
    progress: bool = True


def _worker(rank: int, world: int, port: int, run: DistributedJob) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    cuda = run.job.device.startswith("cuda")
    dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world)
    try:
        threads = run.job.threads or max(1, usable_cores() // world)
        job = dataclasses.replace(run.job, threads=threads, device=f"cuda:{rank}" if cuda else "cpu")
        data = load_dataset(run.data, job.seed, run.image_size)
        trainer = SupernetTrainer(job, data, rank=rank, world=world)
        trainer.run(run.checkpoint, run.resume, progress=run.progress and rank == 0)
    finally:
        dist.destroy_process_group()


def train_distributed(nproc: int, run: DistributedJob) -> None:
    """Run :class:`~lightnas.train.trainer.SupernetTrainer` in ``nproc``
    processes. A process that fails or is killed stops them all with a
    one-line error; the checkpoint keeps the last finished epoch."""

    if run.job.device.startswith("cuda") and torch.cuda.device_count() < nproc:
        raise LightnasError(f"--nproc {nproc} on GPUs needs {nproc} GPUs, {torch.cuda.device_count()} are visible")
    logging.getLogger("torch.multiprocessing.spawn").setLevel(logging.ERROR)  # its stop notices: our one line says it
    try:
        mp.spawn(_worker, args=(nproc, _free_port(), run), nprocs=nproc, join=True)
    except mp.ProcessRaisedException as exc:
        last = str(exc).strip().splitlines()[-1]
        prefix = "lightnas.errors.LightnasError: "
        why = last[len(prefix) :] if last.startswith(prefix) else f"a training process failed: {last}"
        raise LightnasError(why) from None
    except mp.ProcessExitedException as exc:
        raise LightnasError(
            f"training process {exc.error_index} stopped ({exc}); {run.checkpoint} keeps the last finished epoch: "
            "continue with 'lightnas train DIR'"
        ) from None
