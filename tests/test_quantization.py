"""Precision searched with the architecture: policy dimensions, ONNX Runtime INT8, the wrapper, the run."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from lightnas.errors import LightnasError
from lightnas.hardware.cost import count_cost
from lightnas.hardware.latency import Timing, measure_latency
from lightnas.hardware.onnx_graph import deployed_onnx, onnx_logits, onnx_session
from lightnas.quantization import onnx_int8
from lightnas.quantization.onnx_int8 import node_module
from lightnas.quantization.policy import check_precision, precision_space, split_policy
from lightnas.quantization.wrapper import PrecisionSupernet
from lightnas.space import Choice, SearchSpace
from lightnas.supernets import create_supernet
from lightnas.testing.supernets import trained_like


def test_precision_dimensions_are_ordinary_conditional_dimensions() -> None:
    space = SearchSpace((Choice("d", (1, 2), ordinal=True), Choice("w", (8, 16))))
    q = precision_space(space, {"b1": None, "b2": ("d", 2)})
    assert [d.name for d in q.dims] == ["d", "w", "q_b1", "q_b2"]
    arch = q.make({"d": 1, "w": 8, "q_b1": "int8", "q_b2": "int8"})
    assert arch["q_b2"] == "fp32"  # inactive: canonical first value
    assert q.from_key(arch.key) == arch
    assert split_policy(arch) == ({"d": 1, "w": 8}, {"b1": "int8", "b2": "fp32"})
    with pytest.raises(LightnasError, match="unknown precision"):
        check_precision("int4")
    with pytest.raises(LightnasError, match="already has"):
        precision_space(q, {"b1": None})


@pytest.mark.parametrize(
    ("name", "module"),
    [("/blocks/blocks.3/dw/Conv", "blocks.3.dw"), ("/Relu", ""), ("/attn/attn.0/attn/qkv/MatMul", "attn.0.attn.qkv")],
)
def test_onnx_nodes_map_to_their_modules(name: str, module: str) -> None:
    assert node_module(name) == module


@pytest.fixture(params=["host", "7-bit"])
def weight_bits(request, monkeypatch) -> int:
    """The weights' bits this machine's kernels need, and 7 bits (exact on every x86 CPU)."""
    if request.param == "7-bit":
        monkeypatch.setattr(onnx_int8, "reduced_weights", lambda: True)
    return 7 if onnx_int8.reduced_weights() else 8


@pytest.mark.parametrize(
    ("machine", "flags", "reduced"),
    [
        ("x86_64", {"avx2", "fma"}, True),  # u8s8 through VPMADDUBSW saturates int16
        ("x86_64", {"avx2", "avx512_vnni"}, False),
        ("x86_64", {"avx2", "avx_vnni"}, False),
        ("x86_64", None, True),  # flags unknown: the choice exact everywhere
        ("aarch64", None, False),
    ],
)
def test_int8_weights_take_7_bits_where_the_kernels_would_saturate(monkeypatch, machine, flags, reduced) -> None:
    monkeypatch.setattr(onnx_int8.platform, "machine", lambda: machine)
    monkeypatch.setattr(onnx_int8, "_cpu_flags", lambda: flags)
    onnx_int8.reduced_weights.cache_clear()
    try:
        assert onnx_int8.reduced_weights() is reduced
        assert onnx_int8.weight_qmax() == (64 if reduced else 127)
        assert onnx_int8.int8_settings(8, "minmax")["weight_bits"] == (7 if reduced else 8)
    finally:
        onnx_int8.reduced_weights.cache_clear()


def _wrapped(name: str = "mobilenet") -> PrecisionSupernet:
    torch.manual_seed(0)
    net = trained_like(create_supernet(name))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 1, 28, 28, generator=g)
    return PrecisionSupernet(net, x, x)


def _ops(onnx_bytes: bytes) -> dict[str, list[str]]:
    """Module -> op types of its nodes."""
    out: dict[str, list[str]] = {}
    for n in onnx.load_from_string(onnx_bytes).graph.node:
        out.setdefault(node_module(n.name), []).append(n.op_type)
    return out


@pytest.mark.parametrize("supernet", ["mobilenet", "vit"])
def test_int8_groups_are_quantized_and_the_rest_stays_float(supernet: str, weight_bits: int) -> None:
    net = _wrapped(supernet)
    groups = list(net.net.precision_groups())
    base = dict(net.net.space.largest())
    first, *rest = groups
    arch = net.space.make({**base, f"q_{first}": "int8", **{f"q_{g}": "fp32" for g in rest}})
    deployed = net.extract(arch)
    graph = deployed_onnx(deployed, (1, 28, 28))
    plan = {g.name: g for g in net.net.precision_plan(net.base(arch))}
    quantized = {m for m, ops in _ops(graph).items() if "DequantizeLinear" in ops or "QuantizeLinear" in ops}
    assert quantized, "no INT8 node in the INT8 group"
    in_first = [m for m in quantized if any(m == p or m.startswith(p + ".") for p in plan[first].modules)]
    assert in_first
    for g in rest:
        assert not [m for m in quantized if any(m == p or m.startswith(p + ".") for p in plan[g].modules)], g
    # the float32 policy of the same sub-network is the float32 graph itself
    fp32 = net.extract(net.space.make({**base, **{f"q_{g}": "fp32" for g in groups}}))
    assert not isinstance(fp32, type(deployed))
    # INT8 computes nearly the same function
    x = torch.randn(32, 1, 28, 28, generator=torch.Generator().manual_seed(2)).numpy()
    ref = fp32(torch.from_numpy(x)).detach().numpy()
    out = onnx_logits(onnx_session(graph, 1), x)
    assert np.corrcoef(ref.ravel(), out.ravel())[0, 1] > 0.98
    assert deployed.graph.settings()["weight_bits"] == weight_bits
    weights = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load_from_string(graph).graph.initializer}
    levels = max(int(np.abs(w.astype(np.int32)).max()) for w in weights.values() if w.dtype == np.int8)
    assert levels == 2 ** (weight_bits - 1) - (0 if weight_bits == 7 else 1)  # 64 or 127


def test_cost_counts_int8_weights_and_activations_in_one_byte() -> None:
    net = _wrapped()
    base = dict(net.net.space.largest())
    groups = list(net.net.precision_groups())
    fp32 = count_cost(net.extract(net.space.make({**base, **{f"q_{g}": "fp32" for g in groups}})), (1, 28, 28))
    int8 = count_cost(net.extract(net.space.make({**base, **{f"q_{g}": "int8" for g in groups}})), (1, 28, 28))
    assert int8["params"] == fp32["params"] and int8["macs"] == fp32["macs"]
    assert fp32["bytes"] / int8["bytes"] > 3.0
    assert int8["peak_act_bytes"] == fp32["peak_act_bytes"] / 4


def test_calibration_ranges_are_computed_once_per_sub_network(monkeypatch) -> None:
    import importlib

    q = importlib.import_module("onnxruntime.quantization.quantize")

    calls = []
    real = q.create_calibrator
    monkeypatch.setattr(q, "create_calibrator", lambda *a, **k: calls.append(1) or real(*a, **k))
    net = _wrapped()
    base = dict(net.net.space.smallest())
    groups = list(net.net.precision_groups())
    for g in groups:
        policy = {f"q_{h}": "int8" if h == g else "fp32" for h in groups}
        deployed_onnx(net.extract(net.space.make({**base, **policy})), (1, 28, 28))
    assert len(calls) == 1


def test_latency_parts_carry_the_precision_and_build_int8_parts() -> None:
    net = _wrapped("vit")
    groups = net.net.precision_groups()
    arch = net.space.make({**dict(net.net.space.smallest()), **{f"q_{g}": "fp32" for g in groups}, "q_b1": "int8"})
    parts = net.latency_parts(arch)
    assert [p[-1] for p in parts] == ["int8", "int8", "fp32", "fp32"]  # embed and block 1, block 2, head
    assert set(parts) <= set(net.all_latency_parts())
    module, shape = net.build_part(parts[1])
    assert "QuantizeLinear" in {n.op_type for n in onnx.load_from_string(deployed_onnx(module, shape)).graph.node}
    assert measure_latency(module, shape, "onnxruntime", timing=Timing(repeats=3, min_seconds=0.0))["latency_ms"] > 0
    with pytest.raises(LightnasError, match="onnxruntime"):
        measure_latency(module, shape, "torch", timing=Timing(repeats=3))
    assert "(int8)" in net.describe_part(parts[1])


def test_a_quantized_run_searches_exports_and_records_the_policy(finished_run, tmp_path) -> None:
    import shutil

    from lightnas.cli import main

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    shutil.rmtree(run / "models")
    (run / "lightnas.db").unlink()
    assert main(["search", str(run), "--quantize", "int8", "--budget", "6", "--quiet"]) == 0
    assert main(["export", str(run), "--max-export", "6", "--quiet"]) == 0
    index = json.loads((run / "models" / "index.json").read_text())
    cards = [json.loads((run / "models" / i / "card.json").read_text()) for i in index["models"]]
    assert all("policy" in c["quantization"] for c in cards)
    int8 = [c for c in cards if "int8" in c["quantization"]["policy"].values()]
    for c in int8:
        q = c["quantization"]
        assert (run / "models" / c["id"] / "model.int8.onnx").stat().st_size == q["onnx_int8_bytes"]
        assert c["test_accuracy"] == q["test_accuracy"]
        assert 0.5 < q["top1_agreement_fp32"] <= 1.0
        assert q["calibration_images"] == 256 and q["calibration_method"] == "minmax"
        arch = json.loads((run / "models" / c["id"] / "arch.json").read_text())
        assert arch["precision"] == q["policy"] and not any(k.startswith("q_") for k in arch["arch"])
    from lightnas.export import load_exported

    for c in cards:
        load_exported(run / "models" / c["id"])  # the float32 network loads without the wrapper
    assert main(["report", str(run), "--quiet"]) == 0
    import csv

    rows = list(csv.DictReader((run / "pareto.csv").read_text().splitlines()))
    assert rows and all(r["precision"] == "fp32" or r["precision"].startswith("int8:") for r in rows)


def test_a_latency_table_must_price_the_runs_batch_and_precision(tmp_path) -> None:
    from lightnas.config import RunConfig
    from lightnas.context import load_lut
    from lightnas.hardware.lut import LUT_FORMAT, LatencyTable

    meta = {"format": LUT_FORMAT, "batch": 1}
    LatencyTable("mobilenet", {}, "onnxruntime", 1, {"stem/fp32": 0.1, "stem/int8": 0.2}, meta=meta).save(
        tmp_path / "lut.json"
    )
    quantized = RunConfig().replace({"quantize.precision": "int8", "latency.mode": "lut"})
    assert load_lut(tmp_path / "lut.json", quantized).parts["stem/int8"] == 0.2
    with pytest.raises(LightnasError, match="prices batch 1"):
        load_lut(tmp_path / "lut.json", quantized.replace({"latency.batch": 32}))
    with pytest.raises(LightnasError, match="INT8 parts"):
        load_lut(tmp_path / "lut.json", quantized.replace({"quantize.precision": ""}))


def test_qat_leaves_the_folded_weights_on_the_int8_grid_and_mirrors_onnx_runtime(weight_bits: int) -> None:
    from lightnas.quantization.qat import QatModel

    net = _wrapped()
    groups = list(net.net.precision_groups())
    arch = net.space.make({**dict(net.net.space.smallest()), **{f"q_{g}": "int8" for g in groups}})
    deployed = net.extract(arch)
    x = torch.randn(16, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    qat = QatModel(deployed.plain, deployed.int8_modules, x[:4])
    qat.train()
    assert not any(m.training for m in qat.modules() if isinstance(m, torch.nn.BatchNorm2d))
    qat(x)  # one pass records the activation ranges
    plain = qat.finish()
    again = net.requantize(plain, deployed.int8_modules)
    graph = onnx.load_from_string(again.graph.fp32).graph
    weights = [onnx.numpy_helper.to_array(i) for i in graph.initializer if len(i.dims) == 4]
    for w in weights:  # every folded convolution weight is a multiple of its channel's scale
        scale = np.abs(w).reshape(len(w), -1).max(1) / onnx_int8.weight_qmax()
        steps = w.reshape(len(w), -1) / np.maximum(scale[:, None], 1e-12)
        assert np.abs(steps - np.round(steps)).max() < 1e-3
    ref = plain(x).detach().numpy()
    out = onnx_logits(onnx_session(again.deployed_onnx((1, 28, 28)), 1), x.numpy())
    assert np.corrcoef(ref.ravel(), out.ravel())[0, 1] > 0.98
