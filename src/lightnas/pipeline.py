"""The end-to-end job on a run folder: train -> search -> export -> report.

Each stage reads what the previous one wrote (see :mod:`lightnas.runfolder`),
so the stages also run one by one. Nothing here names a super-network: the
stages use the contract of :mod:`lightnas.supernets.base` and the task of
:mod:`lightnas.tasks`.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING

from lightnas.artefacts import Checkpoint, ModelCard, RunSummary, TrainingCost, TrainJob, read_training_cost
from lightnas.config import RunConfig, TrainConfig
from lightnas.context import load_data, run_evaluator, supernet_config, trained, worker_evaluator
from lightnas.io import write_json
from lightnas.lock import writing
from lightnas.objectives import RUN_OBJECTIVES, TABLE_LATENCY, parse_constraint, run_fronts, run_objectives
from lightnas.reporting.run import load_run
from lightnas.reporting.run_page import write_report
from lightnas.reporting.tables import summarise, terminal_table, write_csv
from lightnas.runfolder import claim, open_folder, preflight, say
from lightnas.search import Runner, SearchPlan, create_strategy
from lightnas.selection import read_front, select
from lightnas.space import Value
from lightnas.store import Store

if TYPE_CHECKING:  # imported by the stages that use them: the command line starts without torch
    from lightnas.data.sources import Dataset
    from lightnas.quantization.wrapper import Searchable
    from lightnas.search import Trial

METRIC = RUN_OBJECTIVES[0].metric  # the task's metric (ClassificationTask.metric_name)


# -- stages ----------------------------------------------------------------------------
def stage_train(out: Path, cfg: RunConfig, quiet: bool = False, data: Dataset | None = None) -> Checkpoint:
    # torch loads here, when the work runs: the command line starts and checks its input without it (2 s)
    from lightnas.train.trainer import train_supernet

    data = data or load_data(cfg, not quiet)
    n = data.describe()
    say(f"data: {data.name}, {n['n_train']} train / {n['n_val']} val / {n['n_test']} test of {data.input_shape}", quiet)
    if n.get("image_size_chosen") == "median shorter side":
        lo, hi = n["image_sides"]
        say(
            f"data: images of {lo}-{hi} px (shorter side) brought to {n['image_size']} px, the median; "
            "--image-size N to choose",
            quiet,
        )
    job = TrainJob(cfg.supernet.name, supernet_config(cfg, data), cfg.train, cfg.seed, device=cfg.device)
    if cfg.nproc > 1:
        from lightnas.train.checkpoint import read_checkpoint
        from lightnas.train.device import resolve_device
        from lightnas.train.distributed import DistributedJob, train_distributed

        job = dataclasses.replace(job, device=resolve_device(cfg.device).type)
        run = DistributedJob(job, cfg.data.source, cfg.data.image_size, out / "supernet.pt", progress=not quiet)
        train_distributed(cfg.nproc, run)
        return read_checkpoint(out / "supernet.pt")
    return train_supernet(job, data, out / "supernet.pt", resume=True, progress=not quiet)


def stage_search(out: Path, cfg: RunConfig, quiet: bool = False, data: Dataset | None = None) -> list[Trial]:
    net, _, data = trained(out, cfg, data)
    constraints = [parse_constraint(c) for c in cfg.search.constraints]
    evaluator = run_evaluator(out, cfg, net, data)
    objectives = run_objectives(cfg.latency.tables)
    strategy = create_strategy(
        cfg.search.strategy, net.space, objectives, constraints, seed=cfg.seed, **cfg.search.options
    )
    if cfg.latency.tables:  # one front per device, every accuracy evaluation shared
        strategy.search_fronts(run_fronts(objectives))
    if cfg.search.executor == "ray":
        # torch loads here, when the work runs: the command line starts and checks its input without it (2 s)
        from lightnas.evaluate.ray_pool import RayPool

        evaluator = RayPool(evaluator, out, cfg, worker_evaluator)
    try:
        with Store(out / "lightnas.db") as store:
            store.set_meta("study", cfg.study())
            store.set_meta("space", net.space.describe())
            store.set_meta("data", data.describe())
            if cfg.quantize.precision:
                store.set_meta("quantization", net.describe())
            plan = SearchPlan(cfg.search.budget, schedule=cfg.search.schedule)
            runner = Runner(strategy, evaluator, store, cfg.study(), plan, progress=not quiet)
            return runner.run()
    finally:
        evaluator.close()


def stage_export(out: Path, cfg: RunConfig, quiet: bool = False, data: Dataset | None = None) -> list[ModelCard]:
    # torch loads here, when the work runs: the command line starts and checks its input without it (2 s)
    from lightnas.export import CardExtras, ExportContext, export_subnet

    net, ckpt, data = trained(out, cfg, data)
    front, records = read_front(out, cfg, run_objectives(cfg.latency.tables))
    chosen = select(front, records, cfg, METRIC)
    ctx = ExportContext(ckpt.supernet, ckpt.config, data, cfg.latency)
    cards = []
    for pick in chosen:
        fields: dict[str, object] = {"targets": list(pick.targets)}
        if cfg.latency.tables:  # the other devices' latencies, as their tables price them (ms)
            fields["table_latency_ms"] = {n: pick.metrics[TABLE_LATENCY + n] for n in cfg.latency.tables}
            fields["fronts"] = list(pick.fronts)
        arch = net.space.make(pick.arch)
        card = export_subnet(net, arch, out / "models", ctx, pick.metrics, CardExtras(fields=fields))
        cards.append(card)
        ms = card.latency.latency_ms
        say(f"exported {card.id}: test {card.test_accuracy:.2f}% {ms:.3f} ms ({cfg.latency.backend})", quiet)
    unmet = [t for t in cfg.export.targets if not any(t in p.targets for p in chosen)]
    ids = [c.id for c in cards]
    # models of earlier exports (other --targets, fine-tunes) stay on disk, named apart
    earlier = sorted(p.parent.name for p in (out / "models").glob("*/card.json") if p.parent.name not in ids)
    if earlier:
        say(f"kept {len(earlier)} earlier model(s) in models/ outside this family: {', '.join(earlier)}", quiet)
    index = {"study": cfg.study(), "models": ids, "unmet_targets": unmet, "earlier": earlier}
    write_json(index, out / "models" / "index.json")
    cost = training_cost(net, ckpt, data, [p.arch for p in chosen], cfg.device)
    write_json(cost.to_dict(), out / "training_cost.json")
    return cards


def training_cost(
    net: Searchable, ckpt: Checkpoint, data: Dataset, archs: list[dict[str, Value]], device: str = "cpu"
) -> TrainingCost:
    """The Once-for-All argument, measured: the super-network's training time
    (from its checkpoint history) against training the exported sub-networks
    one by one with the same schedule (each estimated from timed stand-alone
    training steps, see ``standalone_train_seconds``), on the device the
    super-network trained on. Where ``device`` (this process's) is not of that
    kind, the one-by-one time is not estimated: a ratio across devices means
    nothing. Seconds."""
    # torch loads here, when the work runs: the command line starts and checks its input without it (2 s)
    from lightnas.train.device import resolve_device
    from lightnas.train.plain import standalone_train_seconds

    tc = TrainConfig(**ckpt.train_config)
    supernet_s = round(ckpt.train_seconds, 1)
    trained_on = ckpt.settings.get("device", "cpu")
    here = resolve_device(device)
    if here.type != trained_on.partition(":")[0]:
        why = f"the super-network trained on {trained_on}; rerun 'lightnas export' with --device {trained_on}"
        return TrainingCost(supernet_s, len(archs), None, None, why)
    one_by_one = float(sum(standalone_train_seconds(net, net.space.make(a), data, tc, device=str(here)) for a in archs))
    return TrainingCost(
        supernet_s,
        len(archs),
        round(one_by_one, 1),
        round(one_by_one / supernet_s, 2) if supernet_s > 0 else None,
        f"super-network: measured epoch times on {trained_on}; one by one: timed stand-alone training steps "
        f"of each exported sub-network on {here} times the same number of steps",
    )


def stage_report(out: Path, cfg: RunConfig, quiet: bool = False, times: dict[str, float] | None = None) -> RunSummary:
    """Write ``pareto.csv``, ``summary.json`` and ``report.html`` of the run in
    ``out``. ``times``: the stages' seconds (``train_seconds`` ...) of this
    ``lightnas run``; without them those of the summary already there are kept."""

    view = load_run(out, cfg)  # everything the report shows is read before anything is written
    cost = read_training_cost(out)
    summary = summarise(view.cards, view.n_records, cost, view.unmet_targets)
    old = view.summary
    kept = {k: getattr(old, k) for k in STAGE_SECONDS} if old else {}
    view.summary = summary = dataclasses.replace(summary, **{**kept, **(times or {})})
    write_csv(view.cards, out / "pareto.csv")
    write_json(summary.to_dict(), out / "summary.json")
    write_report(view, out / "report.html")
    if not quiet:
        print(terminal_table(view.cards))
        print(summary.headline)
        print(f"report: {out / 'report.html'}")
    return summary


STAGE_SECONDS = ("train_seconds", "search_seconds", "export_seconds", "total_seconds")


def run_all(
    out: Path, explicit: dict[str, object] | None = None, resume: bool = False, force: bool = False, quiet: bool = False
) -> RunSummary:
    """The main job. ``explicit`` holds the options given (dotted paths of
    :class:`RunConfig`). Returns the summary (also in ``summary.json``). The
    folder's lock is held throughout (:mod:`lightnas.lock`): a second writer is refused."""

    with writing(out):
        cfg, new = open_folder(out, explicit or {}, resume, force)
        data = load_data(cfg, not quiet)
        preflight(cfg, data, out)
        claim(out, cfg, force if new else False)
        t0 = time.perf_counter()
        times: dict[str, float] = {}
        for name, stage in (("train", stage_train), ("search", stage_search), ("export", stage_export)):
            t = time.perf_counter()
            stage(out, cfg, quiet, data)
            times[f"{name}_seconds"] = round(time.perf_counter() - t, 1)
        times["total_seconds"] = round(time.perf_counter() - t0, 1)
        return stage_report(out, cfg, quiet, times)
