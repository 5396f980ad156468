"""What the stages of a run share: its data, its super-network's config, the
trained super-network checked against the run, and the evaluator its search
uses. Workers of other processes (``lightnas.evaluate.ray_pool``) build the
same from the run folder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from lightnas.artefacts import Checkpoint
from lightnas.config import MCU_METRICS, RunConfig
from lightnas.data import load_dataset
from lightnas.errors import LightnasError
from lightnas.hardware.lut import LatencyTable
from lightnas.objectives import parse_constraint
from lightnas.supernets import SUPERNETS

if TYPE_CHECKING:  # the stages import these when they run: the command line starts without torch
    from lightnas.data.sources import Dataset
    from lightnas.evaluate.base import Evaluator
    from lightnas.evaluate.supernet import SupernetEvaluator
    from lightnas.hardware.lut import LatencyTable
    from lightnas.quantization.wrapper import Searchable
    from lightnas.supernets.base import Supernet


def load_data(cfg: RunConfig, progress: bool = False) -> Dataset:
    """The run's data set (an image folder met for the first time is decoded
    into the cache, with a progress bar when ``progress``)."""

    return load_dataset(cfg.data.source, cfg.seed, cfg.data.image_size, progress)


def supernet_config(cfg: RunConfig, data: Dataset) -> dict[str, object]:
    """The super-network's plain config dict for ``data``'s input spec."""

    cls = SUPERNETS.get(cfg.supernet.name)
    spec = {"input_shape": list(data.input_shape), "n_classes": data.n_classes}
    return cls.config_class.from_dict({**spec, **cfg.supernet.options}).to_dict()


def trained(out: Path, cfg: RunConfig, data: Dataset | None = None) -> tuple[Searchable, Checkpoint, Dataset]:
    """The trained super-network, its checkpoint and the data, checked against each other."""
    # torch loads here, when the work runs: the command line starts and checks its input without it (2 s)
    from lightnas.tensors import setup_torch
    from lightnas.train.checkpoint import load_supernet

    # the whole process at the measurement thread count: a larger OpenMP pool
    # left from training slowed 1-thread latency by 30-60% here (measured)
    setup_torch(cfg.latency.threads)
    net, ckpt = load_supernet(out / "supernet.pt")
    data = data or load_data(cfg)
    config = type(net.config).current(ckpt.config)
    if ckpt.supernet != cfg.supernet.name or config != supernet_config(cfg, data):
        raise LightnasError(f"{out / 'supernet.pt'} holds another super-network than {out}/config.json names")
    if ckpt.data.get("splits") != data.describe().get("splits"):
        raise LightnasError(f"{out / 'supernet.pt'} was trained on other data than {cfg.data.source}")
    epochs = cfg.train.for_images(len(data.y_train)).epochs
    if ckpt.epoch < epochs:
        raise LightnasError(
            f"{out / 'supernet.pt'} is trained for {ckpt.epoch} of {epochs} epochs "
            f"(run 'lightnas train {out} --resume' first)"
        )
    return with_precision(net, cfg, data), ckpt, data


def with_precision(net: Supernet, cfg: RunConfig, data: Dataset) -> Searchable:
    """``net``, with a precision dimension per block group when the run
    searches quantization (``--quantize``): calibrated on the first
    ``--calib-images`` training images (a one-line error when there are fewer)."""
    q = cfg.quantize
    if not q.precision:
        return net
    # torch loads here, when the work runs: the command line starts and checks its input without it (2 s)
    from lightnas.quantization.wrapper import PrecisionSupernet
    from lightnas.tensors import CALIB_IMAGES, to_tensor

    n_train = len(data.x_train)
    if q.calib_images > n_train:
        raise LightnasError(f"--calib-images {q.calib_images} asks for more than the {n_train} training images")
    calib, bn_calib = (to_tensor(data.x_train[:n], data) for n in (q.calib_images, CALIB_IMAGES))
    return PrecisionSupernet(net, calib, bn_calib, q.calib_method)


def load_lut(path: Path, cfg: RunConfig, device: str = "") -> LatencyTable:
    """A latency table checked against the run: the batch it prices and
    whether its parts carry a precision (``--quantize``) must be the run's
    (one-line errors). For the run folder's own table (no ``device``) another
    machine, backend or thread count is a warning; the table of a named
    ``device`` (``--target-table``) was built there on purpose."""

    lut = LatencyTable.load(path)
    if not device:
        lut.check_compatible(backend=cfg.latency.backend, threads=cfg.latency.threads)
    if int(lut.meta.get("batch", 1)) != cfg.latency.batch:
        raise LightnasError(
            f"{path} prices batch {lut.meta.get('batch', 1)}, the run searches batch {cfg.latency.batch}"
        )
    quantized = any(k.endswith("/int8") for k in lut.parts)
    if quantized != bool(cfg.quantize.precision):
        has = "INT8 parts" if quantized else "float32 parts only"
        raise LightnasError(f"{path} has {has}; move it aside to build the table this run needs")
    return lut


def worker_evaluator(out: Path, cfg: RunConfig, threads: int, latency: bool) -> Evaluator:
    """What a worker of another process (a Ray actor) evaluates with: the
    run's trained super-network and data; with ``latency`` the run's own
    evaluator (the target's measurements, lookup table included), else one
    for accuracy (its latency measured by the driver). A
    :data:`~lightnas.evaluate.ray_pool.WorkerEvaluator`."""
    # torch loads here, when the work runs: the command line starts and checks its input without it (2 s)
    from lightnas.evaluate.supernet import SupernetEvaluator
    from lightnas.tensors import setup_torch

    net, _, data = trained(out, cfg)
    setup_torch(threads)
    return run_evaluator(out, cfg, net, data) if latency else SupernetEvaluator(net, data, device=cfg.device)


def run_evaluator(out: Path, cfg: RunConfig, net: Searchable, data: Dataset) -> SupernetEvaluator:
    # torch loads here, when the work runs: the command line starts and checks its input without it (2 s)
    from lightnas.evaluate.supernet import LatencySource, SupernetEvaluator

    lut = None
    if cfg.latency.mode == "lut":
        lut_path = out / "lut.json"
        if lut_path.exists():
            lut = load_lut(lut_path, cfg)
        else:
            lut = LatencyTable.build(
                net,
                backend=cfg.latency.backend,
                threads=cfg.latency.threads,
                batch=cfg.latency.batch,
                window_s=cfg.latency.lut_seconds,
            )
            lut.save(lut_path)
        lut.bind(net)
    tables = {name: load_lut(Path(path), cfg, name).bind(net) for name, path in cfg.latency.tables.items()}
    lat = cfg.latency
    mcu = any(parse_constraint(c).metric in MCU_METRICS for c in (*cfg.search.constraints, *cfg.export.targets))
    source = LatencySource(lat.backend, lat.threads, lat.batch, lat.target, lut, tables, mcu)
    return SupernetEvaluator(net, data, source, device=cfg.device)
