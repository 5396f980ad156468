"""--device (where training and evaluation run) and --target (where latency is measured).

The CUDA tests skip cleanly on a machine without a GPU; on one they run the
GPU paths end to end (training, calibration, evaluation, fine-tuning, CUDA-event
latency) against the CPU's results.
"""

import json
import math
import subprocess
import sys

import pytest
import torch

from lightnas.artefacts import TrainJob
from lightnas.config import RunConfig, TrainConfig
from lightnas.errors import LightnasError
from lightnas.train.device import resolve_device

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU here")


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "lightnas.cli", *args], capture_output=True, text=True, timeout=900)


@pytest.mark.parametrize("text", ["gpu", "cuda:x", "cuda:", "CPU", ""])
def test_malformed_device_names_are_refused(text):
    with pytest.raises(LightnasError, match="--device"):
        RunConfig(device=text)
    with pytest.raises(LightnasError, match="--device"):
        resolve_device(text)


def test_target_is_a_device_that_serves():
    with pytest.raises(LightnasError, match="--target"):
        RunConfig.from_dict({"latency": {"target": "auto"}})
    assert RunConfig.from_dict({"latency": {"target": "cuda:1"}}).latency.target == "cuda:1"
    # the search definition changes with the target, the training device does not enter it
    assert RunConfig().study() != RunConfig.from_dict({"latency": {"target": "cuda"}}).study()
    assert RunConfig().study() == RunConfig(device="cpu").study()


def test_auto_is_the_cpu_without_a_gpu():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here")
def test_asking_for_a_missing_gpu_is_a_one_line_error(tmp_path):
    res = run_cli("run", "--data", "digits", "--device", "cuda", "--epochs", "1", "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "no GPU" in lines[0], res.stderr
    assert not (tmp_path / "o").exists()  # refused before anything was written


def test_checkpoint_records_where_it_trained(tmp_path):
    from lightnas.data import load_dataset
    from lightnas.train.trainer import train_supernet

    data = load_dataset("digits", 0)
    job = TrainJob("mobilenet", _config(data), TrainConfig(epochs=1, batch_size=512, recipe="sandwich"))
    state = train_supernet(job, data, tmp_path / "s.pt", progress=False)
    settings = state.history[0]["settings"]
    assert settings["device"] == "cpu" and settings["memory_format"] == "channels_last"


def test_settings_trial_keeps_the_fastest_leaves_no_trace_and_resumes_alike(tmp_path, monkeypatch):
    import numpy as np

    import lightnas.train.trainer as tr
    from lightnas.data import load_dataset

    full = load_dataset("digits", 0)  # 300 images and small batches: bfloat16 is slow on this CPU
    np.savez(tmp_path / "d.npz", x=full.x_train[:300], y=full.y_train[:300])
    data = load_dataset(str(tmp_path / "d.npz"), 0)
    cfg = TrainConfig(epochs=2, batch_size=32, recipe="sandwich")
    plain = tr.SupernetTrainer(TrainJob("mobilenet", _config(data), cfg), data)
    assert plain.settings["precision"] == "float32" and not plain.autocast  # the CPU's one candidate
    fp32 = {"memory_format": "channels_last", "precision": "float32"}
    bf16 = {"memory_format": "contiguous", "precision": "bfloat16"}
    monkeypatch.setattr(tr, "training_settings", lambda dev: [fp32, bf16])
    tried = tr.SupernetTrainer(TrainJob("mobilenet", _config(data), cfg), data)
    ms = tried.settings["step_ms"]
    assert set(ms) == {"channels_last/float32", "contiguous/bfloat16"}
    assert f"{tried.settings['memory_format']}/{tried.settings['precision']}" == min(ms, key=ms.get)
    assert tried.autocast == (tried.settings["precision"] == "bfloat16")
    for k, v in plain.net.state_dict().items():  # the trial's steps left no trace
        assert torch.equal(v, tried.net.state_dict()[k]), k

    monkeypatch.setattr(tr, "training_settings", lambda dev: [bf16])
    first = tr.SupernetTrainer(TrainJob("mobilenet", _config(data), cfg), data)
    first.end_epoch(0, first.train_epoch(0))  # trains under bfloat16 autocast
    assert math.isfinite(first.ckpt.history[0]["loss"])
    first.save(tmp_path / "s.pt")
    monkeypatch.setattr(tr, "training_settings", lambda dev: [fp32])
    again = tr.SupernetTrainer(TrainJob("mobilenet", _config(data), cfg), data)
    again.resume(tmp_path / "s.pt")  # the same device: the recorded settings, not a new choice
    assert again.autocast and again.settings["precision"] == "bfloat16"
    assert again.memory_format == torch.contiguous_format


def _config(data):
    from lightnas.supernets import create_supernet

    return create_supernet("mobilenet", data.input_shape, data.n_classes).config.to_dict()


@cuda
def test_training_on_a_gpu_matches_the_cpu_and_loads_anywhere(tmp_path):
    from lightnas.data import load_dataset
    from lightnas.train.checkpoint import load_supernet
    from lightnas.train.trainer import train_supernet

    data = load_dataset("digits", 0)
    cfg = TrainConfig(epochs=2, batch_size=64)
    accs = {}
    for dev in ("cpu", "cuda"):
        job = TrainJob("mobilenet", _config(data), cfg, device=dev)
        state = train_supernet(job, data, tmp_path / f"{dev}.pt", progress=False)
        accs[dev] = state.history[-1]["val_largest"]
        settings = state.history[-1]["settings"]
        assert settings["device"].startswith(dev)
        assert settings["memory_format"] in ("channels_last", "contiguous")
        assert settings["precision"] in ("float32", "bfloat16")
        if dev == "cuda":  # every candidate timed, the fastest kept
            ms = settings["step_ms"]
            assert len(ms) == (4 if torch.cuda.is_bf16_supported() else 2)
            assert f"{settings['memory_format']}/{settings['precision']}" == min(ms, key=ms.get)
    net, _ = load_supernet(tmp_path / "cuda.pt")  # a GPU checkpoint loads on the CPU
    assert next(net.parameters()).device.type == "cpu"
    assert accs["cuda"] > 50 and abs(accs["cuda"] - accs["cpu"]) < 8, accs


@cuda
def test_gpu_checkpoint_resumes_on_the_gpu_and_on_the_cpu(tmp_path):
    from lightnas.data import load_dataset
    from lightnas.train.trainer import SupernetTrainer

    data = load_dataset("digits", 0)
    cfg, ck = TrainConfig(epochs=2), tmp_path / "s.pt"
    first = SupernetTrainer(TrainJob("mobilenet", _config(data), cfg, device="cuda"), data)
    first.end_epoch(0, first.train_epoch(0))  # killed after its first epoch
    first.save(ck)
    for dev in ("cuda", "cpu"):
        state = SupernetTrainer(TrainJob("mobilenet", _config(data), cfg, device=dev), data).run(ck, progress=False)
        assert state.epoch == 2 and len(state.history) == 2
        assert state.history[1]["settings"]["device"].startswith(dev)
        ck.unlink()
        first.save(ck)


@cuda
def test_gpu_evaluation_agrees_with_the_cpu():
    from lightnas.data import load_dataset
    from lightnas.evaluate.supernet import SupernetEvaluator
    from lightnas.supernets import create_supernet

    data = load_dataset("digits", 0)
    net = create_supernet("mobilenet", data.input_shape, data.n_classes)
    arch = net.space.sample(__import__("numpy").random.default_rng(0))
    cpu = SupernetEvaluator(net, data, device="cpu").evaluate(arch)["accuracy"]
    gpu_eval = SupernetEvaluator(net, data, device="cuda")
    assert abs(gpu_eval.evaluate(arch)["accuracy"] - cpu) <= 1.0
    assert gpu_eval.cheap_metrics(arch)["latency_ms"] > 0  # latency of the deployed CPU module


@cuda
def test_cuda_latency_is_timed_by_events():
    from lightnas.hardware.latency import measure_latency
    from lightnas.supernets import create_supernet

    net = create_supernet("mobilenet", (1, 28, 28), 10)
    plain = net.extract(net.space.largest())
    lat = measure_latency(plain, (1, 28, 28), "torch", device="cuda")
    assert lat["device"] == "cuda" and lat["latency_ms"] > 0
    # each pass reports its own CUDA-event time, and the call waits for it: the
    # event time of a long pass (batch 256) lies within the wall clock around the call
    import time

    from lightnas.hardware.latency import LATENCY_BACKENDS

    run = LATENCY_BACKENDS.get("torch")(plain, (1, 28, 28), 1, 256, "cuda")
    run()
    t0 = time.perf_counter()
    event_ms = run()
    wall_ms = (time.perf_counter() - t0) * 1e3
    assert isinstance(event_ms, float) and 0 < event_ms <= wall_ms
    assert next(plain.parameters()).device.type == "cpu"  # the caller's module stays where it was


@cuda
def test_finetune_on_a_gpu_returns_a_cpu_model():
    from lightnas.data import load_dataset
    from lightnas.supernets import create_supernet
    from lightnas.train.plain import finetune

    data = load_dataset("digits", 0)
    net = create_supernet("mobilenet", data.input_shape, data.n_classes)
    teacher = net.extract(net.space.largest())
    student = net.extract(net.space.smallest())
    history = finetune(student, teacher, data, 1, progress=False, device="cuda")
    assert len(history) == 2 and next(student.parameters()).device.type == "cpu"


@cuda
def test_run_on_a_gpu_end_to_end(tmp_path):
    out = tmp_path / "run"
    res = run_cli(
        "run", "--data", "digits", "--device", "cuda", "--epochs", "2", "--budget", "8", "--out", str(out), "--quiet"
    )
    assert res.returncode == 0, res.stderr
    cards = [json.loads(p.read_text()) for p in (out / "models").glob("*/card.json")]
    assert cards and all(c["verification"]["onnx_max_abs_diff"] <= 1e-4 for c in cards)
    assert all(c["latency"]["device"] == "cpu" for c in cards)  # trained on the GPU, searched for the CPU
