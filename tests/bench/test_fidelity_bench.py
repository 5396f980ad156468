import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "fidelity.py"


@pytest.mark.slow
def test_quick_fidelity_run_prints_the_figures_and_keeps_the_baselines(tmp_path):
    cache = tmp_path / "alone.json"
    cmd = [sys.executable, str(BENCH), "--quick", "--json", "--n-subnets", "3", "--cache", str(cache)]
    res = subprocess.run([*cmd, "--variants", "sandwich"], capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["n_subnets"] == 3 and out["variants"][0]["variant"] == "sandwich"
    for key in ("kendall_tau", "spearman", "mean_gap", "worst_gap"):
        assert isinstance(out[key], float)
    assert len(json.loads(cache.read_text())) == 3
    # a second variant reuses the stand-alone results: the same reference
    res = subprocess.run([*cmd, "--variants", "sorted@2"], capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr
    again = json.loads(res.stdout.strip().splitlines()[-1])
    assert [r["standalone"] for r in again["variants"][0]["rows"]] == [
        r["standalone"] for r in out["variants"][0]["rows"]
    ]
    assert again["standalone_train_seconds_total"] == out["standalone_train_seconds_total"]
