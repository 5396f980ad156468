"""What export writes: a model's card (``models/<id>/card.json``) and the models' folder names."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightnas.artefacts._io import check_format, compact, read_as
from lightnas.errors import LightnasError
from lightnas.io import write_json
from lightnas.space import Arch
from lightnas.strict import build

CARD_FORMAT = "lightnas-card-1"


@dataclass
class Latency:
    """One latency measurement: the 90th percentile, the median and the interquartile range (ms)."""

    latency_ms: float
    latency_median_ms: float
    latency_iqr_ms: float
    batch: int | None = None  # the batch, where it is not the card's (``at_batch``)


@dataclass
class CardLatency:
    """A model's latency in the target runtime on the target device (ms), how
    it was measured, and every backend's on the CPU beside it (``by_backend``)."""

    latency_ms: float
    latency_median_ms: float
    latency_iqr_ms: float
    backend: str
    threads: int
    batch: int
    device: str
    input_shape: list[int]
    how: str = ""
    probe_slowdown: float | None = None  # the probe network's slowdown in the measuring window
    search_latency_ms: float | None = None  # what the search knew
    search_latency_source: str = "measured"  # or "lookup table"
    by_backend: dict[str, Latency] = field(default_factory=dict)
    at_batch: Latency | None = None  # at the run's --batch, ms per batch


@dataclass
class Verification:
    """How closely the exported files compute what the super-network does (max abs logit differences)."""

    onnx_max_abs_diff: float
    onnx_checked_images: int
    onnx_torch_prediction_agreement: float
    extract_max_abs_diff: float | None = None  # plain module against the super-network


@dataclass
class Quantization:
    """A model's precision policy (group -> ``fp32`` or ``int8``) and, where a
    group runs in INT8, how the INT8 graph was made and what it scores (%)."""

    policy: dict[str, str]
    test_accuracy: float | None = None
    test_accuracy_fp32: float | None = None
    top1_agreement_fp32: float | None = None  # fraction of test images
    onnx_int8_bytes: int | None = None
    int8_modules: list[str] = field(default_factory=list)
    scheme: str | None = None
    weight_bits: int | None = None
    calibration_images: int | None = None
    calibration_method: str | None = None

    @property
    def precision(self) -> str:
        """``fp32``, or ``int8:`` and the groups in INT8 (``int8:s2,s3``)."""
        int8 = [g for g, p in self.policy.items() if p == "int8"]
        return "int8:" + ",".join(int8) if int8 else "fp32"


@dataclass
class LiteRT:
    """The model in LiteRT, NHWC input: ``model.tflite`` (float32: its accuracy
    (%) on the whole test split in LiteRT's interpreter, its largest logit
    difference from PyTorch on ``checked_images`` images) and
    ``model.int8.tflite`` (full-integer INT8 calibrated on ``calibration_images``
    training images: its accuracy, its top-1 agreement with the float32
    model); the INT8 model's microcontroller memory (bytes, see
    :mod:`lightnas.litert.arena`), and ``model_data.cc``/``.h`` holding it as
    a C array; or why nothing was written (``skipped``)."""

    skipped: str | None = None
    test_accuracy: float | None = None
    max_abs_diff: float | None = None
    checked_images: int | None = None
    tflite_bytes: int | None = None
    int8_test_accuracy: float | None = None
    int8_top1_agreement: float | None = None
    int8_tflite_bytes: int | None = None
    calibration_images: int | None = None
    sram_bytes: int | None = None
    sram_lower_bound_bytes: int | None = None
    flash_bytes: int | None = None
    memory_how: str = ""
    input_layout: str = "NHWC"


@dataclass
class ModelCard:
    """``models/<id>/card.json``: one exported model. Accuracies in %, on the
    whole test split in ONNX Runtime (the INT8 graph's where it has one);
    ``params``, ``macs`` (per image), ``bytes`` (weights) and ``peak_act_bytes``
    (largest live activations, batch 1) from :func:`lightnas.hardware.cost.count_cost`.
    ``targets``/``fronts``/``table_latency_ms``: the export targets it serves, the
    other devices whose front it was picked from and their tables' latency (ms).
    The ``finetune*``/``*_before`` fields are set on a fine-tuned model's card."""

    id: str
    key: str
    arch: dict[str, int | float | str]
    supernet: str
    dataset: dict[str, Any]
    val_accuracy: float | None
    test_accuracy: float
    params: float
    macs: float
    bytes: float
    peak_act_bytes: float
    onnx_bytes: int
    latency: CardLatency
    preprocessing: dict[str, Any]
    verification: Verification
    files: dict[str, str]
    exported: str
    quantization: Quantization | None = None
    litert: LiteRT | None = None
    targets: list[str] = field(default_factory=list)
    fronts: list[str] = field(default_factory=list)
    table_latency_ms: dict[str, float] = field(default_factory=dict)
    finetuned_from: str | None = None
    finetune_epochs: int | None = None
    finetune_history: list[dict[str, Any]] = field(default_factory=list)
    test_accuracy_before: float | None = None
    val_accuracy_before: float | None = None
    test_accuracy_gain: float | None = None
    qat: bool = False
    format: str = CARD_FORMAT

    @property
    def precision(self) -> str:
        """``fp32``, or ``int8:`` and the groups that run in INT8."""
        return self.quantization.precision if self.quantization else "fp32"

    def to_dict(self) -> dict[str, Any]:
        """The dictionary ``card.json`` holds (optional fields left out while unset)."""
        return compact(self)

    @classmethod
    def from_dict(cls, d: object, where: str = "card") -> ModelCard:
        """The card ``d`` holds; a one-line error naming ``where`` otherwise."""
        check_format(d, CARD_FORMAT, where)
        return build(cls, d, where)


MODEL_ID = re.compile(r"net-[0-9a-f]{10}(-ft[0-9]+)?")


def model_id(arch: Arch) -> str:
    """A short stable folder name for an architecture."""
    return "net-" + hashlib.sha1(arch.key.encode()).hexdigest()[:10]


def check_model_id(text: str) -> str:
    """``text`` when it is a model id this module writes (no separators, no
    ``..``: ids read from files are used as folder names); a one-line error otherwise."""
    if not isinstance(text, str) or not MODEL_ID.fullmatch(text):
        raise LightnasError(f"{text!r} is not a lightnas model id (net-<10 hex digits>[-ftN])")
    return text


def write_card(card: ModelCard, folder: Path) -> None:
    """``folder/card.json``, written atomically."""
    write_json(card.to_dict(), folder / "card.json")


def read_cards(out: Path) -> tuple[dict[str, object], list[ModelCard]]:
    """``models/index.json`` and the cards it names (ids checked before use as paths)."""
    index_file = out / "models" / "index.json"
    if not index_file.is_file():
        raise LightnasError(f"{out} has no exported models (run 'lightnas export {out}' first)")
    try:
        index = json.loads(index_file.read_text())
        ids = [check_model_id(i) for i in index["models"]]
        return index, [read_card(out / "models" / i / "card.json") for i in ids]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise LightnasError(f"cannot read the exported models of {out}: {exc}") from None


def read_card(path: Path) -> ModelCard:
    """The card in ``path``; a one-line error naming it when it is missing or malformed."""
    return read_as(ModelCard, path)
