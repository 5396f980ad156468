"""Export sub-networks as plain PyTorch + ONNX, verified, with a model card.

Each exported model is a folder ``models/<id>/`` with:

- ``model.pt``: the plain module's state dict (``torch.load(weights_only=True)``);
- ``arch.json``: super-network name and config, architecture and its key;
- ``model.onnx``: the same network for ONNX Runtime (input ``input``, NCHW
  float32, dynamic batch; output ``logits``);
- ``card.json``: accuracy, cost, latency and how it was measured, and the
  preprocessing an input needs.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lightnas.data.sources import Dataset
from lightnas.errors import LightnasError
from lightnas.hardware.cost import count_cost
from lightnas.hardware.latency import QUANTILE, measure_latency, onnx_session, to_onnx_bytes
from lightnas.io import write_bytes, write_json
from lightnas.space import Arch
from lightnas.supernets import supernet_from_config
from lightnas.train.common import CALIB_IMAGES, EVAL_BATCH, atomic_save, predict, recalibrate_bn, safe_load, to_tensor

EXTRACT_TOL = 1e-5
ONNX_TOL = 1e-4
ONNX_CHECK_IMAGES = 2000


def model_id(arch: Arch) -> str:
    """A short stable folder name for an architecture."""
    return "net-" + hashlib.sha1(arch.key.encode()).hexdigest()[:10]


@torch.no_grad()
def export_subnet(
    net: Any,
    supernet_name: str,
    arch: Arch,
    data: Dataset,
    out_dir: Path,
    search_metrics: dict[str, float],
    latency_backend: str = "torch",
    threads: int = 1,
    latency_source: str = "measured",
    calib_size: int = CALIB_IMAGES,
) -> dict[str, Any]:
    """Extract, verify and write one sub-network; returns its card.

    Raises :class:`LightnasError` when the plain module differs from the
    super-network's sub-network by more than 1e-5 (max abs, logits) or ONNX
    Runtime differs from PyTorch by more than 1e-4.
    """
    net = net.eval()
    x_calib = to_tensor(data.x_train[:calib_size], data)
    x_val = to_tensor(data.x_val[:256], data)
    net.set_active(arch)
    recalibrate_bn(net, x_calib)
    plain = net.extract(arch).eval()
    diff = float((net(x_val) - plain(x_val)).abs().max())
    if diff > EXTRACT_TOL:
        raise LightnasError(f"extracted {arch.key} differs from the super-network by {diff:.2e}")
    return export_plain(
        plain,
        net.config,
        supernet_name,
        arch,
        data,
        out_dir / model_id(arch),
        search_metrics,
        latency_backend,
        threads,
        latency_source,
        {"extract_max_abs_diff": diff},
    )


@torch.no_grad()
def export_plain(
    plain: torch.nn.Module,
    config: Any,
    supernet_name: str,
    arch: Arch,
    data: Dataset,
    folder: Path,
    search_metrics: dict[str, float],
    latency_backend: str = "torch",
    threads: int = 1,
    latency_source: str = "measured",
    verification: dict[str, float] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write a plain module (state dict, arch, ONNX verified against PyTorch
    within 1e-4, card with test accuracy, cost and latency) into ``folder``."""
    plain = plain.eval()
    x_test = to_tensor(data.x_test, data)
    torch_logits = predict(plain, x_test).numpy()
    test_acc = 100.0 * float((torch_logits.argmax(1) == data.y_test).mean())
    onnx_bytes = to_onnx_bytes(plain, data.input_shape)
    sess = onnx_session(onnx_bytes, threads)
    n_check = min(ONNX_CHECK_IMAGES, len(x_test))  # the whole test set costs as much again, for nothing new
    ort_logits = np.concatenate(
        [
            sess.run(None, {"input": x_test[i : min(i + EVAL_BATCH, n_check)].numpy()})[0]
            for i in range(0, n_check, EVAL_BATCH)
        ]
    )
    onnx_diff = float(np.abs(ort_logits - torch_logits[:n_check]).max())
    if onnx_diff > ONNX_TOL:
        raise LightnasError(f"ONNX Runtime differs from PyTorch by {onnx_diff:.2e} for {arch.key}")
    agree = float((ort_logits.argmax(1) == torch_logits[:n_check].argmax(1)).mean())
    cost = count_cost(plain, data.input_shape)
    lat = measure_latency(plain, data.input_shape, latency_backend, threads, repeats=100)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_save(plain.state_dict(), folder / "model.pt")
    write_json(
        {"supernet": supernet_name, "config": config.to_dict(), "key": arch.key, "arch": dict(arch)},
        folder / "arch.json",
    )
    write_bytes(onnx_bytes, folder / "model.onnx")
    card = {
        "id": folder.name,
        "key": arch.key,
        "arch": dict(arch),
        "supernet": supernet_name,
        "dataset": data.describe(),
        "val_accuracy": search_metrics.get("accuracy"),
        "test_accuracy": test_acc,
        "params": cost["params"],
        "macs": cost["macs"],
        "bytes": cost["bytes"],
        "onnx_bytes": len(onnx_bytes),
        "peak_act_bytes": cost["peak_act_bytes"],
        "latency": {
            "latency_ms": lat["latency_ms"],
            "latency_median_ms": lat["latency_median_ms"],
            "latency_iqr_ms": lat["latency_iqr_ms"],
            "how": f"measured at export: {QUANTILE}th percentile of {lat['repeats']} runs after warm-up",
            "search_latency_ms": search_metrics.get("latency_ms"),
            "search_latency_source": latency_source,
            "backend": lat["backend"],
            "threads": lat["threads"],
            "batch": lat["batch"],
            "device": lat["device"],
            "input_shape": [1, *data.input_shape],
        },
        "preprocessing": data.preprocessing(),
        "verification": {
            **(verification or {}),
            "onnx_max_abs_diff": onnx_diff,
            "onnx_checked_images": n_check,
            "onnx_torch_prediction_agreement": agree,
        },
        "files": {"state_dict": "model.pt", "arch": "arch.json", "onnx": "model.onnx"},
        "exported": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **(extra or {}),
    }
    write_json(card, folder / "card.json")
    return card


def load_exported(folder: str | Path) -> torch.nn.Module:
    """Rebuild an exported plain module from ``arch.json`` + ``model.pt``
    (loaded with ``weights_only=True``), in eval mode."""
    folder = Path(folder)
    arch_file = folder / "arch.json"
    if not arch_file.is_file():
        raise LightnasError(f"{folder} has no arch.json")
    try:
        meta = json.loads(arch_file.read_text())
        supernet = supernet_from_config(meta["supernet"], meta["config"])
        arch = supernet.space.make(meta["arch"])
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise LightnasError(f"{arch_file} is malformed: {exc}") from None
    plain = supernet.extract(arch)
    plain.load_state_dict(safe_load(folder / "model.pt"))
    return plain.eval()
