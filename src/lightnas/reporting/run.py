"""A finished run folder, read once for every report (nothing is written)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lightnas.artefacts import ModelCard, RunSummary, read_cards, read_summary
from lightnas.config import RunConfig
from lightnas.objectives import (
    RUN_OBJECTIVES,
    TABLE_LATENCY,
    Constraint,
    feasible,
    objective_matrix,
    parse_constraint,
)
from lightnas.reporting.tables import fastest_first
from lightnas.search.pareto import hypervolume
from lightnas.selection import device_front, read_front
from lightnas.space import SearchSpace, Value
from lightnas.store import Record

ACC, LAT = RUN_OBJECTIVES[0].metric, RUN_OBJECTIVES[1].metric


@dataclass(frozen=True)
class Evaluation:
    """One stored evaluation (``record``) as a report shows it: ``feasible``
    (meets the constraints), ``pareto`` (on the feasible front),
    ``device_fronts`` (the ``--target-table`` devices whose front holds it),
    ``model`` (the exported model's id, or None)."""

    record: Record
    feasible: bool
    pareto: bool
    device_fronts: tuple[str, ...] = ()
    model: str | None = None

    @property
    def index(self) -> int:
        """Its place in the order of the search (1: first)."""
        return self.record.index

    @property
    def key(self) -> str:
        return self.record.arch_key

    @property
    def arch(self) -> dict[str, Value]:
        return self.record.arch

    @property
    def metrics(self) -> dict[str, float]:
        return self.record.metrics


@dataclass(frozen=True)
class Part:
    """One latency part of an exported model: its kind, a description, its MACs per image."""

    kind: str
    text: str
    macs: float


@dataclass
class RunView:
    """Everything a report shows of one run.

    ``evaluations``: every stored evaluation with both search objectives, in
    the order the search made them; ``cards``: the exported models' cards,
    fastest first; ``summary``: ``summary.json`` (None before the first
    report); ``history``: the super-network's per-epoch records;
    ``space``: its search space; ``n_records``: every stored evaluation of the
    study, those without both objectives included; ``unmet_targets``: the
    export targets no sub-network met; ``parts``: per exported model id, its
    parts in order."""

    out: Path
    cfg: RunConfig
    study: str
    evaluations: list[Evaluation]
    cards: list[ModelCard]
    summary: RunSummary | None
    history: list[dict[str, object]]
    constraints: list[Constraint]
    parts: dict[str, list[Part]] = field(default_factory=dict)
    space: SearchSpace | None = None
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
    by_key = {c.key: c.id for c in cards}
    evaluations = [
        Evaluation(
            record=r,
            feasible=feasible(r.metrics, constraints),
            pareto=r.arch_key in on_front,
            device_fronts=tuple(device_fronts.get(r.arch_key, [])),
            model=by_key.get(r.arch_key),
        )
        for r in sorted(records, key=lambda r: r.index)
        if ACC in r.metrics and LAT in r.metrics
    ]
    view = RunView(out, cfg, cfg.study(), evaluations, fastest_first(cards), read_summary(out), [], constraints)
    view.n_records, view.unmet_targets = len(records), list(index.get("unmet_targets", []))
    if with_parts and (out / "supernet.pt").is_file():
        _add_training(view)
    return view


def _add_training(view: RunView) -> None:
    """The training history and, per exported model, its parts with their MACs."""
    # torch loads here, when the work runs: the command line starts and checks its input without it (2 s)
    from lightnas.hardware.cost import count_cost
    from lightnas.train.checkpoint import load_supernet

    net, ckpt = load_supernet(view.out / "supernet.pt")
    if view.cfg.quantize.precision:
        from lightnas.quantization.wrapper import PrecisionSupernet

        net = PrecisionSupernet(net)  # the space and parts with precision; nothing is extracted here
    view.history = list(ckpt.history)
    view.space = net.space
    macs: dict[Hashable, float] = {}
    for card in view.cards:
        rows = []
        for part in net.latency_parts(net.space.make(card.arch)):
            if part not in macs:
                module, shape = net.build_part(part)
                macs[part] = count_cost(module, shape)["macs"]
            rows.append(Part(str(part[0]), net.describe_part(part), macs[part]))  # type: ignore[index]
        view.parts[card.id] = rows


def hypervolume_progress(evaluations: Sequence[Evaluation]) -> list[float]:
    """Hypervolume of the feasible evaluations made so far, after each
    evaluation: accuracy and latency scaled to [0, 1] over all feasible
    evaluations (0 the best), reference point (1.1, 1.1); 0 until the first
    feasible evaluation, the whole front's value at the end (at most 1.21)."""
    ok = [e for e in evaluations if e.feasible]
    if not ok:
        return [0.0] * len(evaluations)
    F = objective_matrix([e.metrics for e in ok], list(RUN_OBJECTIVES))
    lo, hi = F.min(0), F.max(0)
    scale = np.where(hi > lo, hi - lo, 1.0)
    ref = np.full(F.shape[1], 1.1)
    scaled = (F - lo) / scale
    out, n = [], 0
    for e in evaluations:
        n += bool(e.feasible)
        out.append(hypervolume(scaled[:n], ref))
    return out
