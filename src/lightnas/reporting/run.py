"""A finished run folder, read once for every report (nothing is written)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lightnas.config import RunConfig
from lightnas.errors import LightnasError
from lightnas.objectives import (
    RUN_OBJECTIVES,
    TABLE_LATENCY,
    Constraint,
    feasible,
    objective_matrix,
    parse_constraint,
)
from lightnas.search.pareto import hypervolume

ACC, LAT = RUN_OBJECTIVES[0].metric, RUN_OBJECTIVES[1].metric


@dataclass
class RunView:
    """Everything a report shows of one run.

    ``evaluations``: every stored evaluation with both search objectives, in
    the order the search made them (dicts: ``index``, ``key``, ``arch``,
    ``metrics``, ``feasible``, ``pareto`` (on the feasible front),
    ``device_fronts`` (the ``--target-table`` devices whose front holds it), ``model``
    (the exported model's id or None)); ``cards``: the exported models' cards,
    fastest first; ``history``: the super-network's per-epoch records;
    ``space``: its search space; ``n_records``: every stored evaluation of the
    study, those without both objectives included; ``unmet_targets``: the
    export targets no sub-network met; ``parts``: per exported model id, its
    parts in order (``kind``, ``text``, ``macs``)."""

    out: Path
    cfg: RunConfig
    study: str
    evaluations: list[dict[str, Any]]
    cards: list[dict[str, Any]]
    summary: dict[str, Any]
    history: list[dict[str, Any]]
    constraints: list[Constraint]
    parts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    space: Any = None
    label: str = ""
    n_records: int = 0
    unmet_targets: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        """How pages name the run: ``label`` if set, else its folder's name."""
        return self.label or self.out.resolve().name or str(self.out)

    def target(self) -> str:
        """Where latency was measured, in words (backend, threads, batch, device)."""
        lat = self.cfg.latency
        return f"{lat.backend}, {lat.threads} thread(s), {lat.mode}, {lat.target}"


def load_run(out: Path, cfg: RunConfig, with_parts: bool = True) -> RunView:
    """Read the run in ``out`` (configuration ``cfg``); one-line errors when
    the store or the exported models are missing or unreadable."""
    import json

    from lightnas.export import read_cards
    from lightnas.selection import device_front, read_front

    index, cards = read_cards(out)
    front, records = read_front(out, cfg, list(RUN_OBJECTIVES))
    on_front = {r.arch_key for r in front}
    constraints = [parse_constraint(c) for c in cfg.search.constraints]
    ok = [r for r in records if feasible(r.metrics, constraints) and ACC in r.metrics]
    device_fronts: dict[str, list[str]] = {}  # per evaluation, the other devices whose front holds it
    for name in cfg.latency.tables:
        lat = TABLE_LATENCY + name
        for r in device_front([r for r in ok if lat in r.metrics], ACC, lat):
            device_fronts.setdefault(r.arch_key, []).append(name)
    by_key = {c["key"]: c["id"] for c in cards}
    evaluations = [
        {
            "index": r.index,
            "key": r.arch_key,
            "arch": dict(r.arch),
            "metrics": dict(r.metrics),
            "feasible": feasible(r.metrics, constraints),
            "pareto": r.arch_key in on_front,
            "device_fronts": device_fronts.get(r.arch_key, []),
            "model": by_key.get(r.arch_key),
        }
        for r in sorted(records, key=lambda r: r.index)
        if ACC in r.metrics and LAT in r.metrics
    ]
    summary_file = out / "summary.json"
    try:
        summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LightnasError(f"cannot read {summary_file}: {exc}") from None
    cards = sorted(cards, key=lambda c: c["latency"]["latency_ms"])
    view = RunView(out, cfg, cfg.study(), evaluations, cards, summary, [], constraints)
    view.n_records, view.unmet_targets = len(records), list(index.get("unmet_targets", []))
    if with_parts and (out / "supernet.pt").is_file():
        _add_training(view)
    return view


def _add_training(view: RunView) -> None:
    """The training history and, per exported model, its parts with their MACs."""
    from lightnas.hardware.cost import count_cost
    from lightnas.train.trainer import load_supernet

    net, ckpt = load_supernet(view.out / "supernet.pt")
    if view.cfg.quantize.precision:
        from lightnas.quantization.wrapper import PrecisionSupernet

        net = PrecisionSupernet(net)  # the space and parts with precision; nothing is extracted here
    view.history = list(ckpt.history)
    view.space = net.space
    macs: dict[Any, float] = {}
    for card in view.cards:
        rows = []
        for part in net.latency_parts(net.space.make(card["arch"])):
            if part not in macs:
                module, shape = net.build_part(part)
                macs[part] = count_cost(module, shape)["macs"]
            rows.append({"kind": str(part[0]), "text": net.describe_part(part), "macs": macs[part]})
        view.parts[card["id"]] = rows


def hypervolume_progress(evaluations: list[dict[str, Any]]) -> list[float]:
    """Hypervolume of the feasible evaluations made so far, after each
    evaluation: accuracy and latency scaled to [0, 1] over all feasible
    evaluations (0 the best), reference point (1.1, 1.1); 0 until the first
    feasible evaluation, the whole front's value at the end (at most 1.21)."""
    ok = [e for e in evaluations if e["feasible"]]
    if not ok:
        return [0.0] * len(evaluations)
    F = objective_matrix([e["metrics"] for e in ok], list(RUN_OBJECTIVES))
    lo, hi = F.min(0), F.max(0)
    scale = np.where(hi > lo, hi - lo, 1.0)
    ref = np.full(F.shape[1], 1.1)
    scaled = (F - lo) / scale
    out, n = [], 0
    for e in evaluations:
        n += bool(e["feasible"])
        out.append(hypervolume(scaled[:n], ref))
    return out
