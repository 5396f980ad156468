"""Export sub-networks as plain PyTorch + ONNX, verified, with a model card.

Each exported model is a folder ``models/<id>/`` with:

- ``model.pt``: the plain module's state dict (``torch.load(weights_only=True)``);
- ``arch.json``: super-network name and config, architecture and its key;
- ``model.onnx``: the same network for ONNX Runtime (input ``input``, NCHW
  float32, dynamic batch; output ``logits``);
- ``card.json``: accuracy (of ``model.onnx`` in ONNX Runtime on the whole
  test set), cost, latency in the target runtime (ONNX Runtime by default)
  with PyTorch eager beside it and how both were measured, and the
  preprocessing an input needs.

A sub-network whose precision policy puts groups in INT8 also gets
``model.int8.onnx`` (what ships: its accuracy, cost and latency are the
card's headline figures) and a ``quantization`` section on its card: the
policy, the calibration, the INT8 model's test accuracy in ONNX Runtime on the
whole test set beside the float32 one, their top-1 agreement, and the INT8
latency at batch 1 and at the run's ``--batch``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from lightnas.artefacts import CardLatency, Latency, ModelCard, Quantization, Verification, model_id, write_card
from lightnas.config import LatencyConfig
from lightnas.data.sources import Dataset
from lightnas.errors import LightnasError
from lightnas.hardware.cost import count_cost
from lightnas.hardware.latency import LATENCY_BACKENDS, QUANTILE, BackendUnavailable, Timing, measure_latency
from lightnas.hardware.onnx_graph import onnx_logits, onnx_session, to_onnx_bytes
from lightnas.io import write_bytes, write_json
from lightnas.litert.export import LITERT_FILES, litert_files
from lightnas.quantization.policy import split_policy
from lightnas.quantization.wrapper import QuantizedModule, Searchable
from lightnas.space import Arch
from lightnas.supernets import supernet_from_config
from lightnas.supernets.base import resize_input
from lightnas.tensors import CALIB_IMAGES, EVAL_BATCH, atomic_save, predict, safe_load, split_tensors, to_tensor

EXTRACT_TOL = 1e-5
ONNX_TOL = 1e-4
ONNX_CHECK_IMAGES = 2000
FILE_KEYS = {"onnx": "model.onnx", "onnx_int8": "model.int8.onnx", **LITERT_FILES}
"""The card's ``files`` key of each model file an export may write."""


@dataclass(frozen=True)
class ExportContext:
    """What every exported model of a run shares: the super-network it comes
    from, the data (test split, preprocessing), and the latency target (the
    run's latency section: runtime, threads, device, batch, and whether the
    search measured latency or read it from a table)."""

    supernet_name: str
    supernet_config: dict[str, object]
    data: Dataset
    latency: LatencyConfig = LatencyConfig()

    @property
    def latency_source(self) -> str:
        """How the search knew the latency: ``measured`` or ``lookup table``."""
        return "lookup table" if self.latency.mode == "lut" else "measured"


@dataclass(frozen=True)
class CardExtras:
    """What a caller adds to a card beside what export measures: the
    verification done before (the extraction's check), the export targets and
    device fronts it serves, a fine-tune's provenance (fields of :class:`ModelCard`)."""

    verification: dict[str, float] = field(default_factory=dict)
    fields: dict[str, object] = field(default_factory=dict)


@torch.no_grad()
def export_subnet(
    net: Searchable,
    arch: Arch,
    out_dir: Path,
    ctx: ExportContext,
    search_metrics: dict[str, float],
    extras: CardExtras = CardExtras(),
) -> ModelCard:
    """Calibrate, extract, verify and write one sub-network; returns its card.

    Raises :class:`LightnasError` when the plain module differs from the
    super-network's sub-network by more than 1e-5 (max abs, logits) or ONNX
    Runtime differs from PyTorch by more than 1e-4. ``extras``: fields of the
    card the caller knows (:class:`CardExtras`).
    """
    data = ctx.data
    x_calib = to_tensor(data.x_train[:CALIB_IMAGES], data)
    x_val = to_tensor(data.x_val[:256], data)
    net.set_active(arch)
    net.calibrate(x_calib)
    plain = net.extract(arch).eval()
    shape = net.input_shape_for(arch)
    diff = float((net(x_val) - plain(resize_input(x_val, shape))).abs().max()) if len(x_val) else 0.0
    if diff > EXTRACT_TOL:
        raise LightnasError(f"extracted {arch.key} differs from the super-network by {diff:.2e}")
    extras = dataclasses.replace(extras, verification={**extras.verification, "extract_max_abs_diff": diff})
    return export_plain(plain, arch, out_dir / model_id(arch), ctx, search_metrics, extras, input_shape=shape)


def test_batches(data: Dataset, shape: tuple[int, ...]) -> Iterator[np.ndarray]:
    """The test split in order, :data:`EVAL_BATCH` images at a time, normalised
    and brought to ``shape`` (C, H, W), as float32 arrays (memory bounded by a batch)."""
    for b in split_tensors(data, "test")[0].batches():
        yield np.ascontiguousarray(resize_input(b, shape).numpy())


def verify_onnx(
    plain: torch.nn.Module, onnx_bytes: bytes, batches: Iterable[np.ndarray], key: str
) -> tuple[np.ndarray, dict]:
    """ONNX Runtime's logits over the images of ``batches`` (the deployed
    runtime: what the card's accuracy counts; as many threads as PyTorch has)
    and the check that PyTorch computes the same on the first
    :data:`ONNX_CHECK_IMAGES` images (max abs difference <= :data:`ONNX_TOL`)."""
    sess = onnx_session(onnx_bytes, torch.get_num_threads())
    ort, diffs, agree, n = [], [0.0], 0, 0
    for x in batches:
        out = onnx_logits(sess, x, EVAL_BATCH)
        ort.append(out)
        if n < ONNX_CHECK_IMAGES:  # PyTorch over the whole test set costs 2-6x ONNX Runtime, for nothing new
            k = min(len(x), ONNX_CHECK_IMAGES - n)
            ref = predict(plain, torch.from_numpy(x[:k])).numpy()
            diffs.append(float(np.abs(out[:k] - ref).max()) if k else 0.0)
            agree += int((out[:k].argmax(1) == ref.argmax(1)).sum())
            n += k
    if max(diffs) > ONNX_TOL:
        raise LightnasError(f"ONNX Runtime differs from PyTorch by {max(diffs):.2e} for {key}")
    logits = np.concatenate(ort) if ort else np.zeros((0, 0), dtype=np.float32)
    check = {"onnx_max_abs_diff": max(diffs), "onnx_checked_images": n}
    return logits, {**check, "onnx_torch_prediction_agreement": agree / n if n else 1.0}


def latencies(
    plain: torch.nn.Module, ctx: ExportContext, search_metrics: dict[str, float], input_shape: tuple[int, ...]
) -> CardLatency:
    """The card's latency: the target runtime's figures on the target device
    first, every backend's on the CPU beside them (ms, batch 1, ``ctx.latency.threads``
    threads, inputs of ``input_shape``)."""
    names = [b for b in LATENCY_BACKENDS.names() if b == ctx.latency.backend or not getattr(plain, "int8_modules", ())]
    runs = {}
    for b in names:
        try:
            runs[b] = measure_latency(plain, input_shape, b, ctx.latency.threads, timing=Timing(repeats=100))
        except BackendUnavailable:
            if b == ctx.latency.backend:
                raise
    lat = runs[ctx.latency.backend]
    if ctx.latency.target != "cpu":
        lat = measure_latency(
            plain,
            input_shape,
            ctx.latency.backend,
            ctx.latency.threads,
            device=ctx.latency.target,
            timing=Timing(repeats=100),
        )
    return CardLatency(
        **_figures(lat),
        how=f"measured at export: {QUANTILE}th percentile of {lat['repeats']} runs after warm-up, in a window "
        "where a fixed probe network beside them ran at its quiet speed (probe_slowdown)",
        probe_slowdown=lat.get("probe_slowdown"),
        search_latency_ms=search_metrics.get("latency_ms"),
        search_latency_source=ctx.latency_source,
        backend=lat["backend"],
        threads=lat["threads"],
        batch=lat["batch"],
        device=lat["device"],
        input_shape=[1, *input_shape],
        by_backend={b: Latency(**_figures(r)) for b, r in runs.items()},
        at_batch=at_batch(plain, ctx, input_shape) if ctx.latency.batch != 1 else None,
    )


def _figures(lat: dict[str, float]) -> dict[str, float]:
    return {k: float(lat[k]) for k in ("latency_ms", "latency_median_ms", "latency_iqr_ms")}


def at_batch(plain: torch.nn.Module, ctx: ExportContext, input_shape: tuple[int, ...]) -> Latency:
    """Latency (ms per batch) at the run's ``--batch`` in the target runtime."""
    lat = measure_latency(
        plain,
        input_shape,
        ctx.latency.backend,
        ctx.latency.threads,
        ctx.latency.batch,
        device=ctx.latency.target,
        timing=Timing(repeats=30),
    )
    return Latency(**_figures(lat), batch=ctx.latency.batch)


@torch.no_grad()
def export_plain(
    plain: torch.nn.Module,
    arch: Arch,
    folder: Path,
    ctx: ExportContext,
    search_metrics: dict[str, float],
    extras: CardExtras = CardExtras(),
    input_shape: tuple[int, int, int] | None = None,
) -> ModelCard:
    """Write a plain module (state dict, arch, ONNX verified against PyTorch
    within 1e-4, card with test accuracy, cost and latency) into ``folder``.
    ``input_shape``: the (C, H, W) the module takes (default: the data's;
    smaller for a sub-network of lower resolution, whose test images are
    brought to it by :func:`~lightnas.supernets.base.resize_input`, as the card says)."""
    data = ctx.data
    shape = tuple(input_shape or data.input_shape)
    deployed = plain.eval()
    fp32 = getattr(deployed, "plain", deployed)  # the float32 network of an INT8 policy
    onnx_bytes = to_onnx_bytes(fp32, shape)
    logits, check = verify_onnx(fp32, onnx_bytes, test_batches(data, shape), arch.key)
    base, policy = split_policy(arch)
    int8_onnx, quant = None, Quantization(policy=policy) if policy else None
    test_accuracy = _top1(logits, data.y_test)
    if getattr(deployed, "int8_modules", ()):
        int8_onnx, quant = quantized_card(deployed, policy, logits, test_batches(data, shape), data.y_test, shape)
        test_accuracy = quant.test_accuracy or 0.0  # what ships: the INT8 graph
    lite, lite_files = litert_files(fp32, shape, data, test_batches(data, shape), arch.key, ONNX_CHECK_IMAGES)
    cost = count_cost(deployed, shape)
    blobs = {"model.onnx": onnx_bytes, **({"model.int8.onnx": int8_onnx} if int8_onnx else {}), **lite_files}
    files = {"state_dict": "model.pt", "arch": "arch.json", **{k: v for k, v in FILE_KEYS.items() if v in blobs}}
    card = ModelCard(
        id=folder.name,
        key=arch.key,
        arch=dict(arch),
        supernet=ctx.supernet_name,
        dataset=data.describe(),
        val_accuracy=search_metrics.get("accuracy"),
        test_accuracy=test_accuracy,
        params=float(cost["params"]),
        macs=float(cost["macs"]),
        bytes=float(cost["bytes"]),
        peak_act_bytes=float(cost["peak_act_bytes"]),
        onnx_bytes=len(onnx_bytes),
        latency=latencies(deployed, ctx, search_metrics, shape),
        preprocessing=data.preprocessing(shape),
        verification=Verification(**{**extras.verification, **check}),
        files=files,
        exported=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        quantization=quant,
        litert=lite,
    )
    card = dataclasses.replace(card, **extras.fields)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_save(fp32.state_dict(), folder / "model.pt")
    meta = {"supernet": ctx.supernet_name, "config": ctx.supernet_config, "key": arch.key, "arch": base}
    write_json({**meta, "precision": policy} if policy else meta, folder / "arch.json")
    for name, content in blobs.items():
        write_bytes(content, folder / name)
    write_card(card, folder)
    return card


def _top1(logits: np.ndarray, y: np.ndarray) -> float:
    return 100.0 * float((logits.argmax(1) == y).mean()) if len(logits) else 0.0


def quantized_card(
    deployed: QuantizedModule,
    policy: dict[str, str],
    fp32_logits: np.ndarray,
    batches: Iterable[np.ndarray],
    y_test: np.ndarray,
    shape: tuple[int, ...],
) -> tuple[bytes, Quantization]:
    """The INT8 graph of ``deployed`` (    inputs of ``shape``) and its card section: run
    by ONNX Runtime on the whole test set (``batches``), its accuracy beside
    the float32 one and their top-1 agreement."""
    onnx = deployed.deployed_onnx(tuple(shape))
    sess = onnx_session(onnx, torch.get_num_threads())
    parts = [onnx_logits(sess, x, EVAL_BATCH) for x in batches]
    int8_logits = np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)
    agreement = float((int8_logits.argmax(1) == fp32_logits.argmax(1)).mean()) if len(y_test) else 1.0
    quant = Quantization(
        policy=policy,
        test_accuracy=_top1(int8_logits, y_test),
        test_accuracy_fp32=_top1(fp32_logits, y_test),
        top1_agreement_fp32=agreement,
        onnx_int8_bytes=len(onnx),
        int8_modules=list(deployed.int8_modules),
        **deployed.graph.settings(),
    )
    return onnx, quant


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
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise LightnasError(f"{arch_file} is malformed: {exc}") from None
    plain = supernet.extract(arch)
    try:
        plain.load_state_dict(safe_load(folder / "model.pt"))
    except RuntimeError as exc:
        raise LightnasError(f"{folder / 'model.pt'} does not fit {arch_file}: {str(exc).splitlines()[0]}") from None
    return plain.eval()
