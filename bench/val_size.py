"""How many validation images a front needs: validation splits of several sizes simulated on a finished run.

For every sub-network the run's search evaluated (its ``lightnas.db``), the
trained super-network's prediction on each official test image (BatchNorm
calibrated as the search calibrates). Each round splits the test images in
two halves at random: a validation split of ``m`` images drawn from the first
half picks the front (accuracy against the search's latency) and the family
the export would pick (``spread_indices``, ``--max-export``), scored on the
second half. Printed per size, the mean over ``--rounds`` rounds of:

- ``tau``: Kendall tau between the validation and the held-out accuracies of
  all evaluated sub-networks (how well the split ranks them);
- ``models``, ``span``: the exported family's size and latency span;
- ``best``: the family's best held-out accuracy;
- ``rising``: the share of neighbouring steps of the family whose held-out
  accuracy rises with latency, ``all_rising`` the share of rounds in which
  every step rises, ``gap`` the largest latency ratio between neighbours;

and, beside them, the same figures for the run's own validation split (the
family its export picked, scored on the whole test set).

With ``--calib-draws K`` every sub-network is also calibrated on K disjoint
blocks of training images (the search's first, then the next ones) and its
test accuracy compared across them: the standard deviation over the draws
(mean and largest over the sub-networks) and the Kendall tau between the
first two draws' accuracies, the noise a single calibration adds to the
validation split's.

With ``--margins 0,0.5,1`` the family is also drawn from a thinned front,
one export rule per margin ``c``: walking the front from its cheapest
model, a model joins only where its validation accuracy beats the last one
joined by ``c`` standard errors of an accuracy measured on that split
(``sqrt(p (1 - p) / m)``), then the even spread picks from those. It
measures what a front told apart from the split's noise costs in models,
span and neighbour gaps.

    python bench/val_size.py RUN [--sizes 1500,3000,5000] [--rounds 40] [--margins 0] [--calib-draws 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path

import numpy as np


def correct_matrix(run: Path, draw: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sub-networks x test images correct, each one's latency ms, its validation accuracy %);
    BatchNorm calibrated on the ``draw``-th block of ``CALIB_IMAGES`` training images (0: the search's)."""
    from lightnas.config import RunConfig
    from lightnas.context import trained
    from lightnas.tensors import CALIB_IMAGES, predict, to_tensor

    cfg = RunConfig.from_file(run / "config.json")
    net, _, data = trained(run, cfg)
    with sqlite3.connect(run / "lightnas.db") as con:
        rows = con.execute("SELECT arch, metrics FROM evaluations WHERE metrics IS NOT NULL").fetchall()
    metrics = [json.loads(m) for _, m in rows]
    calib = to_tensor(data.x_train[draw * CALIB_IMAGES : (draw + 1) * CALIB_IMAGES], data)
    test = to_tensor(data.x_test, data)
    correct = []
    for arch, _ in rows:
        net.set_active(net.space.make(json.loads(arch)))
        net.calibrate(calib)
        correct.append(predict(net, test).argmax(1).numpy() == data.y_test)
    lat = np.array([m["latency_ms"] for m in metrics])
    return np.array(correct), lat, np.array([m["accuracy"] for m in metrics])


def family(val: np.ndarray, lat: np.ndarray, k: int, margin: float = 0.0, m: int = 0) -> list[int]:
    """The indices the export would pick: the (val max, latency min) front,
    thinned by ``margin`` standard errors of an accuracy on ``m`` images (0:
    the export's rule), spread over log-latency."""
    from lightnas.search.pareto import nondominated_mask, spread_indices

    idx = np.flatnonzero(nondominated_mask(np.stack([-val, lat], 1)))
    idx = idx[np.argsort(lat[idx], kind="stable")]
    if margin > 0:
        kept = [int(idx[0])]
        for i in idx[1:]:
            p = val[kept[-1]] / 100
            if val[i] >= val[kept[-1]] + margin * 100 * np.sqrt(p * (1 - p) / m):
                kept.append(int(i))
        idx = np.array(kept)
    return [int(idx[j]) for j in spread_indices(lat[idx], k)]


def figures(
    val: np.ndarray, held: np.ndarray, lat: np.ndarray, k: int, margin: float = 0.0, m: int = 0
) -> dict[str, float]:
    from scipy.stats import kendalltau

    picked = family(val, lat, k, margin, m)
    acc, cost = held[picked], lat[picked]
    steps = np.diff(acc)
    return {
        "tau": float(kendalltau(val, held)[0]),
        "models": float(len(picked)),
        "span": float(cost[-1] / cost[0]),
        "gap": float((cost[1:] / cost[:-1]).max()) if len(cost) > 1 else 1.0,
        "best": float(acc.max()),
        "rising": float(np.mean(steps > 0)) if len(steps) else 1.0,
        "all_rising": float(np.all(steps > 0)),
    }


def calibration_noise(run: Path, correct: np.ndarray, draws: int) -> dict[str, float]:
    """Test accuracy (%) of every sub-network calibrated on ``draws`` disjoint blocks of training images."""
    from scipy.stats import kendalltau

    acc = np.stack([100 * correct.mean(1)] + [100 * correct_matrix(run, d)[0].mean(1) for d in range(1, draws)])
    std = acc.std(0, ddof=1)
    return {
        "draws": float(draws),
        "std_mean": float(std.mean()),
        "std_max": float(std.max()),
        "tau_between_draws": float(kendalltau(acc[0], acc[1])[0]),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", help="a finished run folder")
    ap.add_argument("--sizes", default="1500,3000,5000", help="validation sizes simulated (at most half the test set)")
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--max-export", type=int, default=8)
    ap.add_argument("--margins", default="0", help="front thinning margins, in standard errors (0: the export's rule)")
    ap.add_argument("--calib-draws", type=int, default=1, help="BatchNorm calibrations compared per sub-network")
    ap.add_argument("--json", default="", help="write the figures there too")
    args = ap.parse_args()
    from lightnas.tensors import setup_torch

    setup_torch()
    correct, lat, own_val = correct_matrix(Path(args.run))
    n = correct.shape[1]
    result = {"run": args.run, "subnetworks": len(lat), "test_images": n}
    result["own validation split"] = figures(own_val, 100 * correct.mean(1), lat, args.max_export)
    if args.calib_draws > 1:
        result["calibration draws"] = calibration_noise(Path(args.run), correct, args.calib_draws)
    rng = np.random.default_rng(0)
    margins = [float(c) for c in args.margins.split(",")]
    for m in (int(s) for s in args.sizes.split(",")):
        if m > n // 2:
            sys.exit(f"a validation size of {m} is more than half of the {n} test images")
        rounds: dict[float, list[dict[str, float]]] = {c: [] for c in margins}
        for _ in range(args.rounds):
            perm = rng.permutation(n)
            val_rows, held_rows = rng.choice(perm[: n // 2], m, replace=False), perm[n // 2 :]
            val, held = 100 * correct[:, val_rows].mean(1), 100 * correct[:, held_rows].mean(1)
            for c in margins:
                rounds[c].append(figures(val, held, lat, args.max_export, c, m))
        for c, rows in rounds.items():
            name = f"{m} validation images" + (f", margin {c:g}" if c else "")
            result[name] = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    for name, f in result.items():
        if isinstance(f, dict):
            print(f"{name}: " + ", ".join(f"{k} {v:.2f}" for k, v in f.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
