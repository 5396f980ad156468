"""The end-to-end job on a run folder: train -> search -> export -> report.

A run folder holds ``config.json``, ``supernet.pt``, ``lightnas.db``,
``models/``, ``pareto.csv``, ``pareto.png`` and ``report.html``. Each stage
reads what the previous one wrote, so the stages also run one by one.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from lightnas.errors import LightnasError
from lightnas.objectives import Constraint, Objective, parse_constraint

RUN_FILES = (
    "config.json",
    "lut.json",
    "supernet.pt",
    "lightnas.db",
    "lightnas.db-wal",
    "lightnas.db-shm",
    "pareto.csv",
    "pareto.png",
    "report.html",
    "summary.json",
    "training_cost.json",
    "models",
)
OBJECTIVES = [Objective("accuracy", "max"), Objective("latency_ms", "min")]
CONSTRAINT_METRICS = ("latency_ms", "params", "macs", "bytes", "peak_act_bytes", "accuracy")


@dataclass
class RunConfig:
    """Everything that defines a run (saved as ``config.json``)."""

    data: str = "fashion-mnist"
    seed: int = 0
    supernet: str = "mobilenet"
    epochs: int = 8
    batch_size: int = 128
    recipe: str = "sandwich"
    budget: int = 60
    strategy: str = "lightnas"
    constraints: list[str] = field(default_factory=list)
    latency: str = "measure"  # or "lut"
    backend: str = "torch"  # or "onnxruntime"
    threads: int = 1  # latency measurement threads (batch 1)
    max_export: int = 12

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "budget", "threads", "max_export"):
            if int(getattr(self, name)) < 1:
                raise LightnasError(f"{name.replace('_', '-')} must be at least 1, not {getattr(self, name)}")
        from lightnas.train.recipes import RECIPES

        if self.recipe not in RECIPES:
            raise LightnasError(f"unknown recipe {self.recipe!r} (choose from {', '.join(RECIPES)})")
        if self.latency not in ("measure", "lut"):
            raise LightnasError(f"--latency must be 'measure' or 'lut', not {self.latency!r}")
        if self.backend not in ("torch", "onnxruntime"):
            raise LightnasError(f"--backend must be 'torch' or 'onnxruntime', not {self.backend!r}")
        for c in self.parsed_constraints():
            if c.metric not in CONSTRAINT_METRICS:
                raise LightnasError(f"cannot constrain {c.metric!r} (choose from {', '.join(CONSTRAINT_METRICS)})")
            if c.metric != "accuracy" and c.op == "<=" and c.bound <= 0:
                raise LightnasError(f"impossible constraint {c}: {c.metric} is always positive")

    def parsed_constraints(self) -> list[Constraint]:
        return [parse_constraint(c) for c in self.constraints]

    def study(self) -> str:
        """Name of the search study: changes when the search definition changes."""
        spec = json.dumps(
            [self.strategy, self.seed, sorted(self.constraints), self.latency, self.backend, self.threads]
        )
        return "search-" + hashlib.sha1(spec.encode()).hexdigest()[:8]

    @classmethod
    def from_file(cls, path: Path) -> RunConfig:
        try:
            raw = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise LightnasError(f"cannot read {path}: {exc}") from None
        known = {f.name for f in fields(cls)}
        if not isinstance(raw, dict) or not set(raw) <= known:
            raise LightnasError(f"{path} is not a lightnas run configuration")
        return cls(**raw)


def _say(msg: str, quiet: bool) -> None:
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


# -- the run folder ------------------------------------------------------------------
def prepare_folder(out: Path, cfg: RunConfig, resume: bool = False, force: bool = False) -> RunConfig:
    """Create or reopen a run folder; never silently overwrite another run.

    - new or empty folder: start;
    - folder with a run: error, unless ``resume`` (continue it; the data,
      seed and super-network must match) or ``force`` (delete the run's files);
    - folder with other files: error.
    """
    if out.exists() and not out.is_dir():
        raise LightnasError(f"output path {out} exists and is not a folder")
    entries = [p for p in out.iterdir()] if out.exists() else []
    if entries:
        foreign = [p.name for p in entries if p.name not in RUN_FILES]
        if foreign:
            raise LightnasError(f"output folder {out} holds files that are not a lightnas run ({foreign[0]}, ...)")
        if force:
            for p in entries:
                shutil.rmtree(p) if p.is_dir() else p.unlink()
        elif resume:
            if not (out / "config.json").exists():
                raise LightnasError(f"{out} holds no config.json to resume")
            old = RunConfig.from_file(out / "config.json")
            for name in ("data", "seed", "supernet", "batch_size"):
                if getattr(old, name) != getattr(cfg, name):
                    raise LightnasError(
                        f"cannot resume {out}: it was run with {name}={getattr(old, name)!r}, not "
                        f"{getattr(cfg, name)!r} (use --force to replace it)"
                    )
        else:
            raise LightnasError(
                f"output folder {out} already holds a run (use --resume to continue it or --force to replace it)"
            )
    out.mkdir(parents=True, exist_ok=True)
    from lightnas.io import write_json

    write_json(asdict(cfg), out / "config.json")
    return cfg


def load_folder(out: Path) -> RunConfig:
    if not (out / "config.json").is_file():
        raise LightnasError(f"{out} holds no lightnas run (no config.json)")
    return RunConfig.from_file(out / "config.json")


# -- stages ----------------------------------------------------------------------------
def stage_train(out: Path, cfg: RunConfig, quiet: bool = False) -> dict[str, Any]:
    from lightnas.data import load_dataset
    from lightnas.supernets.mobilenet import MobileNetConfig
    from lightnas.train.trainer import TrainConfig, train_supernet

    data = load_dataset(cfg.data, cfg.seed)
    net_cfg = MobileNetConfig(input_shape=data.input_shape, n_classes=data.n_classes).to_dict()
    _say(
        f"data: {data.name}, {data.describe()['n_train']} train / {len(data.y_val)} val / "
        f"{len(data.y_test)} test images of {data.input_shape}",
        quiet,
    )
    tc = TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, seed=cfg.seed, recipe=cfg.recipe)
    return train_supernet(cfg.supernet, net_cfg, data, tc, out / "supernet.pt", resume=True, progress=not quiet)


def _context(out: Path, cfg: RunConfig) -> tuple[Any, dict[str, Any], Any]:
    from lightnas.data import load_dataset
    from lightnas.train.common import setup_torch
    from lightnas.train.trainer import load_supernet

    # the whole process at the measurement thread count: a larger OpenMP pool
    # left from training slowed 1-thread latency by 30-60% here (measured)
    setup_torch(cfg.threads)
    net, state = load_supernet(out / "supernet.pt")
    if state["epoch"] < cfg.epochs:
        raise LightnasError(
            f"{out / 'supernet.pt'} is trained for {state['epoch']} of {cfg.epochs} epochs "
            f"(run 'lightnas train {out} --resume' first)"
        )
    data = load_dataset(cfg.data, cfg.seed)
    return net, state, data


def _evaluator(out: Path, cfg: RunConfig, net: Any, data: Any) -> Any:
    from lightnas.evaluate.supernet import SupernetEvaluator

    lut = None
    if cfg.latency == "lut":
        from lightnas.hardware.lut import LatencyTable

        lut_path = out / "lut.json"
        if lut_path.exists():
            lut = LatencyTable.load(lut_path)
            lut.check_compatible(backend=cfg.backend, threads=cfg.threads)
        else:
            lut = LatencyTable.build(net, backend=cfg.backend, threads=cfg.threads)
            lut.save(lut_path)
        lut.bind(net)
    return SupernetEvaluator(net, data, backend=cfg.backend, threads=cfg.threads, lut=lut)


def stage_search(out: Path, cfg: RunConfig, quiet: bool = False) -> list[Any]:
    from lightnas.search import Runner, create_strategy
    from lightnas.store import Store

    net, _, data = _context(out, cfg)
    constraints = cfg.parsed_constraints()
    evaluator = _evaluator(out, cfg, net, data)
    # an impossible constraint is caught before any search: the smallest
    # sub-network is the cheapest in every cost metric
    cheapest = evaluator.cheap_metrics(net.space.smallest())
    for c in constraints:
        if c.metric in cheapest and not c.satisfied(cheapest):
            raise LightnasError(
                f"impossible constraint {c}: the smallest sub-network has {c.metric}={cheapest[c.metric]:.4g}"
            )
    strategy = create_strategy(cfg.strategy, net.space, OBJECTIVES, constraints, seed=cfg.seed)
    with Store(out / "lightnas.db") as store:
        store.set_meta("study", cfg.study())
        store.set_meta("space", net.space.describe())
        store.set_meta("data", data.describe())
        runner = Runner(
            net.space,
            evaluator,
            strategy,
            store,
            cfg.study(),
            cfg.budget,
            constraints,
            batch_size=8,
            progress=not quiet,
        )
        trials = runner.run()
    return trials


def front_archs(out: Path, cfg: RunConfig) -> tuple[list[Any], list[dict[str, float]], list[dict[str, float]]]:
    """(archs on the feasible front, their metrics, all evaluated metrics) from the store."""
    import numpy as np

    from lightnas.objectives import feasible, objective_matrix
    from lightnas.search.pareto import nondominated_mask
    from lightnas.store import OK, Store

    if not (out / "lightnas.db").exists():
        raise LightnasError(f"{out} has no lightnas.db (run 'lightnas search {out}' first)")
    with Store(out / "lightnas.db") as store:
        records = store.records(cfg.study(), OK)
    if not records:
        raise LightnasError(f"{out}/lightnas.db holds no evaluations for this configuration")
    constraints = cfg.parsed_constraints()
    ok = [r for r in records if feasible(r.metrics, constraints)]
    if not ok:
        raise LightnasError("no evaluated sub-network meets the constraints")
    F = objective_matrix([r.metrics for r in ok], OBJECTIVES)
    mask = nondominated_mask(F)
    order = np.argsort(F[mask][:, 1])
    front = [ok[i] for i in np.flatnonzero(mask)[order]]
    return [r.arch for r in front], [r.metrics for r in front], [r.metrics for r in records]


def stage_export(out: Path, cfg: RunConfig, quiet: bool = False) -> list[dict[str, Any]]:
    from lightnas.export import export_subnet
    from lightnas.io import write_json

    net, state, data = _context(out, cfg)
    archs, metrics, _ = front_archs(out, cfg)
    if len(archs) > cfg.max_export:  # keep an even spread along latency
        keep = sorted({round(i * (len(archs) - 1) / (cfg.max_export - 1)) for i in range(cfg.max_export)})
        archs, metrics = [archs[i] for i in keep], [metrics[i] for i in keep]
    cards = []
    for raw, m in zip(archs, metrics, strict=True):
        arch = net.space.make(raw)
        cards.append(
            export_subnet(
                net,
                state["supernet"],
                arch,
                data,
                out / "models",
                m,
                cfg.backend,
                cfg.threads,
                "lookup table" if cfg.latency == "lut" else "measured",
            )
        )
        _say(
            f"exported {cards[-1]['id']}: test {cards[-1]['test_accuracy']:.2f}% "
            f"{cards[-1]['latency']['latency_ms']:.3f} ms",
            quiet,
        )
    write_json({"study": cfg.study(), "models": [c["id"] for c in cards]}, out / "models" / "index.json")
    write_json(training_cost(net, state, data, cfg, archs), out / "training_cost.json")
    return cards


def training_cost(net: Any, state: dict[str, Any], data: Any, cfg: RunConfig, archs: list[Any]) -> dict[str, Any]:
    """The Once-for-All argument, measured: the super-network's training time
    (from its checkpoint history) against training the exported sub-networks
    one by one with the same schedule (each estimated from timed stand-alone
    training steps, see ``standalone_train_seconds``). Seconds."""
    from lightnas.train.trainer import TrainConfig, standalone_train_seconds

    tc = TrainConfig(**state["train_config"])
    one_by_one = [standalone_train_seconds(net, net.space.make(a), data, tc) for a in archs]
    supernet_s = float(sum(h["seconds"] for h in state["history"]))
    return {
        "supernet_train_seconds": round(supernet_s, 1),
        "one_by_one_train_seconds": round(float(sum(one_by_one)), 1),
        "n_subnets": len(archs),
        "ratio": round(float(sum(one_by_one)) / supernet_s, 2) if supernet_s > 0 else None,
        "how": "super-network: measured epoch times; one by one: timed stand-alone training steps of each "
        "exported sub-network times the same number of steps",
    }


def stage_report(out: Path, cfg: RunConfig, quiet: bool = False, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    from lightnas.report import latency_span, plot_front, terminal_table, write_csv, write_html

    index = out / "models" / "index.json"
    if not index.is_file():
        raise LightnasError(f"{out} has no exported models (run 'lightnas export {out}' first)")
    ids = json.loads(index.read_text())["models"]
    cards = [json.loads((out / "models" / i / "card.json").read_text()) for i in ids]
    _, front, evaluated = front_archs(out, cfg)
    write_csv(cards, out / "pareto.csv")
    plot_front(
        evaluated,
        front,
        cfg.parsed_constraints(),
        out / "pareto.png",
        title=f"{cfg.data}: {len(evaluated)} sub-networks evaluated",
    )
    best = max(cards, key=lambda c: c["test_accuracy"])
    cost_file = out / "training_cost.json"
    cost = json.loads(cost_file.read_text()) if cost_file.is_file() else None
    summary = {
        "headline": f"{len(cards)} models exported; best test accuracy {best['test_accuracy']:.2f}% at "
        f"{best['latency']['latency_ms']:.3f} ms; front spans {latency_span(cards):.1f}x in latency",
        "best_test_accuracy": best["test_accuracy"],
        "latency_span": latency_span(cards),
        "evaluations": len(evaluated),
        **({"training_cost": cost} if cost else {}),
        **(extra or {}),
    }
    if cost:
        summary["headline"] += (
            f"; training the super-network took {cost['supernet_train_seconds']:.0f} s, training the "
            f"{cost['n_subnets']} exported sub-networks one by one would take ~{cost['one_by_one_train_seconds']:.0f} s"
        )
    old = out / "summary.json"
    if old.exists():
        summary = {**json.loads(old.read_text()), **summary}
    from lightnas.io import write_json

    write_json(summary, out / "summary.json")
    write_html(cards, asdict(cfg), summary, out / "report.html")
    if not quiet:
        print(terminal_table(cards))
        print(summary["headline"])
    return summary


def run_all(
    out: Path, cfg: RunConfig, resume: bool = False, force: bool = False, quiet: bool = False
) -> dict[str, Any]:
    """The main job. Returns the summary (also in ``summary.json``)."""
    prepare_folder(out, cfg, resume, force)
    t0 = time.perf_counter()
    times: dict[str, float] = {}
    for name, stage in (("train", stage_train), ("search", stage_search), ("export", stage_export)):
        t = time.perf_counter()
        stage(out, cfg, quiet)
        times[f"{name}_seconds"] = round(time.perf_counter() - t, 1)
    times["total_seconds"] = round(time.perf_counter() - t0, 1)
    return stage_report(out, cfg, quiet, extra=times)


def stage_finetune(
    out: Path, cfg: RunConfig, arch_ref: str, epochs: int, quiet: bool = False, force: bool = False
) -> dict[str, Any]:
    """Fine-tune an exported sub-network (by model id or architecture key)
    with distillation from the largest sub-network; export it again as
    ``models/<id>-ft<epochs>`` with a new card that states the gain (test
    accuracy, points). An existing ``-ft<epochs>`` folder is replaced only
    with ``force``."""
    import torch

    from lightnas.export import export_plain, model_id
    from lightnas.train.common import CALIB_IMAGES, accuracy, recalibrate_bn, to_tensor
    from lightnas.train.trainer import finetune

    net, state, data = _context(out, cfg)
    card_file = out / "models" / arch_ref / "card.json"
    if card_file.is_file():
        card = json.loads(card_file.read_text())
        arch = net.space.make(card["arch"])
    else:
        arch = net.space.from_key(arch_ref)
        card_file = out / "models" / model_id(arch) / "card.json"
        if not card_file.is_file():
            raise LightnasError(f"{arch_ref} is not an exported model of {out} (see models/index.json)")
        card = json.loads(card_file.read_text())
    folder = out / "models" / f"{card['id']}-ft{epochs}"
    if folder.exists() and not force:
        raise LightnasError(f"{folder} already exists (use --force to replace it)")
    x_cal = to_tensor(data.x_train[:CALIB_IMAGES], data)
    net.set_active(net.space.largest())
    recalibrate_bn(net, x_cal)
    teacher = net.extract(net.space.largest()).eval()
    net.set_active(arch)
    recalibrate_bn(net, x_cal)
    student = net.extract(arch)
    x_val, y_val = to_tensor(data.x_val, data), torch.from_numpy(data.y_val)
    before_val = accuracy(student, x_val, y_val)
    history = finetune(student, teacher, data, epochs, seed=cfg.seed, progress=not quiet)
    new = export_plain(
        student,
        net.config,
        state["supernet"],
        arch,
        data,
        folder,
        {"accuracy": max(h["val_accuracy"] for h in history), "latency_ms": card["latency"]["latency_ms"]},
        cfg.backend,
        cfg.threads,
        "measured",
        extra={
            "finetuned_from": card["id"],
            "finetune_epochs": epochs,
            "finetune_history": history,
            "test_accuracy_before": card["test_accuracy"],
            "val_accuracy_before": before_val,
        },
    )
    new["test_accuracy_gain"] = new["test_accuracy"] - card["test_accuracy"]
    from lightnas.io import write_json

    write_json(new, folder / "card.json")
    if not quiet:
        print(
            f"fine-tuned {card['id']} for {epochs} epochs: test {card['test_accuracy']:.2f}% -> "
            f"{new['test_accuracy']:.2f}% ({new['test_accuracy_gain']:+.2f}); exported to {folder}"
        )
    return new
