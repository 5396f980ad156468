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
from lightnas.search import Runner, SearchPlan, create_strategy
from lightnas.search.pareto import hypervolume, nondominated_mask
from lightnas.space import Arch, Choice, SearchSpace
from lightnas.store import Store

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
        """The metrics of one row; ``device`` may name several devices
        (comma-separated): ``latency_ms`` is the first one's and
        ``latency_ms@DEV`` each one's."""
        devices = device.split(",")
        out = {
            "accuracy": float(self.columns["c10valid_valid_200ep"][row]),
            "test_accuracy": float(self.columns["c10_test_200ep"][row]),
            "latency_ms": float(self.columns[f"lat_{devices[0]}"][row]),
            "params": float(self.columns["params_MB"][row]) * 1e6,
            "nb201_index": float(self.arch[row]),
        }
        if len(devices) > 1:
            out.update({f"latency_ms@{d}": float(self.columns[f"lat_{d}"][row]) for d in devices})
        return out


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


# the four input-to-output paths of a cell, as edge positions in EDGES
_PATHS = ((3,), (0, 4), (1, 5), (0, 2, 5))


def graf_features(codes: np.ndarray) -> dict[str, np.ndarray]:
    """GRAF-style structural features of cells ``codes`` (n, 6), each (n,).

    Counts of each operation; live input-to-output paths (no ``none`` edge)
    by length; for each operation, the live paths made of it alone and the
    paths through at least one; the most and fewest convolutions on a live
    path (depth); convolutions on some live path (the others compute nothing
    that reaches the output); in-degree of the output node and out-degree of
    the input node counting live edges.
    """
    codes = np.asarray(codes)
    none, skip, conv1, conv3, pool = (OPS.index(o) for o in OPS)
    live = codes != none
    conv = (codes == conv1) | (codes == conv3)
    out: dict[str, np.ndarray] = {f"graf_n_{o}": (codes == i).sum(1).astype(float) for i, o in enumerate(OPS)}
    path_live = np.stack([live[:, list(p)].all(1) for p in _PATHS], 1)
    for length in (1, 2, 3):
        cols = [k for k, p in enumerate(_PATHS) if len(p) == length]
        out[f"graf_paths_len{length}"] = path_live[:, cols].sum(1).astype(float)
    for i, o in enumerate(OPS[1:], start=1):
        only = np.stack([(codes[:, list(p)] == i).all(1) for p in _PATHS], 1)
        some = np.stack([(codes[:, list(p)] == i).any(1) for p in _PATHS], 1)
        out[f"graf_paths_only_{o}"] = (only & path_live).sum(1).astype(float)
        out[f"graf_paths_with_{o}"] = (some & path_live).sum(1).astype(float)
    depth = np.stack([conv[:, list(p)].sum(1) for p in _PATHS], 1).astype(float)
    out["graf_max_depth"] = np.where(path_live, depth, 0.0).max(1)
    out["graf_min_depth"] = np.where(path_live, depth, np.inf).min(1)
    out["graf_min_depth"][~path_live.any(1)] = 0.0
    on_path = np.zeros_like(live)
    for k, p in enumerate(_PATHS):
        on_path[:, list(p)] |= path_live[:, [k]]
    out["graf_live_conv3"] = ((codes == conv3) & on_path).sum(1).astype(float)
    out["graf_live_conv1"] = ((codes == conv1) & on_path).sum(1).astype(float)
    out["graf_in_degree_out"] = live[:, [3, 4, 5]].sum(1).astype(float)
    out["graf_out_degree_in"] = live[:, [0, 1, 3]].sum(1).astype(float)
    return out


@lru_cache(maxsize=1)
def descriptors() -> dict[str, np.ndarray]:
    """Per-row descriptors known without training, in table order: GRAF
    features and the zero-cost proxies ``zc_synflow`` (computed by
    ``bench/nb201_proxies.py`` on the PyTorch cell network) and ``zc_naswot``
    (NAS-Bench-201's NASWOT score on CIFAR-10; the table has none for the
    341 cells whose output is disconnected from their input, which get the
    lowest score of the others)."""
    table = load_table()
    out = graf_features(table.codes)
    path = resources.files("lightnas.bench") / "data" / "nb201_proxies.csv.gz"
    with path.open("rb") as fh, gzip.open(fh, "rt") as text:
        rows = list(csv.DictReader(text))
    order = {int(a): i for i, a in enumerate(table.arch)}
    for name in ("synflow", "naswot"):
        col = np.full(len(table.arch), np.nan)
        for r in rows:
            col[order[int(r["arch"])]] = float(r[name]) if r[name] else np.nan
        out[f"zc_{name}"] = np.where(np.isnan(col), np.nanmin(col), col)
    return out


def check_device(device: str) -> None:
    """One device, or several comma-separated, each a latency column of the table."""
    devices = load_table().devices
    names = device.split(",")
    for d in names:
        if d not in devices:
            raise LightnasError(f"unknown NAS-Bench-201 device {d!r} (choose from {', '.join(devices)})")
    if len(set(names)) != len(names):
        raise LightnasError(f"device list {device!r} names a device twice")


def target_objectives(device: str) -> tuple[list[Objective], list[tuple[int, int]]]:
    """Objectives and fronts of a search for ``device`` (comma-separated for
    several targets): accuracy and one latency per device, one front per device."""
    devices = device.split(",")
    if len(devices) == 1:
        return [Objective("accuracy", "max"), Objective("latency_ms", "min")], [(0, 1)]
    objectives = [Objective("accuracy", "max")] + [Objective(f"latency_ms@{d}", "min") for d in devices]
    return objectives, [(0, k) for k in range(1, len(devices) + 1)]


class NB201Evaluator(Evaluator):
    """Table lookup: accuracy, test accuracy, latency on ``device``, params.

    Latency and parameters are cheap metrics (known before "training"), as
    they are for a super-network with a latency table.
    """

    def __init__(self, device: str):
        check_device(device)
        self.device = device
        self.table = load_table()
        self._descriptors = descriptors()

    def evaluate(self, arch: Arch) -> dict[str, float]:
        return self.table.metrics(self.table.row_of(arch), self.device)

    def cheap_metrics(self, arch: Arch) -> dict[str, float]:
        m = self.evaluate(arch)
        return {k: v for k, v in m.items() if k.startswith("latency_ms") or k == "params"}

    def known_metrics(self, arch: Arch) -> dict[str, float]:
        """The cheap metrics (a latency table, as a super-network's LUT is),
        GRAF features and zero-cost proxies (:func:`descriptors`)."""
        row = self.table.row_of(arch)
        out = self.cheap_metrics(arch)
        out.update({k: float(v[row]) for k, v in self._descriptors.items()})
        return out


def objective_table(device: str, objectives: list[Objective]) -> np.ndarray:
    """(15625, m) minimisation matrix of every cell."""
    table = load_table()
    metric_col = {
        "accuracy": table.columns["c10valid_valid_200ep"],
        "test_accuracy": table.columns["c10_test_200ep"],
        "latency_ms": table.columns[f"lat_{device.split(',')[0]}"],
        "params": table.columns["params_MB"] * 1e6,
        **{f"latency_ms@{d}": table.columns[f"lat_{d}"] for d in table.devices},
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
    batch_size: int = 10,
    **options: object,
) -> tuple[list, float, float]:
    """One search on the table; returns (trials in evaluation order, search-side
    seconds, seconds spent in the evaluator's known metrics: the latency
    table, GRAF features and proxies, once per cell). ``device`` may name several devices (comma-separated): without
    explicit ``objectives`` the search then has accuracy and each device's
    latency as objectives and one front per device (:func:`target_objectives`)."""

    fronts = None
    if objectives is None:
        objectives, fronts = target_objectives(device)
    constraints = constraints or []
    strat = create_strategy(strategy, SPACE, objectives, constraints, seed=seed, **options)
    if fronts is not None:
        strat.search_fronts(fronts)
    with Store(":memory:") as store:
        study = f"nb201-{device}-{strategy}-{seed}"
        runner = Runner(strat, NB201Evaluator(device), store, study, SearchPlan(budget, batch_size), progress=False)
        trials = runner.run()
    return trials, runner.search_seconds, runner.known_seconds
