"""--executor ray on a local cluster: the same evaluations as the local
executor (asynchronous: the same budget, none twice), latency on the node holding the target resource, a worker killed
with SIGKILL replaced without losing or repeating a candidate."""

import os
import shutil
import signal
from pathlib import Path

import pytest

from lightnas.cli import main
from lightnas.config import RunConfig
from lightnas.store import OK, Store

ray = pytest.importorskip("ray")


def evaluations(out: Path) -> dict[str, dict]:
    cfg = RunConfig.from_file(out / "config.json")
    with Store(out / "lightnas.db") as store:
        records = store.records(cfg.study(), OK)
    keys = [r.arch_key for r in records]
    assert len(keys) == len(set(keys))  # none evaluated twice
    return {r.arch_key: r.metrics for r in records}


def test_ray_search_equals_local(finished_run, tmp_path):
    runs = {}
    variants = (
        ("local", []),
        ("ray", ["--executor", "ray", "--workers", "2", "--target-resource", "tgt"]),
        ("async", ["--executor", "ray", "--workers", "2", "--schedule", "async"]),
    )
    for name, extra in variants:
        out = tmp_path / name
        shutil.copytree(finished_run, out)
        assert main(["search", str(out), "--budget", "10", "--quiet", *extra]) == 0
        runs[name] = evaluations(out)
    assert not ray.is_initialized() and not (Path.home() / ".ray" / "auth_token").exists()
    assert len(runs["ray"]) == 10 and runs["ray"].keys() == runs["local"].keys()
    for key, m in runs["ray"].items():  # accuracy computed by the workers, latency by the target's actor
        assert m["accuracy"] == runs["local"][key]["accuracy"] and m["latency_ms"] > 0
    assert len(runs["async"]) == 10  # asynchronous: the same budget, none twice, its own candidates
    for key in runs["async"].keys() & runs["local"].keys():
        assert runs["async"][key]["accuracy"] == runs["local"][key]["accuracy"]


@pytest.mark.slow
def test_killed_worker_is_replaced(finished_run):
    from lightnas.context import run_evaluator, trained, worker_evaluator
    from lightnas.evaluate.ray_pool import RayPool

    cfg = RunConfig.from_file(finished_run / "config.json")
    net, _, data = trained(finished_run, cfg)
    space = net.space
    archs = list({a.key: a for a in (space.scaled(t / 7) for t in range(8))}.values())
    pool = RayPool(run_evaluator(finished_run, cfg, net, data), finished_run, cfg, worker_evaluator, workers=2)
    try:
        victim = pool.pids()[0]
        seen = []
        for i, metrics, _ in pool.evaluate_many(archs):
            if not seen:
                os.kill(victim, signal.SIGKILL)
            seen.append(i)
            assert 0 <= metrics["accuracy"] <= 100
        assert sorted(seen) == list(range(len(archs)))  # every candidate once, none lost
        assert pool.retries >= 1 and victim not in pool.pids()
    finally:
        pool.close()
