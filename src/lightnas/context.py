"""What the stages of a run share: its data, its super-network's config, the
trained super-network checked against the run, and the evaluator its search
uses. Workers of other processes (``lightnas.evaluate.ray_pool``) build the
same from the run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightnas.config import RunConfig
from lightnas.errors import LightnasError


def load_data(cfg: RunConfig) -> Any:
    from lightnas.data import load_dataset

    return load_dataset(cfg.data.source, cfg.seed)


def supernet_config(cfg: RunConfig, data: Any) -> dict[str, Any]:
    """The super-network's plain config dict for ``data``'s input spec."""
    from lightnas.supernets import SUPERNETS

    cls = SUPERNETS.get(cfg.supernet.name)
    spec = {"input_shape": list(data.input_shape), "n_classes": data.n_classes}
    return cls.config_class.from_dict({**spec, **cfg.supernet.options}).to_dict()


def trained(out: Path, cfg: RunConfig, data: Any = None) -> tuple[Any, dict[str, Any], Any]:
    """The trained super-network, its checkpoint and the data, checked against each other."""
    from lightnas.train.common import setup_torch
    from lightnas.train.trainer import load_supernet

    # the whole process at the measurement thread count: a larger OpenMP pool
    # left from training slowed 1-thread latency by 30-60% here (measured)
    setup_torch(cfg.latency.threads)
    net, state = load_supernet(out / "supernet.pt")
    data = data or load_data(cfg)
    if state["supernet"] != cfg.supernet.name or state["config"] != supernet_config(cfg, data):
        raise LightnasError(f"{out / 'supernet.pt'} holds another super-network than {out}/config.json names")
    if state["data"].get("splits") != data.describe().get("splits"):
        raise LightnasError(f"{out / 'supernet.pt'} was trained on other data than {cfg.data.source}")
    if state["epoch"] < cfg.train.epochs:
        raise LightnasError(
            f"{out / 'supernet.pt'} is trained for {state['epoch']} of {cfg.train.epochs} epochs "
            f"(run 'lightnas train {out} --resume' first)"
        )
    return net, state, data


def run_evaluator(out: Path, cfg: RunConfig, net: Any, data: Any) -> Any:
    from lightnas.evaluate.supernet import SupernetEvaluator

    lut = None
    if cfg.latency.mode == "lut":
        from lightnas.hardware.lut import LatencyTable

        lut_path = out / "lut.json"
        if lut_path.exists():
            lut = LatencyTable.load(lut_path)
            lut.check_compatible(backend=cfg.latency.backend, threads=cfg.latency.threads)
        else:
            lut = LatencyTable.build(net, backend=cfg.latency.backend, threads=cfg.latency.threads)
            lut.save(lut_path)
        lut.bind(net)
    return SupernetEvaluator(
        net,
        data,
        backend=cfg.latency.backend,
        threads=cfg.latency.threads,
        lut=lut,
        device=cfg.device,
        target=cfg.latency.target,
    )
