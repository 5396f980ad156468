"""``lightnas finetune``: distil one exported sub-network further and export it again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lightnas.config import RunConfig
from lightnas.errors import LightnasError
from lightnas.runfolder import say


def _card(out: Path, net: Any, arch_ref: str) -> dict[str, Any]:
    """The card of an exported model named by id or by architecture key."""
    from lightnas.export import MODEL_ID, check_model_id, model_id

    ref = arch_ref if MODEL_ID.fullmatch(arch_ref) else model_id(net.space.from_key(arch_ref))
    card_file = out / "models" / check_model_id(ref) / "card.json"
    if not card_file.is_file():
        raise LightnasError(f"{arch_ref} is not an exported model of {out} (see models/index.json)")
    try:
        card = json.loads(card_file.read_text())
        card["arch"] = net.space.make(card["arch"])
        check_model_id(card["id"])
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise LightnasError(f"{card_file} is malformed: {exc}") from None
    return card


def stage_finetune(
    out: Path,
    cfg: RunConfig,
    arch_ref: str,
    epochs: int,
    quiet: bool = False,
    force: bool = False,
    qat: bool = False,
) -> dict[str, Any]:
    """Fine-tune an exported sub-network (by model id or architecture key)
    with distillation from the largest sub-network; export it again as
    ``models/<id>-ft<epochs>`` with a new card that states the gain (test
    accuracy, points). An existing ``-ft<epochs>`` folder is replaced only
    with ``force``. ``qat``: quantization-aware fine-tuning of a model with
    INT8 groups (:mod:`lightnas.quantization.qat`); the gain is the INT8 model's."""
    from lightnas.context import trained
    from lightnas.export import ExportContext, export_plain
    from lightnas.io import write_json
    from lightnas.train.common import CALIB_IMAGES, to_tensor

    if epochs < 1:
        raise LightnasError(f"epochs must be at least 1, not {epochs}")
    net, ckpt, data = trained(out, cfg)
    card = _card(out, net, arch_ref)
    arch = card["arch"]
    folder = out / "models" / f"{card['id']}-ft{epochs}"
    if folder.exists() and not force:
        raise LightnasError(f"{folder} already exists (use --force to replace it)")
    x_cal = to_tensor(data.x_train[:CALIB_IMAGES], data)
    net.set_active(net.space.largest())
    net.calibrate(x_cal)
    teacher = net.extract(net.space.largest()).eval()
    net.set_active(arch)
    net.calibrate(x_cal)
    student, history = _tune(net, arch, teacher, data, epochs, cfg, quiet, x_cal[:8] if qat else None)
    lat = cfg.latency  # the fine-tuned card gives the run's target and batch too
    ctx = ExportContext(ckpt.supernet, ckpt.config, data, lat.backend, lat.threads, target=lat.target, batch=lat.batch)
    search = {"accuracy": max(h["val_metric"] for h in history), "latency_ms": card["latency"]["latency_ms"]}
    extra = {
        "finetuned_from": card["id"],
        "finetune_epochs": epochs,
        "finetune_history": history,
        "test_accuracy_before": card["test_accuracy"],
        "val_accuracy_before": history[0]["val_metric"],
        **({"qat": True} if qat else {}),
    }
    new = export_plain(student, arch, folder, ctx, search, extra=extra, input_shape=net.input_shape_for(arch))
    new["test_accuracy_gain"] = new["test_accuracy"] - card["test_accuracy"]
    write_json(new, folder / "card.json")
    say(
        f"fine-tuned {card['id']} for {epochs} epochs: test {card['test_accuracy']:.2f}% -> "
        f"{new['test_accuracy']:.2f}% ({new['test_accuracy_gain']:+.2f}); exported to {folder}",
        quiet,
    )
    return new


def _tune(
    net: Any, arch: Any, teacher: Any, data: Any, epochs: int, cfg: RunConfig, quiet: bool, qat_x: Any
) -> tuple[Any, list[dict[str, Any]]]:
    """Fine-tune the sub-network ``arch`` (distillation, at its own input
    resolution); with ``qat_x`` (a few training images) quantization-aware,
    its INT8 groups fake-quantized, and the result deployed afresh. Returns
    the model and the fine-tuning's history."""
    from lightnas.quantization.qat import QatModel
    from lightnas.supernets.base import AtResolution, resize_input
    from lightnas.train.plain import finetune

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
