"""Quantization searched with the architecture, against float32-only and all-INT8 fronts.

For each trained run folder given (``--runs``: the CNN's and the Vision
Transformer's, each trained once with ``lightnas train DIR --supernet NAME``)
and each ``--batches`` size, a latency table of float32 and INT8 parts is
built in ONNX Runtime on 1 thread at that batch, and three searches of
``--budget`` evaluations run with the default strategy on the same
super-network, latency from that table (known to the strategy for every
candidate), accuracy as deployed (INT8 models run in ONNX Runtime on the
validation split):

- ``fp32``: the architecture only, every group in float32;
- ``int8``: the architecture only, every group in INT8;
- ``mixed``: architecture and precision per group (``--quantize int8``).

Every model on the three fronts (and the fully INT8 largest sub-network, the
SimQ-NAS baseline) is then measured in ONNX Runtime in one interleaved
measurement; with those latencies, prints per (network, batch) each front's
hypervolume (accuracy vs latency, normalised over the three fronts,
reference at the worst corner) and the latency ratio at equal accuracy
against the baseline. The batch-1 table is checked on ``--lut-samples``
random quantized sub-networks (measured twice). Per network, a fourth search
(mixed, accuracy vs model size) gives the size figure: the smallest model
within 0.5 points of the best float32 accuracy against that float32 model.
The INT8 models of the mixed fronts are exported (test accuracy in ONNX
Runtime on the whole test set, INT8 against float32); the evaluation cost of
INT8 and float32 candidates is compared with latency measured per candidate,
as a default run measures it.

    python bench/quant.py --runs CNN_DIR,VIT_DIR [--budget 60] [--batches 1,32] [--lut-samples 100]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


class Uniform:
    """An evaluator of the architecture alone, every group at one precision."""

    def __init__(self, evaluator: Any, net: Any, precision: str):
        self.evaluator, self.net, self.precision = evaluator, net, precision

    def full(self, arch: Any) -> Any:
        groups = self.net.net.precision_groups()
        return self.net.space.make({**dict(arch), **{f"q_{g}": self.precision for g in groups}})

    def evaluate_many(self, archs: list[Any]) -> Any:
        return self.evaluator.evaluate_many([self.full(a) for a in archs])

    def evaluate(self, arch: Any) -> dict[str, float]:
        return self.evaluator.evaluate(self.full(arch))

    def cheap_metrics(self, arch: Any) -> dict[str, float]:
        return self.evaluator.cheap_metrics(self.full(arch))

    def known_metrics(self, arch: Any) -> dict[str, float]:
        return self.evaluator.known_metrics(self.full(arch))

    def close(self) -> None:
        pass


def search(evaluator: Any, space: Any, objectives: list[Any], budget: int, name: str) -> list[Any]:
    from lightnas.search import Runner, SearchPlan, create_strategy
    from lightnas.store import Store

    strategy = create_strategy("lightnas", space, objectives, seed=1)
    with Store(":memory:") as store:
        return [
            t
            for t in Runner(strategy, evaluator, store, name, SearchPlan(budget), progress=False).run()
            if t.status == "ok"
        ]


def front(trials: list[Any], objectives: list[Any]) -> tuple[np.ndarray, list[Any]]:
    from lightnas.search.pareto import nondominated_mask

    F = np.array([[o.as_min(t.metrics[o.metric]) for o in objectives] for t in trials])
    mask = nondominated_mask(F)
    return F, [t for t, m in zip(trials, mask, strict=True) if m]


def main() -> int:
    from lightnas.config import RunConfig
    from lightnas.context import run_evaluator, trained
    from lightnas.evaluate.supernet import LatencySource, SupernetEvaluator
    from lightnas.export import ExportContext, export_subnet
    from lightnas.hardware.latency import measure_many
    from lightnas.hardware.lut import LatencyTable, check_table
    from lightnas.objectives import Objective
    from lightnas.search.pareto import hypervolume, nondominated_mask

    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", required=True, help="trained run folders, comma-separated")
    ap.add_argument("--budget", type=int, default=60)
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--lut-samples", type=int, default=100)
    ap.add_argument("--max-export", type=int, default=6)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    acc, lat, size = Objective("accuracy", "max"), Objective("latency_ms", "min"), Objective("bytes", "min")
    results: dict[str, Any] = {}
    for run in map(Path, args.runs.split(",")):
        cfg0 = RunConfig.from_file(run / "config.json").replace({"quantize.precision": "int8"})
        name = cfg0.supernet.name
        res: dict[str, Any] = {"batches": {}}
        exported: dict[str, Any] = {}
        table: Any = None
        net, state, data = trained(run, cfg0)
        for batch in map(int, args.batches.split(",")):
            t0 = time.perf_counter()
            table = LatencyTable.build(net, backend="onnxruntime", threads=1, batch=batch).bind(net)
            ev = SupernetEvaluator(net, data, LatencySource(batch=batch, lut=table), device=cfg0.device)
            base = net.net.space
            trials = {
                "fp32": search(Uniform(ev, net, "fp32"), base, [acc, lat], args.budget, "fp32"),
                "int8": search(Uniform(ev, net, "int8"), base, [acc, lat], args.budget, "int8"),
                "mixed": search(ev, net.space, [acc, lat], args.budget, "mixed"),
            }
            largest = Uniform(ev, net, "int8").full(base.largest())
            fronts = {
                k: [
                    (t.arch if k == "mixed" else Uniform(ev, net, k).full(t.arch), t.metrics["accuracy"])
                    for t in front(found, [acc, lat])[1]
                ]
                for k, found in trials.items()
            }
            ref_acc = ev.evaluate(largest)["accuracy"]
            # every front member and the baseline, measured together in ONNX Runtime
            archs = list(dict.fromkeys([largest, *(a for f in fronts.values() for a, _ in f)]))
            shape = tuple(net.config.input_shape)
            measured = dict(
                zip(
                    archs,
                    measure_many(
                        [(net.extract(a), shape) for a in archs], "onnxruntime", 1, min_seconds=30.0, batch=batch
                    ),
                    strict=True,
                )
            )
            F = {k: np.array([[-a_acc, measured[a]] for a, a_acc in f]) for k, f in fronts.items()}
            every = np.vstack(list(F.values()))
            lo, hi = every.min(axis=0), every.max(axis=0)
            hv = {k: hypervolume((v[nondominated_mask(v)] - lo) / (hi - lo), np.ones(2)) for k, v in F.items()}
            as_good = [(a, a_acc) for a, a_acc in fronts["mixed"] if a_acc >= ref_acc]
            fastest = min(as_good, key=lambda p: measured[p[0]]) if as_good else None
            ref_ms = measured[largest]
            res["batches"][batch] = {
                "hv": hv,
                "mixed_ge_both": bool(hv["mixed"] >= max(hv["fp32"], hv["int8"]) - 1e-12),
                "fronts": {
                    k: [{"key": a.key, "accuracy": a_acc, "latency_ms": measured[a]} for a, a_acc in f]
                    for k, f in fronts.items()
                },
                "int8_largest": {"accuracy": ref_acc, "latency_ms": ref_ms},
                "mixed_at_equal_accuracy": (
                    {"key": fastest[0].key, "accuracy": fastest[1], "latency_ms": measured[fastest[0]]}
                    if fastest
                    else None
                ),
                "speedup": ref_ms / measured[fastest[0]] if fastest else None,
                "seconds": round(time.perf_counter() - t0, 1),
            }
            r = res["batches"][batch]
            print(
                f"{name} batch {batch}: HV fp32 {hv['fp32']:.4f} int8 {hv['int8']:.4f} mixed {hv['mixed']:.4f} "
                f"(mixed >= both: {r['mixed_ge_both']}); INT8 largest {ref_acc:.2f}% {ref_ms:.4f} ms; "
                "mixed at >= that accuracy: "
                + (
                    f"{fastest[1]:.2f}% {measured[fastest[0]]:.4f} ms, {r['speedup']:.2f}x lower latency"
                    if fastest
                    else "none"
                )
                + f" [{r['seconds']} s]",
                flush=True,
            )
            for a, _ in fronts["mixed"]:
                if "int8" in net.policy(a).values():
                    exported.setdefault(a.key, (a, {"accuracy": dict(fronts["mixed"])[a]}))
            if batch == 1 and args.lut_samples:
                check = check_table(table, net, samples=args.lut_samples, seed=7)
                res["lut"] = {k: check[k] for k in ("samples", "within_10pct", "spearman", "remeasure_within_10pct")}
                print(
                    f"{name} INT8 latency table: {100 * check['within_10pct']:.0f}% of {check['samples']} random "
                    f"quantized sub-networks within ±10% (two measurements of each agree for "
                    f"{100 * check['remeasure_within_10pct']:.0f}%), Spearman {check['spearman']:.3f}",
                    flush=True,
                )
        # evaluation cost: cheap metrics + accuracy of the same sub-networks, float32 and INT8, fresh caches
        rng = np.random.default_rng(3)
        costs: dict[str, list[float]] = {"fp32": [], "int8": []}
        plain_cfg = cfg0.replace({"quantize.precision": ""})  # a float32 run's evaluator, as without --quantize
        fresh = {
            "fp32": run_evaluator(run, plain_cfg, trained(run, plain_cfg)[0], data),
            "int8": run_evaluator(run, cfg0, trained(run, cfg0)[0], data),
        }
        for _ in range(8):
            arch = net.net.space.sample(rng)
            for p, e in fresh.items():
                full = arch if p == "fp32" else Uniform(e, e.net, "int8").full(arch)
                t1 = time.perf_counter()
                e.cheap_metrics(full)
                e.evaluate(full)
                costs[p].append(time.perf_counter() - t1)
        res["evaluation_seconds"] = {p: float(np.median(v)) for p, v in costs.items()}
        ratio = res["evaluation_seconds"]["int8"] / res["evaluation_seconds"]["fp32"]
        print(
            f"{name} evaluation (median of 8, cheap metrics + accuracy): float32 "
            f"{res['evaluation_seconds']['fp32']:.2f} s, INT8 {res['evaluation_seconds']['int8']:.2f} s ({ratio:.2f}x)",
            flush=True,
        )
        # size: mixed search on accuracy vs bytes, against the best float32 model of that search's space
        ev = SupernetEvaluator(net, data, LatencySource(lut=table), device=cfg0.device)
        fp32_trials = search(Uniform(ev, net, "fp32"), net.net.space, [acc, size], args.budget, "fp32-size")
        mixed_trials = search(ev, net.space, [acc, size], args.budget, "mixed-size")
        best32 = max(fp32_trials, key=lambda t: t.metrics["accuracy"])
        near = [t for t in mixed_trials if t.metrics["accuracy"] >= best32.metrics["accuracy"] - 0.5]
        small = min(near, key=lambda t: t.metrics["bytes"]) if near else None
        res["size"] = {
            "best_fp32": {k: best32.metrics[k] for k in ("accuracy", "bytes")},
            "smallest_within_0.5": {k: small.metrics[k] for k in ("accuracy", "bytes")} if small else None,
            "ratio": best32.metrics["bytes"] / small.metrics["bytes"] if small else None,
        }
        print(
            f"{name} size: best float32 {best32.metrics['accuracy']:.2f}% {best32.metrics['bytes'] / 1e3:.0f} kB; "
            + (
                f"smallest within 0.5 points {small.metrics['accuracy']:.2f}% {small.metrics['bytes'] / 1e3:.0f} kB "
                f"({res['size']['ratio']:.2f}x smaller)"
                if small
                else "none within 0.5 points"
            ),
            flush=True,
        )
        for t in front(mixed_trials, [acc, size])[1]:
            if "int8" in net.policy(t.arch).values():
                exported.setdefault(t.arch.key, (t.arch, t.metrics))
        # INT8 accuracy of exported models: float32 vs INT8 on the whole test set
        ctx = ExportContext(state.supernet, state.config, data)
        gaps = []
        picks = sorted(exported.values(), key=lambda p: p[1]["accuracy"])
        step = max(1, len(picks) // args.max_export)
        with tempfile.TemporaryDirectory() as tmp:
            for arch, metrics in picks[::step][: args.max_export]:
                card = export_subnet(net, arch, Path(tmp), ctx, metrics)
                q = card.quantization
                if q and q.test_accuracy is not None and q.test_accuracy_fp32 is not None:
                    gaps.append(q.test_accuracy_fp32 - q.test_accuracy)
        res["int8_loss_points"] = {"n": len(gaps), "median": float(np.median(gaps)), "worst": float(max(gaps))}
        print(
            f"{name} INT8 accuracy loss of {len(gaps)} exported INT8 models (10k test, ONNX Runtime): "
            f"median {np.median(gaps):.2f}, worst {max(gaps):.2f} points",
            flush=True,
        )
        results[name] = res
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
