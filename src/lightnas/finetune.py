"""``lightnas finetune``: distil one exported sub-network further and export it again."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from lightnas.artefacts import MODEL_ID, ModelCard, check_model_id, model_id, read_card, write_card
from lightnas.config import RunConfig
from lightnas.context import trained
from lightnas.data.sources import Dataset
from lightnas.errors import LightnasError
from lightnas.export import CardExtras, ExportContext, export_plain
from lightnas.quantization.qat import QatModel
from lightnas.quantization.wrapper import Searchable
from lightnas.runfolder import say
from lightnas.space import Arch
from lightnas.supernets.base import AtResolution, resize_input
from lightnas.tensors import CALIB_IMAGES, to_tensor
from lightnas.train.plain import finetune


def _card(out: Path, net: Searchable, arch_ref: str) -> tuple[ModelCard, Arch]:
    """The card of an exported model named by id or by architecture key, and its architecture."""
    ref = arch_ref if MODEL_ID.fullmatch(arch_ref) else model_id(net.space.from_key(arch_ref))
    card_file = out / "models" / check_model_id(ref) / "card.json"
    if not card_file.is_file():
        raise LightnasError(f"{arch_ref} is not an exported model of {out} (see models/index.json)")
    card = read_card(card_file)
    check_model_id(card.id)
    try:
        return card, net.space.make(card.arch)
    except (KeyError, TypeError, ValueError) as exc:
        raise LightnasError(f"{card_file} is malformed: {exc}") from None


def stage_finetune(
    out: Path,
    cfg: RunConfig,
    arch_ref: str,
    epochs: int,
    quiet: bool = False,
    force: bool = False,
    qat: bool = False,
) -> ModelCard:
    """Fine-tune an exported sub-network (by model id or architecture key)
    with distillation from the largest sub-network; export it again as
    ``models/<id>-ft<epochs>`` with a new card that states the gain (test
    accuracy, points). An existing ``-ft<epochs>`` folder is replaced only
    with ``force``. ``qat``: quantization-aware fine-tuning of a model with
    INT8 groups (:mod:`lightnas.quantization.qat`); the gain is the INT8 model's."""
    if epochs < 1:
        raise LightnasError(f"epochs must be at least 1, not {epochs}")
    net, ckpt, data = trained(out, cfg)
    card, arch = _card(out, net, arch_ref)
    folder = out / "models" / f"{card.id}-ft{epochs}"
    if folder.exists() and not force:
        raise LightnasError(f"{folder} already exists (use --force to replace it)")
    x_cal = to_tensor(data.x_train[:CALIB_IMAGES], data)
    net.set_active(net.space.largest())
    net.calibrate(x_cal)
    teacher = net.extract(net.space.largest()).eval()
    net.set_active(arch)
    net.calibrate(x_cal)
    student, history = _tune(net, arch, teacher, data, epochs, cfg, quiet, x_cal[:8] if qat else None)
    ctx = ExportContext(ckpt.supernet, ckpt.config, data, cfg.latency)  # the run's target and batch too
    search = {"accuracy": max(float(h["val_metric"]) for h in history), "latency_ms": card.latency.latency_ms}
    fields = {
        "finetuned_from": card.id,
        "finetune_epochs": epochs,
        "finetune_history": history,
        "test_accuracy_before": card.test_accuracy,
        "val_accuracy_before": float(history[0]["val_metric"]),
        "qat": qat,
    }
    extras = CardExtras(fields=fields)
    new = export_plain(student, arch, folder, ctx, search, extras, input_shape=net.input_shape_for(arch))
    new.test_accuracy_gain = new.test_accuracy - card.test_accuracy
    write_card(new, folder)
    say(
        f"fine-tuned {card.id} for {epochs} epochs: test {card.test_accuracy:.2f}% -> "
        f"{new.test_accuracy:.2f}% ({new.test_accuracy_gain:+.2f}); exported to {folder}",
        quiet,
    )
    return new


def _tune(
    net: Searchable,
    arch: Arch,
    teacher: nn.Module,
    data: Dataset,
    epochs: int,
    cfg: RunConfig,
    quiet: bool,
    qat_x: torch.Tensor | None,
) -> tuple[nn.Module, list[dict[str, object]]]:
    """Fine-tune the sub-network ``arch`` (distillation, at its own input
    resolution); with ``qat_x`` (a few training images) quantization-aware,
    its INT8 groups fake-quantized, and the result deployed afresh. Returns
    the model and the fine-tuning's history."""
    student, shape = net.extract(arch), net.input_shape_for(arch)
    run = {"seed": cfg.seed, "progress": not quiet, "device": cfg.device}
    if qat_x is None:
        return student, finetune(AtResolution(student, shape), teacher, data, epochs, **run)
    modules = getattr(student, "int8_modules", ())
    if not modules:
        raise LightnasError("--qat fine-tunes a model with INT8 groups; this model is float32 throughout")
    model = QatModel(student.plain, modules, resize_input(qat_x, shape))
    history = finetune(AtResolution(model, shape), teacher, data, epochs, **run)
    return net.requantize(model.cpu().finish(), modules, arch), history
