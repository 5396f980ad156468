import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_reference_summary_counts_only_complete_seeds(load_bench):
    bench = load_bench("fidelity_reference")
    nets = [{"i": i, "key": f"k{i}"} for i in range(4)]
    runs = [{"i": i, "seed": s, "acc": 80.0 + i + (0.5 * s if i == 3 else 0)} for s in (0, 1) for i in range(4)]
    runs += [{"i": 0, "seed": 2, "acc": 99.0}]  # seed 2 unfinished: left out
    out = bench.summary({"nets": nets, "runs": runs})
    assert set(out) >= {"acc_seed0", "acc_seed1", "tau_seed0_seed1", "seed_to_seed_tau", "acc_mean"}
    assert "acc_seed2" not in out
    assert out["tau_seed0_seed1"] == pytest.approx(1.0)
    assert out["acc_mean"] == [80.0, 81.0, 82.0, 83.25]
    assert out["spread"] == pytest.approx(3.25)


def test_the_cached_reference_holds_three_seeds_and_its_own_summary(load_bench):
    bench = load_bench("fidelity_reference")
    ref = json.loads((ROOT / "bench" / "results" / "fidelity-reference-60k-20ep.json").read_text())
    fresh = bench.summary(ref)
    assert sorted(k for k in fresh if k.startswith("acc_seed")) == ["acc_seed0", "acc_seed1", "acc_seed2"]
    assert ref["summary"].keys() == fresh.keys()
    for key, value in fresh.items():
        assert ref["summary"][key] == pytest.approx(value), key
    assert fresh["seed_to_seed_tau"] > 0.7  # capacity, not seed noise, orders the 12
