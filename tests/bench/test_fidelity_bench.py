import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "fidelity.py"


@pytest.mark.slow
def test_fidelity_bench_prints_consistent_figures_and_keeps_the_baselines(tmp_path):
    cache = tmp_path / "alone.json"
    cmd = [sys.executable, str(BENCH), "--json", "--data", "digits", "--epochs", "1", "--n-subnets", "3"]
    cmd += ["--cache", str(cache), "--threads", "1"]
    res = subprocess.run([*cmd, "--variants", "spread"], capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["n_subnets"] == 3 and out["variants"][0]["variant"] == "spread"
    row = out["variants"][0]
    gap = np.array(out["alone"]["accuracy"]) - np.array(row["inherited"])
    assert row["mean_gap"] == pytest.approx(gap.mean()) and row["worst_gap"] == pytest.approx(gap.max())
    assert len(json.loads(cache.read_text())) == 3
    # a second variant reuses the stand-alone results: the same reference
    res = subprocess.run([*cmd, "--variants", "sandwich@1"], capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr
    again = json.loads(res.stdout.strip().splitlines()[-1])
    assert again["alone"]["accuracy"] == out["alone"]["accuracy"]


def test_a_variants_fields_take_the_type_of_the_training_setting(load_bench):
    bench = load_bench("fidelity")
    assert bench.field_value("augment", "false") is False and bench.field_value("augment", "true") is True
    assert bench.field_value("n_random", "1") == 1 and bench.field_value("spread_power", "0.5") == 0.5
    with pytest.raises(SystemExit, match="unknown TrainConfig field 'no_such'"):
        bench.field_value("no_such", "1")
    cfg, net = bench.variant_config("spread@1:3+augment=false+net.kernel_transform=false", 8)
    assert (cfg.recipe, cfg.n_random, cfg.epochs, cfg.augment) == ("spread", 1, 3, False)
    assert net == {"kernel_transform": False}
