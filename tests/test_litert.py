"""LiteRT: the .tflite conversion equals PyTorch, the backend's contract, the arena planner, the export's files."""

import sys

import numpy as np
import pytest
import torch
from torch import nn

from lightnas.errors import LightnasError
from lightnas.litert.arena import Buffer, c_array, live_lower_bound, memory, plan_arena
from lightnas.supernets import create_supernet
from lightnas.testing import LatencyBackendTests
from lightnas.testing.supernets import trained_like

pytest.importorskip("ai_edge_litert")

from lightnas.litert.runtime import interpreter, litert_logits, tflite_bytes  # noqa: E402

torch.set_flush_denormal(True)
MODELS = "examples.user_models"
CLI = [sys.executable, "-m", "lightnas.cli", "run", "--data", "digits", "--quiet"]


class TestLiteRTBackend(LatencyBackendTests):
    backend = "litert"


class TestLiteRTInt8Backend(LatencyBackendTests):
    backend = "litert-int8"


@pytest.mark.parametrize(
    "name, shape, options",
    [
        ("mobilenet", (1, 28, 28), {}),
        ("mobilenet", (3, 32, 32), {}),
        ("vit", (1, 28, 28), {}),
        ("hybrid", (3, 32, 32), {}),
        ("elastic", (1, 28, 28), {"model": f"{MODELS}:concat_cnn_tiny"}),
        ("elastic", (1, 28, 28), {"model": f"{MODELS}:resnet18_tiny"}),
        ("elastic", (1, 28, 28), {"model": f"{MODELS}:mobilenet_v2_tiny"}),
    ],
)
def test_tflite_computes_what_pytorch_computes(name, shape, options):
    """Stride-2 paddings, depthwise kernels, residual additions, concatenations,
    a squeeze-excitation gate, flattening heads, attention (layer norms, head
    splits, products of activations, GELU): logits within 1e-4, at batch 1 and 5."""
    torch.manual_seed(0)
    net = trained_like(create_supernet(name, shape, 10, **options))
    rng = np.random.default_rng(0)
    for arch in [net.space.smallest(), net.space.largest(), net.space.sample(rng)]:
        s = net.input_shape_for(arch)
        plain = net.extract(arch).eval()
        interp = interpreter(tflite_bytes(plain, s), 1)
        for n in (1, 5):
            x = torch.randn(n, *s)
            with torch.no_grad():
                ref = plain(x).numpy()
            assert np.abs(litert_logits(interp, x.numpy()) - ref).max() <= 1e-4


def test_activations_and_pools_translate():
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, 2, 1),
        nn.Hardswish(),
        nn.MaxPool2d(3, 2, 1),
        nn.Conv2d(8, 8, 3, 1, 1, groups=8),
        nn.ReLU6(),
        nn.Hardsigmoid(),
        nn.AvgPool2d(2),
        nn.Sigmoid(),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 5),
    ).eval()
    x = torch.randn(3, 3, 32, 32)
    out = litert_logits(interpreter(tflite_bytes(model, (3, 32, 32)), 1), x.numpy())
    with torch.no_grad():
        assert np.abs(out - model(x).numpy()).max() <= 1e-5


def test_an_operator_it_does_not_write_is_one_line():
    upsample = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Upsample(scale_factor=2)).eval()
    with pytest.raises(LightnasError, match="does not support the ONNX operator Resize") as info:
        tflite_bytes(upsample, (1, 8, 8))
    assert "\n" not in str(info.value)
    grouped = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1, groups=2)).eval()
    with pytest.raises(LightnasError, match="grouped convolutions"):
        tflite_bytes(grouped, (4, 8, 8))


def test_the_planner_finds_the_known_optimum_of_hand_built_graphs():
    # a chain: each tensor lives from its producer to its reader; the arena is the largest neighbouring pair
    chain = [Buffer(100, 0, 1), Buffer(300, 1, 2), Buffer(50, 2, 3), Buffer(200, 3, 4), Buffer(10, 4, 4)]
    assert live_lower_bound(chain) == 400 and plan_arena(chain) == 400
    # a residual block: the skip (40) lives across the branch (100 then 60), then the sum (40)
    residual = [Buffer(40, 0, 3), Buffer(100, 1, 2), Buffer(60, 2, 3), Buffer(40, 3, 3)]
    assert live_lower_bound(residual) == 200 and plan_arena(residual) == 200
    # two tensors never alive together share an offset
    assert plan_arena([Buffer(64, 0, 0), Buffer(64, 1, 1)]) == 64
    assert plan_arena([]) == live_lower_bound([]) == 0


def test_memory_of_a_real_graph_is_never_below_the_live_bound_and_the_c_array_holds_the_file():
    net = trained_like(create_supernet("mobilenet", (1, 28, 28), 10))
    tfl = tflite_bytes(net.extract(net.space.largest()).eval(), (1, 28, 28))
    mem = memory(tfl)
    assert mem["sram_lower_bound_bytes"] <= mem["sram_bytes"] and mem["flash_bytes"] == len(tfl)
    assert mem["sram_lower_bound_bytes"] >= 2 * 28 * 28 * 4  # the input and the stem's output at least
    source, header = c_array(tfl)
    body = source.split("{", 1)[1].rsplit("}", 1)[0]
    assert bytes(int(v, 16) for v in body.replace("\n", "").split(",")) == tfl
    assert f"g_model_len = {len(tfl)};" in source and "extern const unsigned char g_model[];" in header


def test_without_the_runtime_the_error_names_the_extra(monkeypatch):
    import sys

    from lightnas.litert.flatbuffer import litert

    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
    with pytest.raises(LightnasError, match=r"pip install 'lightnas\[litert\]'"):
        litert()


@pytest.mark.slow
def test_a_run_under_microcontroller_budgets_exports_only_models_that_fit(tmp_path):
    """``--max-sram-kb``/``--max-flash-kb`` bound the INT8 ``.tflite``'s arena and
    file; every exported model fits and ships float32 and INT8 ``.tflite`` with
    a C array."""
    import json
    import sqlite3
    import subprocess

    out = tmp_path / "run"
    budget = ["--max-sram-kb", "12", "--max-flash-kb", "100"]
    job = [*CLI, "--epochs", "1", "--budget", "6", "--max-export", "2", *budget, "--out", str(out)]
    res = subprocess.run(job, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    with sqlite3.connect(out / "lightnas.db") as con:
        rows = [json.loads(m) for (m,) in con.execute("SELECT metrics FROM evaluations")]
    assert any(r["sram_bytes"] > 12 * 1024 for r in rows)  # the budget binds: some candidates did not fit
    for folder in (out / "models").glob("net-*"):
        card = json.loads((folder / "card.json").read_text())["litert"]
        assert card["sram_bytes"] <= 12 * 1024 and card["flash_bytes"] <= 100 * 1024
        assert card["sram_lower_bound_bytes"] <= card["sram_bytes"] and card["max_abs_diff"] <= 1e-4
        assert (folder / "model.int8.tflite").stat().st_size == card["flash_bytes"]
        assert {"model.tflite", "model_data.cc", "model_data.h"} <= {p.name for p in folder.iterdir()}


def test_a_microcontroller_budget_no_sub_network_meets_is_refused_before_training(tmp_path):
    import subprocess

    job = [*CLI, "--max-sram-kb", "1", "--out", str(tmp_path / "no")]
    refused = subprocess.run(job, capture_output=True, text=True)
    assert refused.returncode == 2 and len(refused.stderr.splitlines()) == 1
    assert "impossible constraint sram_bytes <= 1024" in refused.stderr
    assert not (tmp_path / "no").exists()


def test_the_evaluator_prices_the_int8_model_a_microcontroller_runs():
    from lightnas.data import load_dataset
    from lightnas.evaluate.supernet import LatencySource, SupernetEvaluator
    from lightnas.litert.arena import memory
    from lightnas.litert.quantize import structural_int8

    data = load_dataset("digits", 0)
    net = trained_like(create_supernet("mobilenet", data.input_shape, data.n_classes))
    ev = SupernetEvaluator(net, data, LatencySource(mcu=True))
    arch = net.space.largest()
    got = ev.cheap_metrics(arch)
    q8 = structural_int8(tflite_bytes(net.extract(arch).eval(), data.input_shape), data.input_shape)
    assert got["sram_bytes"] == memory(q8)["sram_bytes"] and got["flash_bytes"] == len(q8)
    assert got["flash_bytes"] < got["bytes"] / 2  # INT8 weights: a quarter of float32's, plus scales
    assert "sram_bytes" not in SupernetEvaluator(net, data).cheap_metrics(arch)
