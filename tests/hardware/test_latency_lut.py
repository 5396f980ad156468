import json
import warnings

import numpy as np
import pytest
import torch

from lightnas.errors import LightnasError
from lightnas.hardware.cost import count_cost
from lightnas.hardware.latency import LATENCY_BACKENDS, Timing, measure_latency
from lightnas.hardware.lut import LatencyTable, check_table
from lightnas.supernets import create_supernet
from lightnas.supernets.mobilenet import StageSpec
from lightnas.testing import LatencyBackendTests


def small_net():
    return create_supernet(
        "mobilenet",
        input_shape=(1, 16, 16),
        n_classes=4,
        stages=(StageSpec(8, (1, 2), 2), StageSpec(12, (1, 2), 1)),
        kernels=(3, 5),
        expands=(2, 3),
        widths=(0.5, 1.0),
    )


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_measure_latency_reports_median_and_spread(backend):
    net = small_net()
    r = measure_latency(net.extract(net.space.largest()), (1, 16, 16), backend, threads=1, timing=Timing(repeats=10))
    # the 10th percentile sits at or below the median, both within the timed runs' range
    assert 0 < r["latency_ms"] <= r["latency_median_ms"] <= r["latency_mean_ms"] * 10
    assert r["latency_iqr_ms"] < r["latency_median_ms"] * 10
    assert r["backend"] == backend and r["threads"] == 1 and r["repeats"] >= 10


def test_measure_latency_bad_backend():
    with pytest.raises(LightnasError):
        measure_latency(torch.nn.Identity(), (1, 4, 4), "tensorflow")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_measure_latency_cuda_synchronises():
    net = small_net().extract(small_net().space.largest())
    r = measure_latency(net, (1, 16, 16), device="cuda", timing=Timing(repeats=10))
    assert r["device"] == "cuda" and r["latency_ms"] > 0
    # ONNX Runtime's CUDA provider returns its outputs to the host: a pass of
    # batch 512 takes longer than one of batch 1 (an unsynchronised run would not)
    big = measure_latency(net, (1, 16, 16), device="cuda", batch=512, timing=Timing(repeats=10))
    assert big["latency_ms"] > r["latency_ms"]


def test_cost_matches_analytic_count():
    conv = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1, bias=False), torch.nn.Flatten(), torch.nn.Linear(8 * 10 * 10, 5)
    )
    c = count_cost(conv, (3, 10, 10))
    assert c["macs"] == 8 * 3 * 9 * 100 + 800 * 5
    assert c["params"] == 8 * 27 + 800 * 5 + 5
    assert c["peak_act_bytes"] == (800 + 800) * 4  # flatten's input+output is the largest op
    assert c["bytes"] > c["params"] * 4


def test_lut_build_predict_save_load_check(tmp_path):
    torch.set_num_threads(1)
    net = small_net()
    table = LatencyTable.build(net, backend="torch", threads=1, calib_samples=6, window_s=1.0).bind(net)
    assert table.meta["n_parts"] == len(net.all_latency_parts())
    assert {"machine", "date", "input_shape"} <= set(table.meta)
    assert table.meta["machine"]["torch"] == torch.__version__
    rng = np.random.default_rng(0)
    archs = [net.space.sample(rng) for _ in range(10)]
    preds = [table.predict(a) for a in archs]
    assert all(p > 0 for p in preds)
    table.save(tmp_path / "lut.json")
    again = LatencyTable.load(tmp_path / "lut.json").bind(net)
    assert [again.predict(a) for a in archs] == pytest.approx(preds)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert again.check_compatible("torch", 1) == []
    with pytest.warns(UserWarning, match="backend"):
        again.check_compatible("onnxruntime", 1)
    res = check_table(again, net, samples=8, window_s=0.5)
    # the report is consistent with its own rows: the worst case's error bounds the mean error
    worst = max(abs(w["rel_error"]) for w in res["worst"])
    assert res["mean_abs_rel_error"] <= worst + 1e-12
    assert res["within_10pct"] == (1.0 if worst <= 0.10 else res["within_10pct"]) and res["samples"] == 8


def test_lut_refuses_other_supernet_and_bad_files(tmp_path):
    net = small_net()
    table = LatencyTable.build(net, threads=1, calib_samples=3, window_s=0.5)
    with pytest.raises(LightnasError, match="different super-network"):
        table.bind(create_supernet("mobilenet"))
    (tmp_path / "x.json").write_text(json.dumps({"parts": {}}))
    with pytest.raises(LightnasError, match="not a lightnas latency table"):
        LatencyTable.load(tmp_path / "x.json")


def test_gauged_latency_waits_out_a_slow_spell(monkeypatch):
    """A spell that slows every run (the probe's too) for 0.6 s: the gauged
    measurement keeps a window after it; one ungauged window inside it does
    not. A spell longer than the retries is counted at the probe's quiet speed."""
    import time

    from lightnas.hardware import latency

    spell_until = [0.0]

    def fake_backend(model, input_shape, threads, batch, device):
        cost_s = 2e-4 * sum(p.numel() > 100 for p in model.parameters())  # the probe and the model differ

        def run() -> None:
            slow = 2.0 if time.perf_counter() < spell_until[0] else 1.0
            end = time.perf_counter() + cost_s * slow
            while time.perf_counter() < end:
                pass

        return run

    monkeypatch.setitem(latency.LATENCY_BACKENDS._items, "fake", fake_backend)
    monkeypatch.setattr(latency, "_PROBES", {})
    model = torch.nn.Sequential(torch.nn.Linear(200, 200), torch.nn.Linear(200, 200))
    quiet = measure_latency(model, (1, 4, 4), "fake", timing=Timing(repeats=10, min_seconds=0.0))
    assert quiet["windows"] == 1 and quiet["probe_slowdown"] < 1.1
    spell_until[0] = time.perf_counter() + 0.6
    plain = measure_latency(model, (1, 4, 4), "fake", timing=Timing(repeats=10, min_seconds=0.0, gauge=False))
    gauged = measure_latency(model, (1, 4, 4), "fake", timing=Timing(repeats=10, min_seconds=0.0, pause_s=0.2))
    assert plain["latency_ms"] > 1.7 * quiet["latency_ms"]  # the spell, taken for the model's speed
    assert gauged["windows"] > 1 and gauged["latency_ms"] < 1.2 * quiet["latency_ms"], gauged
    assert not gauged["scaled_to_quiet"]
    spell_until[0] = time.perf_counter() + 30.0  # longer than the retries: timed slow, counted at quiet speed
    long = measure_latency(
        model, (1, 4, 4), "fake", timing=Timing(repeats=10, min_seconds=0.0, retries=1, pause_s=0.01)
    )
    assert long["scaled_to_quiet"] and long["probe_slowdown"] > 1.7
    assert abs(long["latency_ms"] / quiet["latency_ms"] - 1) < 0.2


# every registered latency backend passes the contract plug-in backends are held to
for _name in LATENCY_BACKENDS.names():
    globals()[f"TestBackend_{_name}"] = type(f"TestBackend_{_name}", (LatencyBackendTests,), {"backend": _name})
