"""Super-network training on several processes (gloo on the CPU)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from lightnas.artefacts import TrainJob
from lightnas.config import TrainConfig
from lightnas.data import load_dataset
from lightnas.errors import LightnasError
from lightnas.supernets import create_supernet
from lightnas.tensors import safe_load
from lightnas.train.checkpoint import read_checkpoint
from lightnas.train.distributed import DistributedJob, train_distributed
from lightnas.train.trainer import train_supernet


def _job(tmp_path: Path, cfg: TrainConfig, netcfg: dict, name: str, data: str = "digits") -> DistributedJob:
    return DistributedJob(TrainJob("mobilenet", netcfg, cfg, threads=1), data, 0, tmp_path / name, progress=False)


def test_two_processes_take_the_steps_of_one(tmp_path):
    """Same global batch: the weights after an epoch agree within float32 rounding, dropout included."""
    full = load_dataset("digits", 0)  # a 300-image subset keeps the test short
    np.savez(tmp_path / "d.npz", x=full.x_train[:300], y=full.y_train[:300])
    data = load_dataset(str(tmp_path / "d.npz"), 0)
    netcfg = create_supernet("mobilenet", data.input_shape, data.n_classes, dropout=0.3).config.to_dict()
    cfg = TrainConfig(epochs=1, batch_size=96, optimizer="sgd", lr=0.05, ema_decay=0.0, recipe="sandwich")
    one = train_supernet(TrainJob("mobilenet", netcfg, cfg, threads=1), data, tmp_path / "one.pt", progress=False)
    train_distributed(2, _job(tmp_path, cfg, netcfg, "two.pt", data=str(tmp_path / "d.npz")))
    two = read_checkpoint(tmp_path / "two.pt")
    assert two.history[0]["settings"]["processes"] == 2 and two.epoch == 1
    keys = [k for k, v in one.state_dict.items() if v.is_floating_point()]
    diff = sum(float((one.state_dict[k] - two.state_dict[k]).double().norm() ** 2) for k in keys) ** 0.5
    norm = sum(float(one.state_dict[k].double().norm() ** 2) for k in keys) ** 0.5
    assert diff / norm < 1e-3, diff / norm
    # and not trivially: training moved the weights far more than the two runs differ
    from lightnas.train.trainer import SupernetTrainer

    start = SupernetTrainer(TrainJob("mobilenet", netcfg, cfg, threads=1), data).net.state_dict()
    moved = sum(float((one.state_dict[k] - start[k]).double().norm() ** 2) for k in keys) ** 0.5
    assert moved > 100 * diff, (moved, diff)


def test_a_failing_process_is_a_one_line_error(tmp_path):
    data = load_dataset("digits", 0)
    netcfg = create_supernet("mobilenet", data.input_shape, data.n_classes).config.to_dict()
    with pytest.raises(LightnasError, match="does not exist"):
        train_distributed(2, _job(tmp_path, TrainConfig(epochs=1), netcfg, "s.pt", data="/nonexistent.npz"))


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find the training processes")
def test_killed_process_stops_the_run_and_it_resumes(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "lightnas.cli", "train", str(out), "--data", "digits", "--epochs", "3"]
    proc = subprocess.Popen([*cmd, "--nproc", "2", "--quiet"], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not (out / "supernet.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert (out / "supernet.pt").exists(), proc.stderr.read() if proc.poll() is not None else "no checkpoint"
    workers = [p for p in _children(proc.pid) if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text()]
    assert workers
    os.kill(workers[-1], signal.SIGKILL)
    err = proc.communicate(timeout=300)[1]
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "stopped" in lines[0], err
    assert safe_load(out / "supernet.pt")["epoch"] >= 1
    res = subprocess.run([*cmd, "--quiet"], capture_output=True, text=True, timeout=600)  # one process resumes it
    assert res.returncode == 0, res.stderr
    state = read_checkpoint(out / "supernet.pt")
    assert state.epoch == 3 and len(state.history) == 3
    assert torch.isfinite(next(iter(state.state_dict.values()))).all()
