"""Super-network training: every recipe trains, schedules are as documented, resume is exact."""

import numpy as np
import pytest
import torch

from lightnas.data import load_dataset
from lightnas.supernets.mobilenet import MobileNetConfig
from lightnas.train.recipes import RECIPES
from lightnas.train.trainer import TrainConfig, load_supernet, phase_of, restrict, train_supernet

torch.set_flush_denormal(True)


@pytest.fixture(scope="module")
def digits():
    """A slice of digits: two steps of 128 images an epoch keep these tests fast."""
    import dataclasses

    d = load_dataset("digits")
    return dataclasses.replace(
        d, x_train=d.x_train[:256], y_train=d.y_train[:256], x_val=d.x_val[:64], y_val=d.y_val[:64]
    )


def _config(data):
    return MobileNetConfig(input_shape=data.input_shape, n_classes=data.n_classes).to_dict()


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_recipe_trains_and_loads(recipe, digits, tmp_path):
    cfg = TrainConfig(epochs=2, batch_size=128, recipe=recipe, warmup_fraction=0.0 if recipe == "sandwich" else 0.5)
    state = train_supernet("mobilenet", _config(digits), digits, cfg, tmp_path / "s.pt", progress=False, threads=1)
    assert [h["epoch"] for h in state["history"]] == [1, 2]
    net, ckpt = load_supernet(tmp_path / "s.pt")
    assert ckpt["train_config"]["recipe"] == recipe
    assert all(torch.isfinite(p).all() for p in net.parameters())
    # the weights searched and exported are the moving average, every one of them (BatchNorm's too)
    for k, v in ckpt["train_state_dict"].items():
        if k.endswith(("weight", "bias")):
            assert not torch.equal(ckpt["state_dict"][k], v), k


def test_progressive_schedule_opens_kernel_then_depth_then_all():
    cfg = TrainConfig(epochs=8, recipe="progressive", warmup_fraction=0.25)
    assert [phase_of(cfg, e) for e in range(8)] == ["largest"] * 2 + ["kernel"] * 2 + ["depth"] * 2 + ["all"] * 2
    assert {phase_of(TrainConfig(epochs=4, recipe="sandwich"), e) for e in range(4)} == {"all"}


def test_restrict_pins_what_is_not_yet_elastic():
    from lightnas.supernets import create_supernet

    space = create_supernet("mobilenet").space
    small, large = space.smallest(), space.largest()
    kernel = restrict(space, small, "kernel")
    depth = restrict(space, small, "depth")
    for name in large:
        if name.endswith(("d", "w")) or name.endswith("e"):
            assert kernel[name] == large[name], name
        if name.endswith("d"):
            assert depth[name] == small[name], name
    assert restrict(space, small, "all") == small
    assert restrict(space, small, "largest") == large


def test_sorted_chain_is_nested_from_smallest_to_largest():
    from lightnas.supernets import create_supernet

    space = create_supernet("mobilenet").space
    assert space.scaled(0.0) == space.smallest() and space.scaled(1.0) == space.largest()
    codes = [space.encode(space.scaled(t)) for t in np.linspace(0, 1, 11)]
    for a, b in zip(codes, codes[1:], strict=False):
        assert (np.asarray(b) >= np.asarray(a)).all()  # every dimension grows along the chain


def test_resumed_training_equals_uninterrupted(digits, tmp_path, monkeypatch):
    import lightnas.train.trainer as trainer

    cfg = TrainConfig(epochs=2, batch_size=128)
    conf = _config(digits)
    whole = train_supernet("mobilenet", conf, digits, cfg, tmp_path / "a.pt", progress=False, threads=1)

    save = trainer.atomic_save

    def save_then_die(state, path):
        save(state, path)
        raise KeyboardInterrupt  # killed right after the first epoch's checkpoint

    monkeypatch.setattr(trainer, "atomic_save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_supernet("mobilenet", conf, digits, cfg, tmp_path / "b.pt", progress=False, threads=1)
    monkeypatch.setattr(trainer, "atomic_save", save)
    assert torch.load(tmp_path / "b.pt", weights_only=True)["epoch"] == 1
    resumed = train_supernet("mobilenet", conf, digits, cfg, tmp_path / "b.pt", progress=False, threads=1)
    assert resumed["epoch"] == 2 and len(resumed["history"]) == 2
    for k, v in whole["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][k], v, rtol=1e-4, atol=1e-5)


def test_students_gradient_never_works_against_the_largest():
    from lightnas.train.trainer import _add_projected

    p = [torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(2))]
    largest = [torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0])]
    # conflicting: the students' component along the largest's gradient is removed, the rest kept
    p[0].grad, p[1].grad = torch.tensor([-3.0, 2.0, 0.0]), torch.tensor([0.0, 1.0])
    _add_projected(p, largest)
    total = torch.cat([q.grad for q in p])
    students_part = total - torch.cat(largest)
    assert float(students_part @ torch.cat(largest)) == pytest.approx(0.0, abs=1e-6)
    torch.testing.assert_close(total, torch.tensor([-1.0, 2.0, 0.0, 0.0, 3.0]))
    # agreeing: a plain sum
    p[0].grad, p[1].grad = torch.tensor([1.0, 2.0, 0.0]), None
    _add_projected(p, largest)
    torch.testing.assert_close(torch.cat([q.grad for q in p]), torch.tensor([2.0, 2.0, 0.0, 0.0, 1.0]))


def test_students_learn_from_the_largest_and_the_labels_as_weighted():
    from lightnas.errors import LightnasError
    from lightnas.train.trainer import student_loss

    torch.manual_seed(0)
    logits, labels = torch.randn(8, 5), torch.randint(0, 5, (8,))
    soft = torch.softmax(torch.randn(8, 5), dim=1)
    kd = torch.nn.functional.kl_div(torch.log_softmax(logits, dim=1), soft, reduction="batchmean")
    ce = torch.nn.functional.cross_entropy(logits, labels, label_smoothing=0.1)
    loss = {w: student_loss(logits, soft, labels, TrainConfig(student_label_weight=w)) for w in (0.0, 0.5, 1.0)}
    torch.testing.assert_close(loss[0.0], kd)
    torch.testing.assert_close(loss[1.0], ce)
    torch.testing.assert_close(loss[0.5], 0.5 * kd + 0.5 * ce)
    with pytest.raises(LightnasError, match="student_label_weight"):
        TrainConfig(student_label_weight=1.5)
