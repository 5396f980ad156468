"""Super-network training: every recipe trains, schedules are as documented, resume is exact."""

import numpy as np
import pytest
import torch

from lightnas.artefacts import TrainJob
from lightnas.config import TrainConfig
from lightnas.data import load_dataset
from lightnas.errors import LightnasError
from lightnas.supernets import create_supernet
from lightnas.supernets.mobilenet import MobileNetConfig
from lightnas.train.checkpoint import load_supernet
from lightnas.train.recipes import RECIPES
from lightnas.train.trainer import train_supernet

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


@pytest.mark.parametrize("recipe", RECIPES.names())
def test_every_recipe_trains_and_loads(recipe, digits, tmp_path):
    cfg = TrainConfig(epochs=2, recipe=recipe, warmup_fraction=0.0 if recipe == "sandwich" else 0.5)
    job = TrainJob("mobilenet", _config(digits), cfg, threads=1)
    state = train_supernet(job, digits, tmp_path / "s.pt", progress=False)
    assert [h["epoch"] for h in state.history] == [1, 2]
    net, ckpt = load_supernet(tmp_path / "s.pt")
    assert ckpt.train_config["recipe"] == recipe
    assert all(torch.isfinite(p).all() for p in net.parameters())
    # the weights searched and exported are the moving average, every one of them (BatchNorm's too)
    for k, v in ckpt.train_state_dict.items():
        if k.endswith(("weight", "bias")):
            assert not torch.equal(ckpt.state_dict[k], v), k


def _recipe(name, **kw):
    from lightnas.train.sampling import PartCost

    net = create_supernet("mobilenet")
    cfg = TrainConfig(recipe=name, **kw)
    return RECIPES.get(name)(cfg, net.space, net.elastic_groups(), PartCost(net).macs), net


def test_progressive_schedule_opens_kernel_then_depth_then_all():
    recipe, _ = _recipe("progressive", epochs=8, warmup_fraction=0.25)
    kinds = [recipe.free_kinds(e) for e in range(8)]
    assert kinds[:2] == [frozenset()] * 2 and kinds[6:] == [None] * 2
    assert "kernel" in kinds[2] and "depth" not in kinds[2] and "depth" in kinds[4] and "width" not in kinds[4]
    sandwich, _ = _recipe("sandwich", epochs=4)
    assert {sandwich.free_kinds(e) for e in range(4)} == {None}
    rng = np.random.default_rng(0)
    assert recipe.students(0, rng) == []  # the largest alone: no students
    assert sandwich.students(0, rng)[0] == sandwich.space.smallest() and len(sandwich.students(0, rng)) == 3
    spread, _ = _recipe("spread", epochs=4)
    students = spread.students(0, rng)
    assert len(students) == 2 and spread.space.smallest() not in students


def test_restrict_pins_what_is_not_yet_elastic_by_kind():
    recipe, net = _recipe("progressive")
    space, groups = net.space, net.elastic_groups()
    small, large = space.smallest(), space.largest()
    kernel = recipe.restrict(small, frozenset({"kernel"}))
    depth = recipe.restrict(small, frozenset({"kernel", "depth"}))
    for name in large:
        assert kernel[name] == (small[name] if groups[name] == "kernel" else large[name]), name
        if groups[name] == "depth":
            assert depth[name] == small[name], name
    assert recipe.restrict(small, None) == small
    assert recipe.restrict(small, frozenset()) == large


def test_cost_sampler_spreads_students_over_the_cost_range():
    from lightnas.train.sampling import CostSampler, PartCost

    net = create_supernet("mobilenet")
    cost = PartCost(net)
    rng = np.random.default_rng(0)
    uniform = np.array([CostSampler(net.space, cost.macs).fraction(net.space.sample(rng)) for _ in range(200)])
    sampler = CostSampler(net.space, cost.macs)
    drawn = np.array([sampler.fraction(a) for _ in range(100) for a in sampler.draw(rng, 2)])
    # uniform draws crowd the middle of the log-cost range; the cost sampler fills every fifth of it
    assert np.histogram(uniform, bins=5, range=(0, 1))[0][0] < 10
    assert np.histogram(drawn, bins=5, range=(0, 1))[0].min() >= 20
    # two students a step: one from each half of the range
    halves = [sorted(sampler.fraction(a) for a in sampler.draw(rng, 2)) for _ in range(20)]
    assert all(lo <= 0.5 + 0.1 and hi >= 0.5 - 0.1 for lo, hi in halves)
    # part costs add up to the whole network's MACs
    from lightnas.hardware.cost import count_cost

    arch = net.space.sample(rng)
    assert cost.macs(arch) == pytest.approx(count_cost(net.extract(arch), (1, 28, 28))["macs"])


def test_cost_sampler_power_moves_students_towards_the_costly_end():
    from lightnas.train.sampling import CostSampler, PartCost

    net = create_supernet("mobilenet")
    cost = PartCost(net)
    samplers = {p: CostSampler(net.space, cost.macs, power=p) for p in (0.0, 0.5, 1.0)}
    for s in samplers.values():  # the range's ends stay where they are, targets keep their order
        assert s.warp(0.0) == pytest.approx(0.0) and s.warp(1.0) == pytest.approx(1.0)
        assert np.all(np.diff([s.warp(u) for u in np.linspace(0, 1, 11)]) > 0)
    means = []
    for s in samplers.values():
        rng = np.random.default_rng(0)
        means.append(np.mean([s.fraction(a) for _ in range(60) for a in s.draw(rng, 2)]))
    assert means[0] < means[1] < means[2]  # fewer cheap students as the power grows
    with pytest.raises(LightnasError, match="spread_power"):
        TrainConfig(spread_power=-1.0)


def test_sorted_chain_is_nested_from_smallest_to_largest():
    from lightnas.supernets import create_supernet

    space = create_supernet("mobilenet").space
    assert space.scaled(0.0) == space.smallest() and space.scaled(1.0) == space.largest()
    codes = [space.encode(space.scaled(t)) for t in np.linspace(0, 1, 11)]
    for a, b in zip(codes, codes[1:], strict=False):
        assert (np.asarray(b) >= np.asarray(a)).all()  # every dimension grows along the chain


def test_resumed_training_equals_uninterrupted(digits, tmp_path, monkeypatch):
    import lightnas.train.trainer as trainer

    cfg = TrainConfig(epochs=2)
    conf = _config(digits)
    job = TrainJob("mobilenet", conf, cfg, threads=1)
    whole = train_supernet(job, digits, tmp_path / "a.pt", progress=False)

    save = trainer.atomic_save

    def save_then_die(state, path):
        save(state, path)
        raise KeyboardInterrupt  # killed right after the first epoch's checkpoint

    monkeypatch.setattr(trainer, "atomic_save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_supernet(job, digits, tmp_path / "b.pt", progress=False)
    monkeypatch.setattr(trainer, "atomic_save", save)
    assert torch.load(tmp_path / "b.pt", weights_only=True)["epoch"] == 1
    resumed = train_supernet(job, digits, tmp_path / "b.pt", progress=False)
    assert resumed.epoch == 2 and len(resumed.history) == 2
    for k, v in whole.state_dict.items():
        torch.testing.assert_close(resumed.state_dict[k], v, rtol=1e-4, atol=1e-5)


def test_students_gradient_never_works_against_the_largest():
    from lightnas.train.gradients import add_projected

    p = [torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(2))]
    largest = [torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0])]
    # conflicting: the students' component along the largest's gradient is removed, the rest kept
    p[0].grad, p[1].grad = torch.tensor([-3.0, 2.0, 0.0]), torch.tensor([0.0, 1.0])
    add_projected(p, largest)
    total = torch.cat([q.grad for q in p])
    students_part = total - torch.cat(largest)
    assert float(students_part @ torch.cat(largest)) == pytest.approx(0.0, abs=1e-6)
    torch.testing.assert_close(total, torch.tensor([-1.0, 2.0, 0.0, 0.0, 3.0]))
    # agreeing: a plain sum
    p[0].grad, p[1].grad = torch.tensor([1.0, 2.0, 0.0]), None
    add_projected(p, largest)
    torch.testing.assert_close(torch.cat([q.grad for q in p]), torch.tensor([2.0, 2.0, 0.0, 0.0, 1.0]))


def test_students_learn_from_the_largest_and_the_labels_as_weighted():
    from lightnas.errors import LightnasError
    from lightnas.tasks import create_task

    torch.manual_seed(0)
    logits, labels = torch.randn(8, 5), torch.randint(0, 5, (8,))
    teacher = torch.randn(8, 5)
    soft = torch.softmax(teacher, dim=1)
    kd = torch.nn.functional.kl_div(torch.log_softmax(logits, dim=1), soft, reduction="batchmean")
    ce = torch.nn.functional.cross_entropy(logits, labels, label_smoothing=0.1)
    loss = {
        w: create_task("classification", label_weight=w).distill_loss(logits, teacher, labels) for w in (0.0, 0.5, 1.0)
    }
    torch.testing.assert_close(loss[0.0], kd)
    torch.testing.assert_close(loss[1.0], ce)
    torch.testing.assert_close(loss[0.5], 0.5 * kd + 0.5 * ce)
    with pytest.raises(LightnasError, match="student_label_weight"):
        TrainConfig(student_label_weight=1.5)


def test_a_step_over_the_activation_budget_recomputes_to_the_same_weights(digits, tmp_path):
    """Under a budget smaller than the largest's saved activations the blocks
    are recomputed in the backward pass: the same trained weights (and
    BatchNorm statistics) as keeping every activation."""
    from lightnas.train.memory import saved_bytes, step_activation_bytes

    net = create_supernet("mobilenet", digits.input_shape, digits.n_classes)
    x = torch.randn(16, *digits.input_shape)
    estimate, measured = step_activation_bytes(net, x[:4], 16), saved_bytes(net, x)
    assert abs(estimate - measured) <= 0.02 * measured  # linear in the batch, from 2 and 4 images
    states = {}
    for budget in (1e6, 0.01):
        cfg = TrainConfig(epochs=1, activation_budget_mb=budget)
        path = tmp_path / f"{budget}.pt"
        job = TrainJob("mobilenet", _config(digits), cfg, threads=1)
        states[budget] = train_supernet(job, digits, path, progress=False)
    assert [s.history[-1]["settings"]["recompute"] for s in states.values()] == [False, True]
    for k, v in states[1e6].state_dict.items():
        torch.testing.assert_close(states[0.01].state_dict[k], v, rtol=1e-4, atol=1e-5)


def test_auto_recipe_follows_the_budget_and_keeps_what_the_user_set():
    from lightnas.train.recipes import LONG_BUDGET, resolve_recipe

    short, why = resolve_recipe(TrainConfig(), 13_500)  # the default run: 108k image-epochs
    assert (short.recipe, short.augment) == ("spread", False) and "without augmentation" in why
    long, why = resolve_recipe(TrainConfig(epochs=20), 54_000)
    assert (long.recipe, long.augment) == ("sandwich", True) and "long budget" in why
    assert resolve_recipe(TrainConfig(epochs=1), LONG_BUDGET)[0].recipe == "sandwich"
    assert resolve_recipe(TrainConfig(epochs=1), LONG_BUDGET - 1)[0].recipe == "spread"
    assert resolve_recipe(TrainConfig(epochs=20, augment=False), 54_000)[0].augment is False
    named = TrainConfig(recipe="progressive", epochs=20)
    assert resolve_recipe(named, 54_000) == (named, "")


def test_a_length_in_steps_trains_the_epochs_it_makes_and_records_them(digits, tmp_path):
    # 256 images: 2 steps an epoch at batch 128, so 3 steps make 2 epochs
    job = TrainJob("mobilenet", _config(digits), TrainConfig(steps=3), threads=1)
    state = train_supernet(job, digits, tmp_path / "s.pt", progress=False)
    assert len(state.history) == 2
    assert state.train_config["steps"] == 3  # what was asked: a resume compares it
    assert state.history[0]["settings"]["length"] == "2 epochs (3 steps at 2 an epoch)"


def test_auto_trains_the_chosen_recipe_and_records_it(digits, tmp_path):
    job = TrainJob("mobilenet", _config(digits), TrainConfig(epochs=1), threads=1)
    state = train_supernet(job, digits, tmp_path / "s.pt", progress=False)
    assert state.train_config["recipe"] == "auto"  # what was asked: a resume compares it
    chosen = state.history[0]["settings"]["recipe"]
    assert chosen.startswith("recipe spread without augmentation (256 training images x 1 epochs")


def test_training_sections_are_timed_only_when_asked_and_fit_in_the_epoch(digits, tmp_path):
    import time

    from lightnas.train.trainer import SupernetTrainer

    job = TrainJob("mobilenet", _config(digits), TrainConfig(epochs=1), threads=1)
    quiet = SupernetTrainer(job, digits)
    quiet.run(tmp_path / "a.pt", resume=False, progress=False)
    assert not quiet.sections.seconds  # off by default: nothing recorded
    timed = SupernetTrainer(job, digits)
    timed.sections.on = True
    t0 = time.perf_counter()
    timed.run(tmp_path / "b.pt", resume=False, progress=False)
    wall = time.perf_counter() - t0
    s, calls = timed.sections.seconds, timed.sections.calls
    assert {"data", "teacher", "students", "projection", "optimiser", "average", "validation", "checkpoint"} <= set(s)
    assert calls["teacher"] == calls["optimiser"] == timed.steps_per_epoch == 2
    assert all(v > 0 for v in s.values()) and sum(s.values()) <= wall
    # the timed run trains the same weights as the quiet one
    for k, v in torch.load(tmp_path / "a.pt", weights_only=True)["state_dict"].items():
        torch.testing.assert_close(torch.load(tmp_path / "b.pt", weights_only=True)["state_dict"][k], v)
