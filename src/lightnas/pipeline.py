"""The end-to-end job on a run folder: train -> search -> export -> report.

Each stage reads what the previous one wrote (see :mod:`lightnas.runfolder`),
so the stages also run one by one. Nothing here names a super-network: the
stages use the contract of :mod:`lightnas.supernets.base` and the task of
:mod:`lightnas.tasks`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from lightnas.artefacts import Checkpoint
from lightnas.config import RunConfig
from lightnas.context import load_data, run_evaluator, supernet_config, trained
from lightnas.objectives import RUN_OBJECTIVES, TABLE_LATENCY, parse_constraint, run_fronts, run_objectives
from lightnas.runfolder import claim, open_folder, preflight, say

METRIC = RUN_OBJECTIVES[0].metric  # the task's metric (ClassificationTask.metric_name)


# -- stages ----------------------------------------------------------------------------
def stage_train(out: Path, cfg: RunConfig, quiet: bool = False, data: Any = None) -> Checkpoint:
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
    if cfg.nproc > 1:
        from lightnas.train.device import resolve_device
        from lightnas.train.distributed import train_distributed
        from lightnas.train.trainer import read_checkpoint

        job = {
            "supernet": cfg.supernet.name,
            "supernet_config": supernet_config(cfg, data),
            "data": cfg.data.source,
            "image_size": cfg.data.image_size,
            "cfg": cfg.train,
            "seed": cfg.seed,
            "checkpoint": str(out / "supernet.pt"),
            "resume": True,
            "progress": not quiet,
            "device": resolve_device(cfg.device).type,
            "threads": None,
        }
        train_distributed(cfg.nproc, job)
        return read_checkpoint(out / "supernet.pt")
    return train_supernet(
        cfg.supernet.name,
        supernet_config(cfg, data),
        data,
        cfg.train,
        out / "supernet.pt",
        resume=True,
        progress=not quiet,
        seed=cfg.seed,
        device=cfg.device,
    )


def stage_search(out: Path, cfg: RunConfig, quiet: bool = False, data: Any = None) -> list[Any]:
    from lightnas.search import Runner, create_strategy
    from lightnas.store import Store

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
        from lightnas.evaluate.ray_pool import RayPool

        s = cfg.search
        evaluator = RayPool(evaluator, out, cfg.to_dict(), s.workers, s.ray_address, s.target_resource)
    try:
        with Store(out / "lightnas.db") as store:
            store.set_meta("study", cfg.study())
            store.set_meta("space", net.space.describe())
            store.set_meta("data", data.describe())
            if cfg.quantize.precision:
                store.set_meta("quantization", net.describe())
            runner = Runner(
                net.space,
                evaluator,
                strategy,
                store,
                cfg.study(),
                cfg.search.budget,
                constraints,
                progress=not quiet,
                schedule=cfg.search.schedule,
            )
            return runner.run()
    finally:
        evaluator.close()


def stage_export(out: Path, cfg: RunConfig, quiet: bool = False, data: Any = None) -> list[dict[str, Any]]:
    from lightnas.export import ExportContext, export_subnet
    from lightnas.io import write_json
    from lightnas.selection import read_front, select

    net, ckpt, data = trained(out, cfg, data)
    front, records = read_front(out, cfg, run_objectives(cfg.latency.tables))
    chosen = select(front, records, cfg, METRIC)
    source = "lookup table" if cfg.latency.mode == "lut" else "measured"
    lat = cfg.latency
    ctx = ExportContext(ckpt.supernet, ckpt.config, data, lat.backend, lat.threads, source, lat.target, lat.batch)
    cards = []
    for pick in chosen:
        card = export_subnet(net, net.space.make(pick.arch), out / "models", ctx, pick.metrics)
        extra: dict[str, Any] = {"targets": list(pick.targets)} if pick.targets else {}
        if cfg.latency.tables:  # the other devices' latencies, as their tables price them (ms)
            extra["table_latency_ms"] = {n: pick.metrics[TABLE_LATENCY + n] for n in cfg.latency.tables}
            extra["fronts"] = list(pick.fronts)
        if extra:
            card.update(extra)
            write_json(card, out / "models" / card["id"] / "card.json")
        cards.append(card)
        lat = card["latency"]["latency_ms"]
        say(f"exported {card['id']}: test {card['test_accuracy']:.2f}% {lat:.3f} ms ({cfg.latency.backend})", quiet)
    unmet = [t for t in cfg.export.targets if not any(t in p.targets for p in chosen)]
    ids = [c["id"] for c in cards]
    # models of earlier exports (other --targets, fine-tunes) stay on disk, named apart
    earlier = sorted(p.parent.name for p in (out / "models").glob("*/card.json") if p.parent.name not in ids)
    if earlier:
        say(f"kept {len(earlier)} earlier model(s) in models/ outside this family: {', '.join(earlier)}", quiet)
    index = {"study": cfg.study(), "models": ids, "unmet_targets": unmet, "earlier": earlier}
    write_json(index, out / "models" / "index.json")
    cost = training_cost(net, ckpt, data, [p.arch for p in chosen], cfg.device)
    write_json(cost, out / "training_cost.json")
    return cards


def training_cost(net: Any, ckpt: Checkpoint, data: Any, archs: list[Any], device: str = "cpu") -> dict[str, Any]:
    """The Once-for-All argument, measured: the super-network's training time
    (from its checkpoint history) against training the exported sub-networks
    one by one with the same schedule (each estimated from timed stand-alone
    training steps, see ``standalone_train_seconds``), on the device the
    super-network trained on. Where ``device`` (this process's) is not of that
    kind, the one-by-one time is not estimated: a ratio across devices means
    nothing. Seconds."""
    from lightnas.config import TrainConfig
    from lightnas.train.device import resolve_device
    from lightnas.train.plain import standalone_train_seconds

    tc = TrainConfig(**ckpt.train_config)
    supernet_s = ckpt.train_seconds
    trained_on = ckpt.settings.get("device", "cpu")
    here = resolve_device(device)
    cost: dict[str, Any] = {"supernet_train_seconds": round(supernet_s, 1), "n_subnets": len(archs)}
    if here.type != trained_on.partition(":")[0]:
        why = f"the super-network trained on {trained_on}; rerun 'lightnas export' with --device {trained_on}"
        return {**cost, "one_by_one_train_seconds": None, "ratio": None, "how": why}
    one_by_one = float(sum(standalone_train_seconds(net, net.space.make(a), data, tc, device=str(here)) for a in archs))
    return {
        **cost,
        "one_by_one_train_seconds": round(one_by_one, 1),
        "ratio": round(one_by_one / supernet_s, 2) if supernet_s > 0 else None,
        "how": f"super-network: measured epoch times on {trained_on}; one by one: timed stand-alone training steps "
        f"of each exported sub-network on {here} times the same number of steps",
    }


def stage_report(out: Path, cfg: RunConfig, quiet: bool = False, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    from lightnas.io import write_json
    from lightnas.report import summarise, terminal_table, write_csv
    from lightnas.reporting.run import load_run
    from lightnas.reporting.run_page import write_report

    view = load_run(out, cfg)  # everything the report shows is read before anything is written
    cost_file = out / "training_cost.json"
    cost = json.loads(cost_file.read_text()) if cost_file.is_file() else None
    view.summary = {**view.summary, **summarise(view.cards, view.n_records, cost, view.unmet_targets, extra)}
    write_csv(view.cards, out / "pareto.csv")
    write_json(view.summary, out / "summary.json")
    write_report(view, out / "report.html")
    summary = view.summary
    if not quiet:
        print(terminal_table(view.cards))
        print(summary["headline"])
        print(f"report: {out / 'report.html'}")
    return summary


def run_all(
    out: Path, explicit: dict[str, Any] | None = None, resume: bool = False, force: bool = False, quiet: bool = False
) -> dict[str, Any]:
    """The main job. ``explicit`` holds the options given (dotted paths of
    :class:`RunConfig`). Returns the summary (also in ``summary.json``). The
    folder's lock is held throughout (:mod:`lightnas.lock`): a second writer is refused."""
    from lightnas.lock import writing

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
        return stage_report(out, cfg, quiet, extra=times)
