"""A run's tables: pareto.csv, the terminal table, summary.json (report.html: :mod:`lightnas.reporting`)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lightnas.io import write_text

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


def precision(card: dict[str, Any]) -> str:
    """``fp32``, or ``int8:`` and the groups a model runs in INT8 (``int8:s2,s3``)."""
    policy = (card.get("quantization") or {}).get("policy") or {}
    int8 = [g for g, p in policy.items() if p == "int8"]
    return "int8:" + ",".join(int8) if int8 else "fp32"


def _row(card: dict[str, Any]) -> dict[str, Any]:
    lat = card["latency"]
    return {
        "id": card["id"],
        "key": card["key"],
        "val_accuracy": card["val_accuracy"],
        "test_accuracy": card["test_accuracy"],
        "latency_ms": lat["latency_ms"],
        "latency_iqr_ms": lat["latency_iqr_ms"],
        "params": int(card["params"]),
        "macs": int(card["macs"]),
        "bytes": int(card["bytes"]),
        "peak_act_bytes": int(card["peak_act_bytes"]),
        "precision": precision(card),
        **{f"latency_ms@{n}": v for n, v in (card.get("table_latency_ms") or {}).items()},
    }


def table_devices(cards: Sequence[dict[str, Any]]) -> list[str]:
    """The other devices whose tables priced the run's models (``--target-table``)."""
    return sorted({n for c in cards for n in (c.get("table_latency_ms") or {})})


def write_csv(cards: Sequence[dict[str, Any]], path: Path) -> None:
    """The exported models, fastest first; a ``latency_ms@NAME`` column per other device's table."""
    buf = io.StringIO()
    fields = (*CSV_FIELDS, *(f"latency_ms@{n}" for n in table_devices(cards)))
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for c in sorted(cards, key=lambda c: c["latency"]["latency_ms"]):
        w.writerow(_row(c))
    write_text(buf.getvalue(), path)


def terminal_table(cards: Sequence[dict[str, Any]]) -> str:
    """A fixed-width table of the front, fastest first (a column per other device's table)."""
    devices = table_devices(cards)
    head = "".join(f" {'ms@' + n:>10}" for n in devices)
    lines = [
        f"{'id':<15} {'val %':>6} {'test %':>6} {'lat ms':>7}{head} {'params':>8} {'MACs':>10} {'bytes':>8} precision"
    ]
    for c in sorted(cards, key=lambda c: c["latency"]["latency_ms"]):
        r = _row(c)
        other = "".join(f" {r[f'latency_ms@{n}']:>10.3f}" for n in devices)
        lines.append(
            f"{r['id']:<15} {r['val_accuracy']:>6.2f} {r['test_accuracy']:>6.2f} {r['latency_ms']:>7.3f}{other} "
            f"{r['params']:>8d} {r['macs']:>10d} {r['bytes']:>8d} {r['precision']}"
        )
    return "\n".join(lines)


def latency_span(cards: Sequence[dict[str, Any]]) -> float:
    lats = np.array([c["latency"]["latency_ms"] for c in cards])
    return float(lats.max() / lats.min()) if len(lats) else 0.0


def summarise(
    cards: Sequence[dict[str, Any]],
    n_evaluated: int,
    cost: dict[str, Any] | None,
    unmet_targets: Sequence[str] = (),
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The run's summary: headline, best test accuracy, latency span and
    coverage of the exported models (largest latency ratio between
    neighbours), the training-cost comparison, targets no model met."""
    from lightnas.search.pareto import largest_gap

    best = max(cards, key=lambda c: c["test_accuracy"])
    lats = [c["latency"]["latency_ms"] for c in cards]
    summary: dict[str, Any] = {
        "headline": f"{len(cards)} models exported; best test accuracy {best['test_accuracy']:.2f}% at "
        f"{best['latency']['latency_ms']:.3f} ms; latency span {latency_span(cards):.1f}x, "
        f"largest gap between neighbours {largest_gap(lats):.2f}x",
        "best_test_accuracy": best["test_accuracy"],
        "n_exported": len(cards),
        "latency_span": latency_span(cards),
        "largest_latency_gap": largest_gap(lats),
        "latency_backend": best["latency"]["backend"],
        "evaluations": n_evaluated,
        "unmet_targets": list(unmet_targets),
        **({"training_cost": cost} if cost else {}),
        **(extra or {}),
    }
    if cost and cost.get("one_by_one_train_seconds") is not None:
        summary["headline"] += (
            f"; training the super-network took {cost['supernet_train_seconds']:.0f} s, training the "
            f"{cost['n_subnets']} exported sub-networks one by one would take ~{cost['one_by_one_train_seconds']:.0f} s"
        )
    devices = {}
    for name in table_devices(cards):  # each other device's family: the models picked from its front
        own = [c["table_latency_ms"][name] for c in cards if name in (c.get("fronts") or [])]
        devices[name] = {
            "models": len(own),
            "latency_span": float(max(own) / min(own)) if own else 0.0,
            "largest_latency_gap": largest_gap(own),
        }
        summary["headline"] += f"; {name}: {len(own)} models over {devices[name]['latency_span']:.1f}x (its table)"
    if devices:
        summary["devices"] = devices
    if unmet_targets:
        summary["headline"] += f"; no evaluated sub-network meets {', '.join(unmet_targets)}"
    return summary
