"""``lightnas compare``: several runs' fronts on shared axes, and which run
is best at each latency budget."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lightnas.errors import LightnasError
from lightnas.objectives import RUN_OBJECTIVES, objective_matrix
from lightnas.reporting.figures import compare_figure
from lightnas.reporting.page import cell, esc, figure_div, write_page
from lightnas.reporting.run import ACC, LAT, RunView
from lightnas.search.pareto import hypervolume

GENERATOR = "lightnas compare"


def check_comparable(views: Sequence[RunView]) -> None:
    """One-line error unless the runs' latencies were measured alike (backend,
    threads, mode, target) and their accuracies are of one kind of data."""
    first = views[0]
    for v in views[1:]:
        if v.target() != first.target():
            raise LightnasError(
                f"{v.out} measured latency as {v.target()!r}, {first.out} as {first.target()!r}: "
                "compare runs with the same latency target"
            )
        if v.cfg.data.source != first.cfg.data.source:
            raise LightnasError(
                f"{v.out} ran on {v.cfg.data.source!r}, {first.out} on {first.cfg.data.source!r}: "
                "accuracies on different data do not compare"
            )


def front_of(view: RunView) -> np.ndarray:
    """The run's feasible front as rows (latency ms, accuracy), fastest first."""
    pts = sorted((e.metrics[LAT], e.metrics[ACC]) for e in view.evaluations if e.pareto)
    return np.array(pts, dtype=float).reshape(-1, 2)


def best_within(front: np.ndarray, budget: float) -> float | None:
    """The highest accuracy of ``front`` at latency <= ``budget`` ms (None: none that fast)."""
    ok = front[front[:, 0] <= budget]
    return float(ok[:, 1].max()) if len(ok) else None


@dataclass
class BudgetRow:
    """A latency range (ms; ``to_ms`` None: upward) and the run most accurate
    within it (``leader``, or "tie"); ``best``: each run's accuracy (%) at
    ``from_ms``, None where it has nothing that fast."""

    from_ms: float
    to_ms: float | None
    leader: str
    best: dict[str, float | None]


def budget_table(views: Sequence[RunView]) -> list[BudgetRow]:
    """Which run is most accurate at each latency budget: the budgets are the
    latencies of every run's front, consecutive budgets with the same leader
    merged into one range."""
    fronts = [front_of(v) for v in views]
    budgets = sorted({float(x) for f in fronts for x in f[:, 0]})
    rows: list[BudgetRow] = []
    for b in budgets:
        best = {v.name: best_within(f, b) for v, f in zip(views, fronts, strict=True)}
        known = {k: a for k, a in best.items() if a is not None}
        top = max(known.values())
        leaders = [k for k, a in known.items() if a == top]
        leader = leaders[0] if len(leaders) == 1 else "tie"
        if rows and rows[-1].leader == leader:
            continue
        if rows:
            rows[-1].to_ms = b
        rows.append(BudgetRow(b, None, leader, best))
    return rows


def shared_hypervolumes(views: Sequence[RunView]) -> dict[str, float]:
    """Each run's front hypervolume in one box: accuracy and latency scaled to
    [0, 1] over all runs' feasible evaluations, reference point (1.1, 1.1)."""
    objs = list(RUN_OBJECTIVES)
    Fs = [objective_matrix([e.metrics for e in v.evaluations if e.feasible], objs) for v in views]
    allF = np.vstack([F for F in Fs if len(F)])
    lo, hi = allF.min(0), allF.max(0)
    scale = np.where(hi > lo, hi - lo, 1.0)
    return {v.name: hypervolume((F - lo) / scale, np.full(2, 1.1)) for v, F in zip(views, Fs, strict=True)}


def _tables(views: Sequence[RunView]) -> str:
    hv = shared_hypervolumes(views)
    runs = "".join(
        f"<tr><td>{esc(v.name)}</td><td>{esc(v.out)}</td><td>{esc(v.cfg.supernet.name)}</td>"
        f"{cell('evaluations', len(v.evaluations))}{cell('exported', len(v.cards))}"
        f"{cell('hypervolume', hv[v.name])}</tr>"
        for v in views
    )
    head = "".join(f"<th>{esc(v.name)}</th>" for v in views)
    rows = []
    for r in budget_table(views):
        to = "and above" if r.to_ms is None else f"to {r.to_ms:.4g} ms"
        acc = "".join(
            cell(f"{name}.accuracy", a, " %") if a is not None else "<td>none this fast</td>"
            for name, a in r.best.items()
        )
        rows.append(f"<tr><td>{r.from_ms:.4g} ms {esc(to)}</td><td><b>{esc(r.leader)}</b></td>{acc}</tr>")
    return (
        "<table><tr><th>run</th><th>folder</th><th>super-network</th><th>evaluations</th><th>exported</th>"
        f"<th>hypervolume (shared box)</th></tr>{runs}</table>"
        "<h3>Most accurate run by latency budget</h3><p>Accuracy of each run's best sub-network within the budget "
        "(at the start of the range).</p>"
        f"<table><tr><th>latency budget</th><th>most accurate</th>{head}</tr>{''.join(rows)}</table>"
    )


def write_compare(views: Sequence[RunView], path: Path) -> None:
    """Write the comparison page of ``views`` (checked comparable first)."""
    check_comparable(views)
    intro = (
        f"<p>{len(views)} runs on {esc(views[0].cfg.data.source)}, latency measured as {esc(views[0].target())}.</p>"
    )
    sections = [
        ("fronts", "Fronts on shared axes", figure_div("front", 520)),
        ("dominance", "Which run wins where", _tables(views)),
    ]
    write_page(path, "lightnas comparison", intro, sections, {"front": compare_figure(views)}, GENERATOR)


def check_output(path: Path, force: bool) -> None:
    """Refuse to replace a file that is not an earlier comparison page, unless ``force``."""
    if path.is_dir():
        raise LightnasError(f"{path} is a folder; give a file name such as compare.html")
    if path.exists() and not force:
        try:
            head = path.read_bytes()[:400].decode("utf-8", "replace")
        except OSError as exc:
            raise LightnasError(f"cannot read {path}: {exc}") from None
        if f'content="{GENERATOR}"' not in head:
            raise LightnasError(f"{path} exists and is not a lightnas comparison (use --force to replace it)")
    if not path.parent.is_dir():
        raise LightnasError(f"folder {path.parent} does not exist")
