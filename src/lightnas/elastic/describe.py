"""``lightnas elasticize``: what a trained network becomes as a super-network, checked."""

from __future__ import annotations

import torch

from lightnas.config import RunConfig
from lightnas.context import supernet_config
from lightnas.data.sources import Dataset
from lightnas.errors import LightnasError
from lightnas.hardware.cost import count_cost
from lightnas.supernets import supernet_from_config
from lightnas.tensors import predict, setup_torch, split_tensors

CHECK_IMAGES = 256
"""Validation images on which the largest sub-network is compared with the user's model."""


def describe_elastic(cfg: RunConfig, data: Dataset) -> list[str]:
    """The lines ``lightnas elasticize`` prints: every elastic dimension with
    its choices and the layers it changes, what stays fixed and why, the MACs
    and parameters of the smallest and largest sub-networks, and (with
    weights) the largest's largest logit difference from the user's model on
    :data:`CHECK_IMAGES` validation images (its contract: <= 1e-5)."""
    if cfg.supernet.name != "elastic":
        raise LightnasError("elasticize needs --from-model package.module:factory")
    setup_torch(cfg.latency.threads)
    net = supernet_from_config("elastic", supernet_config(cfg, data))
    net.init_for_training()
    space = net.space
    lines = [f"{net.config.model}: {len(space.dims)} elastic dimensions, {space.size():.3g} sub-networks"]
    about = net.dimensions()
    width = max(len(d.name) for d in space.dims)
    lines += [f"  {d.name:<{width}}  {list(d.values)}  {about[d.name]}" for d in space.dims]
    notes = net.structure.notes
    lines.append(f"not elastic: the image's channels, the logits{', and:' if notes else ''}")
    lines += [f"  {n}" for n in notes]
    for which in ("smallest", "largest"):
        arch = getattr(space, which)()
        cost = count_cost(net.extract(arch), net.input_shape_for(arch))
        lines.append(f"{which}: {cost['macs'] / 1e6:.2f} M MACs, {cost['params'] / 1e3:.1f} k parameters")
    teacher = net.distillation_teacher()
    if teacher is None:
        lines.append("no --weights: the structure only (the factory's initial weights)")
        return lines
    x, y = split_tensors(data, "val", n=CHECK_IMAGES)
    largest = net.extract(space.largest())
    with torch.no_grad():
        mine, theirs = predict(largest, x), predict(teacher, x)
    diff = float((mine - theirs).abs().max())
    agree = float((mine.argmax(1) == theirs.argmax(1)).float().mean()) * 100
    verdict = "equal" if diff <= 1e-5 else "NOT EQUAL"
    lines.append(
        f"largest sub-network vs the model on {len(x)} validation images: max logit difference {diff:.2e} "
        f"({verdict}), top-1 agreement {agree:.1f}%"
    )
    if diff > 1e-5:
        raise LightnasError(f"the largest sub-network differs from the model by {diff:.2e} (more than 1e-5)")
    return lines
