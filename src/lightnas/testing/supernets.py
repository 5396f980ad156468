"""``SupernetTests``: the contract of :mod:`lightnas.supernets.base`, tested on any super-network."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, ClassVar

import numpy as np
import onnx
import pytest
import torch

from lightnas.artefacts import TrainJob
from lightnas.config import TrainConfig
from lightnas.data.sources import Dataset
from lightnas.hardware.cost import count_cost
from lightnas.hardware.onnx_graph import onnx_session, to_onnx_bytes
from lightnas.quantization.onnx_int8 import in_modules, node_module
from lightnas.space import Arch
from lightnas.supernets import SUPERNETS, create_supernet, supernet_from_config
from lightnas.supernets.base import ELASTIC_KINDS, Supernet, resize_input, trained_like
from lightnas.train.trainer import SupernetTrainer


def random_dataset(input_shape: tuple[int, int, int], n_classes: int, n: int = 64, seed: int = 0) -> Dataset:
    """A tiny dataset of random images (for contract tests, not for accuracy)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, *input_shape), dtype=np.uint8)
    y = np.arange(n, dtype=np.int64) % n_classes
    return Dataset("random", x, y, x[:16], y[:16], x[:16], y[:16], [str(c) for c in range(n_classes)])


class SupernetTests:
    """Subclass with ``supernet = "name"``; override ``input_shape``,
    ``n_classes`` or ``options`` (config fields) to test other set-ups.
    ``n_archs`` random sub-networks (plus the smallest and the largest) are
    checked by the extraction and ONNX tests."""

    supernet: ClassVar[str] = ""
    input_shape: ClassVar[tuple[int, int, int]] = (1, 28, 28)
    n_classes: ClassVar[int] = 10
    options: ClassVar[dict[str, Any]] = {}
    n_archs: ClassVar[int] = 8

    def make(self) -> Any:
        torch.manual_seed(0)
        return create_supernet(self.supernet, self.input_shape, self.n_classes, **self.options)

    def archs(self, net: Any, n: int | None = None) -> list[Arch]:
        rng = np.random.default_rng(0)
        return [net.space.smallest(), net.space.largest()] + [
            net.space.sample(rng) for _ in range(self.n_archs if n is None else n)
        ]

    def test_is_a_supernet_and_registered(self) -> None:
        net = self.make()
        assert isinstance(net, Supernet) and self.supernet in SUPERNETS.names()
        assert net.input_shape == tuple(self.input_shape) and net.n_classes == self.n_classes

    def test_train_defaults_are_training_settings(self) -> None:
        TrainConfig(**self.make().train_defaults)

    def test_config_round_trips_through_a_plain_dict(self) -> None:
        net = self.make()
        d = json.loads(json.dumps(net.config.to_dict()))
        again = supernet_from_config(self.supernet, d)
        assert again.config == net.config
        assert again.space.describe() == net.space.describe()

    def test_space_round_trips(self) -> None:
        net = self.make()
        for arch in self.archs(net):
            assert net.space.from_key(arch.key) == arch
            assert net.space.decode(net.space.encode(arch)) == arch

    def test_elastic_groups_name_every_dimension(self) -> None:
        net = self.make()
        groups = net.elastic_groups()
        assert set(groups) == {d.name for d in net.space.dims}
        assert set(groups.values()) <= set(ELASTIC_KINDS)

    @torch.no_grad()
    def test_extract_equals_the_active_sub_network(self) -> None:
        net = trained_like(self.make())
        x = torch.randn(4, *self.input_shape)
        for arch in self.archs(net):
            net.set_active(arch)
            assert net.active_arch == arch
            ref = net(x)
            plain = net.extract(arch).eval()
            assert ref.shape == (4, self.n_classes)
            shape = net.input_shape_for(arch)
            assert shape[0] == self.input_shape[0] and max(shape[1:]) <= max(self.input_shape[1:])
            assert float((plain(resize_input(x, shape)) - ref).abs().max()) <= 1e-5, arch.key
            shared = {p.data_ptr() for p in net.parameters()}
            assert not shared & {p.data_ptr() for p in plain.parameters()}, "extract must copy the weights"

    @torch.no_grad()
    def test_onnx_runtime_equals_pytorch(self) -> None:
        net = trained_like(self.make())
        for arch in self.archs(net, 2):
            shape = net.input_shape_for(arch)
            x = torch.randn(3, *shape)
            plain = net.extract(arch).eval()
            out = onnx_session(to_onnx_bytes(plain, shape), 1).run(None, {"input": x.numpy()})[0]
            assert np.abs(out - plain(x).numpy()).max() <= 1e-4, arch.key

    def test_smallest_and_largest_bound_the_cost(self) -> None:
        net = self.make()
        cost = {a: count_cost(net.extract(a), net.input_shape_for(a)) for a in self.archs(net)}
        small, large = net.space.smallest(), net.space.largest()
        for c in cost.values():
            for metric in ("params", "macs"):
                assert cost[small][metric] <= c[metric] <= cost[large][metric]
        assert cost[large]["params"] <= sum(p.numel() for p in net.parameters())

    def test_latency_parts_cover_every_sub_network(self) -> None:
        net = self.make()
        every = set(net.all_latency_parts())
        for arch in self.archs(net, 4):
            parts = net.latency_parts(arch)
            assert set(parts) <= every
            macs = 0.0
            for part in parts:
                hash(part)
                module, shape = net.build_part(part)
                macs += count_cost(module, tuple(shape))["macs"]
            whole = count_cost(net.extract(arch), net.input_shape_for(arch))["macs"]
            assert macs == pytest.approx(whole, rel=1e-6)

    def test_precision_groups_cover_parts_and_weights(self) -> None:
        """Every latency part and every weight-bearing ONNX node lies in exactly
        one precision group of the sub-network; the groups are the declared ones."""

        net = self.make()
        declared = net.precision_groups()
        for arch in self.archs(net, 2):
            plan = net.precision_plan(arch)
            assert {g.name for g in plan} <= set(declared), arch.key
            parts = sorted(i for g in plan for i in g.parts)
            assert parts == list(range(len(net.latency_parts(arch)))), arch.key
            plain = net.extract(arch).eval()
            names = dict(plain.named_modules())
            assert all(m in names for g in plan for m in g.modules), arch.key
            graph = onnx.load_from_string(to_onnx_bytes(plain, net.input_shape_for(arch))).graph
            weights = {i.name for i in graph.initializer if len(i.dims) > 1}
            for node in graph.node:
                if set(node.input) & weights and node.op_type in ("Conv", "Gemm", "MatMul"):
                    owners = [g.name for g in plan if in_modules(node_module(node.name), g.modules)]
                    assert len(owners) == 1, (arch.key, node.name, owners)

    def test_arch_features_name_the_same_finite_numbers_for_every_arch(self) -> None:
        net = self.make()
        feats = [net.arch_features(a) for a in self.archs(net, 4)]
        assert all(set(f) == set(feats[0]) for f in feats)
        assert all(np.isfinite(v) for f in feats for v in f.values())

    def test_calibrate_leaves_eval_mode_and_a_deterministic_network(self) -> None:
        net = self.make()
        x = torch.randn(8, *self.input_shape)
        net.set_active(net.space.smallest())
        net.calibrate(x)
        assert not net.training
        with torch.no_grad():
            assert torch.equal(net(x[:2]), net(x[:2]))

    def test_recompute_gives_the_same_gradients_and_buffers(self) -> None:
        x = torch.randn(4, *self.input_shape)
        results = []
        for recompute in (False, True):
            net = self.make().train()
            net.set_active(net.space.largest())
            net.recompute = recompute
            net(x).square().sum().backward()
            grads = {n: p.grad for n, p in net.named_parameters() if p.grad is not None}
            results.append((grads, {n: b.clone() for n, b in net.named_buffers()}))
        (g0, b0), (g1, b1) = results
        assert g0.keys() == g1.keys() and b0.keys() == b1.keys()
        assert all(torch.allclose(g0[n], g1[n], rtol=1e-4, atol=1e-6) for n in g0)
        assert all(torch.equal(b0[n], b1[n]) for n in b0)

    @pytest.mark.parametrize("recipe", ["spread", "sandwich", "warmup-sandwich", "progressive", "sorted"])
    def test_a_training_step_of_every_recipe_runs(self, recipe: str) -> None:
        data = random_dataset(self.input_shape, self.n_classes)
        net = self.make()
        cfg = TrainConfig(epochs=4, batch_size=8, recipe=recipe, warmup_fraction=0.25)
        trainer = SupernetTrainer(TrainJob(self.supernet, net.config.to_dict(), cfg, threads=1), data)
        before = {n: p.detach().clone() for n, p in trainer.net.named_parameters()}
        students = trainer.recipe.students(3, np.random.default_rng(0))
        assert students, "every recipe trains students by its last epoch"
        loss = trainer.step(trainer.x_train[:8], trainer.y_train[:8], students)
        assert np.isfinite(loss)
        assert any(not torch.equal(p, before[n]) for n, p in trainer.net.named_parameters())
        trainer.end_epoch(0, {"loss": loss, "seconds": 0.0})
        assert dataclasses.asdict(cfg) == trainer.ckpt.train_config
