"""A run's tables: ``pareto.csv``, the terminal table, the summary (``summary.json``)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lightnas.artefacts import DeviceFamily, ModelCard, RunSummary, TrainingCost
from lightnas.io import write_text
from lightnas.search.pareto import largest_gap

CSV_FIELDS = (
    "id",
    "key",
    "val_accuracy",
    "test_accuracy",
    "latency_ms",
    "latency_iqr_ms",
    "params",
    "macs",
    "bytes",
    "peak_act_bytes",
    "precision",
)


def _row(card: ModelCard) -> dict[str, object]:
    lat = card.latency
    return {
        "id": card.id,
        "key": card.key,
        "val_accuracy": card.val_accuracy,
        "test_accuracy": card.test_accuracy,
        "latency_ms": lat.latency_ms,
        "latency_iqr_ms": lat.latency_iqr_ms,
        "params": int(card.params),
        "macs": int(card.macs),
        "bytes": int(card.bytes),
        "peak_act_bytes": int(card.peak_act_bytes),
        "precision": card.precision,
        **{f"latency_ms@{n}": v for n, v in card.table_latency_ms.items()},
    }


def fastest_first(cards: Sequence[ModelCard]) -> list[ModelCard]:
    """``cards`` by latency in the target runtime, fastest first."""
    return sorted(cards, key=lambda c: c.latency.latency_ms)


def table_devices(cards: Sequence[ModelCard]) -> list[str]:
    """The other devices whose tables priced the run's models (``--target-table``)."""
    return sorted({n for c in cards for n in c.table_latency_ms})


def write_csv(cards: Sequence[ModelCard], path: Path) -> None:
    """The exported models, fastest first; a ``latency_ms@NAME`` column per other device's table."""
    buf = io.StringIO()
    fields = (*CSV_FIELDS, *(f"latency_ms@{n}" for n in table_devices(cards)))
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for c in fastest_first(cards):
        w.writerow(_row(c))
    write_text(buf.getvalue(), path)


def terminal_table(cards: Sequence[ModelCard]) -> str:
    """A fixed-width table of the front, fastest first (a column per other device's table)."""
    devices = table_devices(cards)
    head = "".join(f" {'ms@' + n:>10}" for n in devices)
    lines = [
        f"{'id':<15} {'val %':>6} {'test %':>6} {'lat ms':>7}{head} {'params':>8} {'MACs':>10} {'bytes':>8} precision"
    ]
    for c in fastest_first(cards):
        other = "".join(f" {c.table_latency_ms[n]:>10.3f}" for n in devices)
        val = f"{c.val_accuracy:>6.2f}" if c.val_accuracy is not None else f"{'-':>6}"
        lines.append(
            f"{c.id:<15} {val} {c.test_accuracy:>6.2f} {c.latency.latency_ms:>7.3f}{other} "
            f"{int(c.params):>8d} {int(c.macs):>10d} {int(c.bytes):>8d} {c.precision}"
        )
    return "\n".join(lines)


def latency_span(cards: Sequence[ModelCard]) -> float:
    """Slowest over fastest model's latency (0 without models)."""
    lats = np.array([c.latency.latency_ms for c in cards])
    return float(lats.max() / lats.min()) if len(lats) else 0.0


def cost_sentence(cost: TrainingCost, tables: int, bounds: int) -> str:
    """The training-cost comparison in words: the super-network's training
    against training one by one every model the run exported (each once,
    whichever device or bound it was exported for)."""
    served = ["this device"] + [f"{tables} device table{'s' * (tables > 1)}"] * (tables > 0)
    served += [f"{bounds} bound{'s' * (bounds > 1)}"] * (bounds > 0)
    return (
        f"training the super-network took {cost.supernet_train_seconds:.0f} s, training the "
        f"{cost.n_subnets} exported models one by one (every model exported for {', '.join(served)}, "
        f"each once) ~{cost.one_by_one_train_seconds:.0f} s: ratio {cost.ratio}"
    )


def summarise(
    cards: Sequence[ModelCard], n_evaluated: int, cost: TrainingCost | None, unmet_targets: Sequence[str] = ()
) -> RunSummary:
    """The run's summary: headline, best test accuracy, latency span and
    coverage of the exported models (largest latency ratio between
    neighbours), the training-cost comparison, targets no model met."""
    best = max(cards, key=lambda c: c.test_accuracy)
    lats = [c.latency.latency_ms for c in cards]
    headline = (
        f"{len(cards)} models exported; best test accuracy {best.test_accuracy:.2f}% at "
        f"{best.latency.latency_ms:.3f} ms; latency span {latency_span(cards):.1f}x, "
        f"largest gap between neighbours {largest_gap(lats):.2f}x"
    )
    devices = {}
    for name in table_devices(cards):  # each other device's family: the models picked from its front
        own = [c.table_latency_ms[name] for c in cards if name in c.fronts]
        devices[name] = DeviceFamily(len(own), float(max(own) / min(own)) if own else 0.0, largest_gap(own))
        headline += f"; {name}: {len(own)} models over {devices[name].latency_span:.1f}x (its table)"
    if cost and cost.one_by_one_train_seconds is not None:
        headline += f"; {cost_sentence(cost, len(devices), len({t for c in cards for t in c.targets}))}"
    if unmet_targets:
        headline += f"; no evaluated sub-network meets {', '.join(unmet_targets)}"
    return RunSummary(
        headline=headline,
        best_test_accuracy=best.test_accuracy,
        n_exported=len(cards),
        latency_span=latency_span(cards),
        largest_latency_gap=largest_gap(lats),
        latency_backend=best.latency.backend,
        evaluations=n_evaluated,
        unmet_targets=list(unmet_targets),
        training_cost=cost,
        devices=devices,
    )
