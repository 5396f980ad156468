"""A user's trained network made elastic: the contract, equality with the model, what stays fixed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lightnas.errors import LightnasError
from lightnas.supernets import create_supernet
from lightnas.supernets.base import trained_like
from lightnas.testing import SupernetTests

MODELS = "examples.user_models"


class TestElasticResNet18(SupernetTests):
    supernet = "elastic"
    options = {"model": f"{MODELS}:resnet18_tiny"}
    n_archs = 3


class TestElasticMobileNetV2(SupernetTests):
    supernet = "elastic"
    options = {"model": f"{MODELS}:mobilenet_v2_tiny"}
    n_archs = 3


class TestElasticConcatCNN(SupernetTests):
    supernet = "elastic"
    options = {"model": f"{MODELS}:concat_cnn_tiny"}
    n_archs = 3


def _saved(factory: str, tmp_path, seed: int = 0) -> tuple[nn.Module, str]:
    """The user's model with trained-like weights, and the file holding them."""
    import examples.user_models as models

    torch.manual_seed(seed)
    model = trained_like(getattr(models, factory)(), seed)
    path = tmp_path / f"{factory}.pt"
    torch.save(model.state_dict(), path)
    return model.eval(), str(path)


@pytest.mark.parametrize("factory", ["resnet18_tiny", "mobilenet_v2_tiny", "concat_cnn_tiny"])
def test_the_largest_sub_network_is_the_users_model_reordered(factory, tmp_path):
    model, weights = _saved(factory, tmp_path)
    net = create_supernet("elastic", (1, 28, 28), 10, model=f"{MODELS}:{factory}", weights=weights)
    net.init_for_training()
    net.set_active(net.space.largest())
    net.eval()
    x = torch.randn(8, 1, 28, 28)
    with torch.no_grad():
        assert float((net(x) - model(x)).abs().max()) <= 1e-5
        assert float((net.extract(net.space.largest())(x) - model(x)).abs().max()) <= 1e-5
    mine, theirs = dict(net.model.named_parameters()), dict(model.named_parameters())
    assert mine.keys() == theirs.keys()
    assert any(not torch.equal(mine[k], theirs[k]) for k in mine), "channels were reordered"
    teacher = net.distillation_teacher()
    assert teacher is not None and not any(p.requires_grad for p in teacher.parameters())


def test_leading_channels_are_the_most_important(tmp_path):
    from lightnas.elastic.reorder import importance

    _, weights = _saved("resnet18_tiny", tmp_path)
    net = create_supernet("elastic", (1, 28, 28), 10, model=f"{MODELS}:resnet18_tiny", weights=weights)
    net.init_for_training()
    for s in net.structure.elastic:
        score = importance(net.model, net.structure, net._calls, s)
        assert torch.all(score[:-1] >= score[1:] - 1e-6)


def test_the_dimensions_found_in_a_resnet(tmp_path):
    net = create_supernet("elastic", (1, 28, 28), 10, model=f"{MODELS}:resnet18_tiny")
    kinds = net.elastic_groups()
    # the stem and stage 1 share a residual stream; stages 2-4 each have one, with a projection
    assert sorted(d for d, k in kinds.items() if k == "depth") == ["r0d", "r1d", "r2d", "r3d"]
    assert [len(d.values) for d in net.space.dims if d.name.startswith("r")] == [3, 2, 2, 2]
    # 4 residual streams + the first convolution of each of the 8 blocks
    assert sum(k == "width" for k in kinds.values()) == 12
    assert "layer1.0.conv1" in net.dimensions()["g1w"]
    assert net.structure.notes == []


class _Branchy(nn.Module):
    """Python control flow on a tensor's value: the tracer cannot follow it."""

    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return F.relu(self.conv(x))
        return x


class _UserNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 16, 3, 2, 1)
        self.bn = nn.BatchNorm2d(16)
        self.mid = nn.Conv2d(16, 32, 3, 2, 1)
        self.odd = _Branchy(32)
        self.last = nn.Conv2d(32, 24, 1)
        self.fc = nn.Linear(24 * 7 * 7, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.stem(x)))
        x = self.odd(F.relu(self.mid(x)))
        x = F.relu(self.last(x))
        return self.fc(x.view(-1, 24 * 7 * 7))


def user_net() -> nn.Module:
    return _UserNet()


def test_what_cannot_be_made_elastic_is_said_and_the_rest_is_searched():
    net = create_supernet("elastic", (1, 28, 28), 10, model=f"{__name__}:user_net")
    notes = "\n".join(net.structure.notes)
    assert "module odd (_Branchy) cannot be traced" in notes
    assert "view" in notes and "sizes written in the code" in notes
    about = net.dimensions()
    # the stem is still searched; mid feeds the opaque module and last feeds the fixed view
    assert any("stem" in v for v in about.values())
    assert not any("mid" in v or "last" in v for v in about.values())
    x = torch.randn(2, 1, 28, 28)
    rng = np.random.default_rng(0)
    for arch in (net.space.smallest(), net.space.sample(rng)):
        net.set_active(arch)
        with torch.no_grad():
            assert float((net.eval()(x) - net.extract(arch)(x)).abs().max()) <= 1e-5


class _TopLevelBranch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(28 * 28, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.mean() > 0:
            x = -x
        return self.fc(x.flatten(1))


def top_level_branch() -> nn.Module:
    return _TopLevelBranch()


def not_a_module() -> int:
    return 3


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"model": "examples.user_models"}, "package.module:factory"),
        ({"model": "no_such_package.models:net"}, "cannot import 'no_such_package.models'"),
        ({"model": f"{MODELS}:no_such_factory"}, "has no callable 'no_such_factory'"),
        ({"model": f"{__name__}:not_a_module"}, "returned a int"),
        ({"model": f"{__name__}:top_level_branch"}, "cannot trace model"),
        ({"model": f"{MODELS}:resnet18_tiny", "widths": [0.5]}, "include 1.0"),
        ({}, "needs a model"),
    ],
)
def test_bad_models_are_one_line_errors(options, message):
    with pytest.raises(LightnasError, match=message) as info:
        create_supernet("elastic", (1, 28, 28), 10, **options)
    assert "\n" not in str(info.value)


def test_a_model_for_other_images_or_classes_is_refused(tmp_path, capfd):
    for shape in ((3, 28, 28), (1, 8, 8)):  # a wrong channel count; a flatten sized for 28 px
        with pytest.raises(LightnasError, match="does not run on images of shape") as info:
            create_supernet("elastic", shape, 10, model=f"{MODELS}:concat_cnn_tiny")
        assert "\n" not in str(info.value)
    assert capfd.readouterr().err == ""  # no traceback printed on the way
    with pytest.raises(LightnasError, match="not 7 logits"):
        create_supernet("elastic", (1, 28, 28), 7, model=f"{MODELS}:resnet18_tiny")
    _, weights = _saved("mobilenet_v2_tiny", tmp_path)
    net = create_supernet("elastic", (1, 28, 28), 10, model=f"{MODELS}:resnet18_tiny", weights=weights)
    with pytest.raises(LightnasError, match="does not fit model"):
        net.init_for_training()


def test_a_fixed_teacher_runs_once_over_images_that_do_not_change(tmp_path):
    """Without augmentation the user's model's outputs on the training images
    are computed once, equal to the model's own; with it, every step computes them."""
    import dataclasses

    from lightnas.artefacts import TrainJob
    from lightnas.config import TrainConfig
    from lightnas.data import load_dataset
    from lightnas.train.trainer import SupernetTrainer

    d = load_dataset("digits")
    d = dataclasses.replace(d, x_train=d.x_train[:256], y_train=d.y_train[:256], x_val=d.x_val[:64], y_val=d.y_val[:64])
    model, weights = _saved("mobilenet_v2_tiny", tmp_path)
    config = {"model": f"{MODELS}:mobilenet_v2_tiny", "weights": weights, "input_shape": list(d.input_shape)}
    runs = {}
    for augment in (False, True):
        job = TrainJob("elastic", config, TrainConfig(epochs=1, augment=augment), threads=1)
        runs[augment] = trainer = SupernetTrainer(job, d)
        trainer.run(tmp_path / f"{augment}.pt", resume=False, progress=False)
    assert runs[True].fixed is None
    fixed = runs[False].fixed
    assert fixed is not None and fixed.shape == (256, 10)
    with torch.no_grad():
        x = runs[False].x_train
        torch.testing.assert_close(fixed, model(x[0 : len(x)]), atol=1e-5, rtol=1e-5)


@pytest.mark.slow  # 42 s: the whole run; the contract suite above covers the elastic super-networks
def test_lightnas_run_from_a_model_trains_searches_and_exports(tmp_path):
    """``elasticize`` shows the space and checks equality; ``run --from-model``
    goes through every stage and exports verified models; ``--resume`` of the
    finished run changes nothing."""
    import json
    import os
    import subprocess
    import sys

    _, weights = _saved("resnet18_tiny", tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}
    cli = [sys.executable, "-m", "lightnas.cli"]
    model = ["--from-model", f"{MODELS}:resnet18_tiny", "--weights", weights, "--data", "digits"]
    shown = subprocess.run([*cli, "elasticize", *model, "--quiet"], capture_output=True, text=True, env=env)
    assert shown.returncode == 0, shown.stderr
    assert "16 elastic dimensions" in shown.stdout and "(equal)" in shown.stdout
    out = tmp_path / "run"
    job = [*cli, "run", *model, "--epochs", "1", "--budget", "4", "--out", str(out), "--quiet"]
    res = subprocess.run(job, capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["supernet"]["name"] == "elastic" and cfg["supernet"]["options"]["weights"] == weights
    index = json.loads((out / "models" / "index.json").read_text())
    card = json.loads((out / "models" / index["models"][0] / "card.json").read_text())
    assert card["supernet"] == "elastic" and card["verification"]["onnx_max_abs_diff"] <= 1e-4
    before = _evaluations(out / "lightnas.db"), (out / "models" / "index.json").read_bytes()
    again = subprocess.run([*job, "--resume"], capture_output=True, text=True, env=env)
    assert again.returncode == 0, again.stderr
    assert (_evaluations(out / "lightnas.db"), (out / "models" / "index.json").read_bytes()) == before


def _evaluations(db) -> list[tuple]:
    import sqlite3

    with sqlite3.connect(db) as con:
        return con.execute("SELECT * FROM evaluations ORDER BY rowid").fetchall()


def test_a_strided_1x1_convolution_computes_the_same_on_the_kept_pixels():
    from lightnas.elastic.modules import ElasticConv2d
    from lightnas.train.device import training_format

    torch.manual_seed(0)
    plain = nn.Conv2d(6, 4, 1, stride=2)
    elastic = ElasticConv2d(6, 4, 1, stride=2)
    elastic.load_state_dict(plain.state_dict())
    x = torch.randn(3, 6, 9, 10).contiguous(memory_format=torch.channels_last).requires_grad_()
    assert torch.allclose(elastic(x), plain(x), atol=1e-6)
    elastic.in_sel, elastic.out_sel = 3, 2  # a slice under 8 input channels trains channels-last
    elastic(x[:, :3]).square().sum().backward()
    assert elastic.weight.grad is not None and torch.isfinite(elastic.weight.grad).all()
    # a plain model holding one trains contiguous; the same model at 8 channels, channels-last
    assert training_format(nn.Sequential(plain)) == torch.contiguous_format
    assert training_format(nn.Sequential(nn.Conv2d(8, 4, 1, stride=2))) == torch.channels_last
