"""NAS-Bench-201 as a search space, with latency measured on 27 devices.

The table ships inside the package (``data/nb201.csv.gz``: the columns of
``shared/bench-data/nb201.csv`` that lightnas uses, values unchanged). Sources
and licences: NAS-Bench-201 accuracies and NASWOT from BayesWatch
nas-without-training (MIT); latencies from HELP (MIT), which gathered
HW-NAS-Bench and BRP-NAS measurements. See ``data/NOTICE``.

Torch-free. Search with ``c10valid_valid_200ep`` (metric ``accuracy``),
report ``c10_test_200ep`` (metric ``test_accuracy``).
"""

from __future__ import annotations

import csv
import gzip
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

from lightnas.errors import LightnasError
from lightnas.evaluate.base import Evaluator
from lightnas.objectives import Constraint, Objective
from lightnas.search.pareto import hypervolume, nondominated_mask
from lightnas.space import Arch, Choice, SearchSpace

OPS = ("none", "skip", "conv1", "conv3", "pool")
_OP_NAMES = {
    "none": "none",
    "skip_connect": "skip",
    "nor_conv_1x1": "conv1",
    "nor_conv_3x3": "conv3",
    "avg_pool_3x3": "pool",
}
EDGES = ("e10", "e20", "e21", "e30", "e31", "e32")  # e{to}{from}, cell-string order
TUNING_DEVICES = ("pixel3", "raspi4", "1080ti_1", "gold_6226", "samsung_a50")

SPACE = SearchSpace(tuple(Choice(e, OPS) for e in EDGES), name="nb201")


@dataclass(frozen=True)
class NB201Table:
    """All 15,625 cells. ``codes`` (n, 6) are op indices in ``OPS`` order."""

    arch: np.ndarray  # official index
    codes: np.ndarray
    columns: dict[str, np.ndarray]
    rows: dict[tuple[int, ...], int]  # code -> row

    @property
    def devices(self) -> list[str]:
        return sorted(c[4:] for c in self.columns if c.startswith("lat_"))

    def row_of(self, arch: Arch) -> int:
        return self.rows[tuple(SPACE.encode(arch).tolist())]

    def metrics(self, row: int, device: str) -> dict[str, float]:
        return {
            "accuracy": float(self.columns["c10valid_valid_200ep"][row]),
            "test_accuracy": float(self.columns["c10_test_200ep"][row]),
            "latency_ms": float(self.columns[f"lat_{device}"][row]),
            "params": float(self.columns["params_MB"][row]) * 1e6,
            "nb201_index": float(self.arch[row]),
        }


def parse_cellstr(cell: str) -> tuple[int, ...]:
    """``|nor_conv_3x3~0|+|...|`` -> op indices in edge order."""
    ops = [tok.split("~")[0] for tok in cell.replace("+", "").split("|") if tok]
    if len(ops) != 6:
        raise LightnasError(f"malformed NAS-Bench-201 cell string {cell!r}")
    return tuple(OPS.index(_OP_NAMES[o]) for o in ops)


@lru_cache(maxsize=1)
def load_table() -> NB201Table:
    """Read the packaged table (about 0.3 s)."""
    path = resources.files("lightnas.bench") / "data" / "nb201.csv.gz"
    with path.open("rb") as fh, gzip.open(fh, "rt") as text:
        reader = csv.reader(text)
        header = next(reader)
        rows = list(reader)
    col = {h: i for i, h in enumerate(header)}
    numeric = [h for h in header if h not in ("arch", "cellstr")]
    columns = {h: np.array([float(r[col[h]]) for r in rows]) for h in numeric}
    codes = np.array([parse_cellstr(r[col["cellstr"]]) for r in rows], dtype=np.int64)
    lookup = {tuple(c): i for i, c in enumerate(codes.tolist())}
    return NB201Table(np.array([int(r[col["arch"]]) for r in rows]), codes, columns, lookup)


def check_device(device: str) -> None:
    devices = load_table().devices
    if device not in devices:
        raise LightnasError(f"unknown NAS-Bench-201 device {device!r} (choose from {', '.join(devices)})")


class NB201Evaluator(Evaluator):
    """Table lookup: accuracy, test accuracy, latency on ``device``, params.

    Latency and parameters are cheap metrics (known before "training"), as
    they are for a super-network with a latency table.
    """

    def __init__(self, device: str):
        check_device(device)
        self.device = device
        self.table = load_table()

    def evaluate(self, arch: Arch) -> dict[str, float]:
        return self.table.metrics(self.table.row_of(arch), self.device)

    def cheap_metrics(self, arch: Arch) -> dict[str, float]:
        m = self.evaluate(arch)
        return {"latency_ms": m["latency_ms"], "params": m["params"]}

    def known_metrics(self, arch: Arch) -> dict[str, float]:
        return self.cheap_metrics(arch)  # a latency table, as a super-network's LUT is


def objective_table(device: str, objectives: list[Objective]) -> np.ndarray:
    """(15625, m) minimisation matrix of every cell."""
    table = load_table()
    metric_col = {
        "accuracy": table.columns["c10valid_valid_200ep"],
        "test_accuracy": table.columns["c10_test_200ep"],
        "latency_ms": table.columns[f"lat_{device}"],
        "params": table.columns["params_MB"] * 1e6,
    }
    return np.stack([metric_col[o.metric] * (1 if o.direction == "min" else -1) for o in objectives], 1)


@dataclass
class TrueFront:
    """Normalisation and the true Pareto set of the whole table."""

    lo: np.ndarray
    hi: np.ndarray
    hv_true: float
    pareto_rows: np.ndarray

    def normalise(self, F: np.ndarray) -> np.ndarray:
        return (F - self.lo) / (self.hi - self.lo)

    def regret(self, F: np.ndarray) -> float:
        """1 - HV(F)/HV_true, both normalised, reference at the worst corner."""
        if len(F) == 0:
            return 1.0
        return 1.0 - hypervolume(self.normalise(F), np.ones(F.shape[1])) / self.hv_true


def true_front(device: str, objectives: list[Objective], constraints: list[Constraint] | None = None) -> TrueFront:
    """The exact front of the table; constraints restrict the feasible cells
    (normalisation stays over all 15,625 cells)."""
    F = objective_table(device, objectives)
    lo, hi = F.min(axis=0), F.max(axis=0)
    mask = np.ones(len(F), dtype=bool)
    table = load_table()
    for c in constraints or []:
        mask &= np.array([c.satisfied(table.metrics(i, device)) for i in range(len(F))])
    if not mask.any():
        raise LightnasError("no NAS-Bench-201 cell satisfies the constraints")
    rows = np.flatnonzero(mask)
    Fn = (F[rows] - lo) / (hi - lo)
    nd = nondominated_mask(Fn)
    hv = hypervolume(Fn[nd], np.ones(F.shape[1]))
    return TrueFront(lo, hi, hv, rows[nd])


def run_search(
    device: str,
    strategy: str,
    budget: int,
    seed: int,
    objectives: list[Objective] | None = None,
    constraints: list[Constraint] | None = None,
    store_path: str = ":memory:",
    batch_size: int = 10,
    **options: object,
) -> tuple[list, float]:
    """One search on the table; returns (trials in evaluation order, search-side seconds)."""
    from lightnas.search import Runner, create_strategy
    from lightnas.store import Store

    objectives = objectives or [Objective("accuracy", "max"), Objective("latency_ms", "min")]
    constraints = constraints or []
    strat = create_strategy(strategy, SPACE, objectives, constraints, seed=seed, **options)
    with Store(store_path) as store:
        runner = Runner(
            SPACE,
            NB201Evaluator(device),
            strat,
            store,
            f"nb201-{device}-{strategy}-{seed}",
            budget,
            constraints,
            batch_size=batch_size,
            progress=False,
        )
        trials = runner.run()
    return trials, runner.search_seconds
