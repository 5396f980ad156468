"""Which evaluated sub-networks a run exports (torch-free).

Two uses of one trained super-network:

- **an even family** (default): up to ``export.max_export`` models of the
  feasible Pareto front, spread evenly over its log-latency range
  (:func:`~lightnas.search.pareto.spread_indices`); the run reports the
  largest latency ratio between neighbouring exported models (coverage).
  With other devices' tables (``--target-table``), such a family for each
  device's own front (accuracy, its latency), the union exported;
- **targets** (``--targets``): for each bound on a cost metric, the most
  accurate evaluated sub-network within it (the once-for-all use: one
  training, one model per device budget).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lightnas.config import RunConfig
from lightnas.errors import LightnasError
from lightnas.objectives import TABLE_LATENCY, Objective, feasible, objective_matrix, parse_constraint
from lightnas.search.pareto import nondominated_mask, spread_indices
from lightnas.store import OK, Store


@dataclass(frozen=True)
class Pick:
    """One sub-network to export: its arch (dict), search metrics and the targets it serves."""

    arch: dict[str, Any]
    metrics: dict[str, float]
    targets: tuple[str, ...] = ()
    fronts: tuple[str, ...] = ()  # the devices whose front it was picked from (with --target-table)


def read_front(out: Path, cfg: RunConfig, objectives: list[Objective]) -> tuple[list[Any], list[Any]]:
    """(feasible Pareto front sorted by latency, every evaluated record) from the store."""

    if not (out / "lightnas.db").exists():
        raise LightnasError(f"{out} has no lightnas.db (run 'lightnas search {out}' first)")
    with Store(out / "lightnas.db") as store:
        records = store.records(cfg.study(), OK)
    if not records:
        raise LightnasError(f"{out}/lightnas.db holds no evaluations for this configuration")
    constraints = [parse_constraint(c) for c in cfg.search.constraints]
    ok = [r for r in records if feasible(r.metrics, constraints) and all(o.metric in r.metrics for o in objectives)]
    if not ok:
        raise LightnasError("no evaluated sub-network meets the constraints")
    F = objective_matrix([r.metrics for r in ok], objectives)
    mask = nondominated_mask(F)
    order = np.argsort(F[mask][:, 1], kind="stable")
    return [ok[i] for i in np.flatnonzero(mask)[order]], records


def device_front(records: list[Any], metric: str, lat_metric: str) -> list[Any]:
    """The records on the (``metric`` max, ``lat_metric`` min) front, fastest first."""
    F = np.array([[-r.metrics[metric], r.metrics[lat_metric]] for r in records]).reshape(len(records), 2)
    idx = np.flatnonzero(nondominated_mask(F))
    return [records[i] for i in idx[np.argsort(F[idx, 1], kind="stable")]]


def select(front: list[Any], records: list[Any], cfg: RunConfig, metric: str) -> list[Pick]:
    """The sub-networks to export, cheapest first (see the module docstring)."""
    if not cfg.export.targets:
        devices = {cfg.latency.target: "latency_ms", **{n: TABLE_LATENCY + n for n in cfg.latency.tables}}
        fronts: dict[str, tuple[str, ...]] = {}
        for device, lat_metric in devices.items():
            own = device_front(front, metric, lat_metric)
            lat = np.array([r.metrics[lat_metric] for r in own])
            for i in spread_indices(lat, cfg.export.max_export):
                fronts[own[i].arch_key] = (*fronts.get(own[i].arch_key, ()), device)
        picked = [r for r in front if r.arch_key in fronts]
        return [Pick(r.arch, r.metrics, fronts=fronts[r.arch_key] if cfg.latency.tables else ()) for r in picked]
    constraints = [parse_constraint(c) for c in cfg.search.constraints]
    ok = [r for r in records if feasible(r.metrics, constraints) and metric in r.metrics]
    picks: dict[str, Pick] = {}
    for text in cfg.export.targets:
        bound = parse_constraint(text)
        within = [r for r in ok if bound.metric in r.metrics and bound.satisfied(r.metrics)]
        if not within:
            continue
        best = max(within, key=lambda r: (r.metrics[metric], -r.metrics[bound.metric]))
        old = picks.get(best.arch_key)
        picks[best.arch_key] = Pick(best.arch, best.metrics, (old.targets if old else ()) + (text,))
    return sorted(picks.values(), key=lambda p: p.metrics["latency_ms"])
