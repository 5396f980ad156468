import numpy as np
import pytest
import torch

from lightnas.errors import LightnasError
from lightnas.supernets import create_supernet, list_supernets, supernet_from_config
from lightnas.supernets.mobilenet import PlainNet
from lightnas.testing import SupernetTests
from lightnas.testing.supernets import trained_like

torch.set_flush_denormal(True)


def test_sub_networks_share_weights():
    net = create_supernet("mobilenet")
    n_super = sum(p.numel() for n, p in net.named_parameters() if "transforms" not in n)
    n_plain = sum(p.numel() for p in net.extract(net.space.largest()).parameters())
    assert n_plain == n_super  # the largest sub-network is the whole super-network but the kernel transforms


def test_state_dict_round_trip_weights_only(tmp_path):
    net = trained_like(create_supernet("mobilenet"))
    arch = net.space.sample(np.random.default_rng(3))
    plain = net.extract(arch)
    torch.save(plain.state_dict(), tmp_path / "m.pt")
    fresh = PlainNet(net.config, arch)
    fresh.load_state_dict(torch.load(tmp_path / "m.pt", weights_only=True))
    x = torch.randn(2, 1, 28, 28)
    assert torch.equal(fresh.eval()(x), plain.eval()(x))


def test_bad_config_is_a_one_line_error():
    with pytest.raises(LightnasError):
        create_supernet("mobilenet", input_shape=(1, 4, 4))
    with pytest.raises(LightnasError):
        create_supernet("nope")


@torch.no_grad()
def test_zero_init_residual_makes_every_skippable_block_the_identity():
    net = create_supernet("mobilenet").eval()
    net.init_for_training()
    x = torch.randn(3, 1, 28, 28)
    deep = net.space.largest()
    shallow = net.space.make({**dict(deep), **{n: 1 for n in deep if n.endswith("d")}})
    net.set_active(deep)
    ref = net(x)
    net.set_active(shallow)
    torch.testing.assert_close(net(x), ref)


def test_known_metrics_hold_stage_macs_and_the_receptive_field():
    from lightnas.data import load_dataset
    from lightnas.evaluate.supernet import SupernetEvaluator

    data = load_dataset("digits", 0)
    net = create_supernet("mobilenet", data.input_shape, data.n_classes)
    ev = SupernetEvaluator(net, data)
    small, large = (ev.known_metrics(a) for a in (net.space.smallest(), net.space.largest()))
    assert set(small) == set(large)
    stages = [k for k in small if k.startswith("macs_")]
    assert stages == ["macs_s1", "macs_s2", "macs_s3", "macs_head"]
    for m in (small, large):
        assert sum(m[k] for k in stages) == pytest.approx(m["macs"])
    assert all(small[k] < large[k] for k in ("macs_s2", "macs_s3", "receptive_field"))


def test_receptive_field_of_a_chain_of_convolutions():
    from lightnas.supernets.blocks import receptive_field

    assert receptive_field([]) == 1
    assert receptive_field([(3, 1), (3, 1)]) == 5
    assert receptive_field([(3, 2), (5, 1), (7, 2), (3, 1)]) == 1 + 2 + 4 * 2 + 6 * 2 + 2 * 4


# every registered super-network gets the whole contract suite, on grey 28x28 images, RGB
# 32x32 (the small layouts) and RGB 96x96 (the large ones); RGB 224x224 in the slow set.
# The elastic one needs a user's model: tests/test_elastic.py runs the suite on three.
SHAPES = {"": (1, 28, 28), "_rgb32": (3, 32, 32), "_rgb96": (3, 96, 96), "_rgb224": (3, 224, 224)}
for _name in list_supernets(standalone=True):
    for _suffix, _shape in SHAPES.items():
        _attrs = {"supernet": _name, "input_shape": _shape}
        if _shape[1] >= 224:
            _attrs.update(pytestmark=pytest.mark.slow, n_archs=2)
        globals()[f"TestSupernet_{_name}{_suffix}"] = type(f"TestSupernet_{_name}{_suffix}", (SupernetTests,), _attrs)


class TestMobileNetOnDigits(SupernetTests):
    """The contract on 8x8 RGB-less images: strides adapt to tiny inputs."""

    supernet = "mobilenet"
    input_shape = (1, 8, 8)
    n_classes = 7


def test_the_layout_scales_with_the_input():
    """At 224 px MobileNetV3's strides: a small smallest, a classifier of a few
    percent of it, a largest between MobileNetV3-Small's and MobileNetV2's MACs."""
    from lightnas.hardware.cost import count_cost

    net = create_supernet("mobilenet", (3, 224, 224), 10)
    assert net.config.pool == "avg" and net.config.strides() == [2, 2, 2, 2, 1, 2]
    assert net.config.resolutions == (128, 160, 192, 224)
    small, large = net.space.smallest(), net.space.largest()
    plain = net.extract(small)
    cost = count_cost(plain, net.input_shape_for(small))
    assert cost["macs"] <= 60e6 and net.input_shape_for(small) == (3, 128, 128)
    assert sum(p.numel() for p in plain.classifier.parameters()) <= 0.2 * cost["params"]
    full = net.space.make({**dict(small), "r": 224})
    assert count_cost(net.extract(full), (3, 224, 224))["macs"] <= 60e6
    assert 300e6 <= count_cost(net.extract(large), (3, 224, 224))["macs"] <= 600e6
    tiny = create_supernet("mobilenet", (1, 28, 28))
    assert tiny.config.pool == "flatten" and tiny.config.resolutions == () and tiny.config.strides() == [2, 2, 1, 1]


def test_a_config_written_before_a_field_existed_still_opens():
    net = create_supernet("mobilenet")
    old = net.config.to_dict()
    del old["resolutions"]
    assert type(net.config).current(old) == net.config.to_dict()


def test_a_stage_offers_only_the_kernels_its_map_holds():
    """At 64 px the stages on 4x4 maps offer 3x3 alone (their blocks hold no
    wider weights); 224 px and the 28x28 layout keep every kernel; a config
    written before the rule keeps every kernel, so its checkpoint loads."""
    net = create_supernet("mobilenet", (3, 64, 64), 5)
    assert [net.config.stage_kernels(s) for s in range(1, 6)] == [(3, 5, 7)] * 2 + [(3,)] * 3
    assert net.space.largest()["s3b1k"] == 3 and net.space.largest()["s1b1k"] == 7
    assert net.blocks[-1].dw.weight.shape[-1] == 3
    for shape in ((3, 224, 224), (1, 28, 28)):
        cfg = create_supernet("mobilenet", shape).config
        assert all(cfg.stage_kernels(s) == cfg.kernels for s in range(1, len(cfg.stages) + 1))
    old = net.config.to_dict()
    del old["fit_kernels"]
    before = supernet_from_config("mobilenet", old)
    assert before.config.stage_kernels(5) == (3, 5, 7) and before.space.largest()["s5b1k"] == 7


@pytest.mark.parametrize("shape, used", [((1, 28, 28), 256), ((3, 64, 64), 1024)])
def test_calibration_takes_the_images_its_smallest_maps_need(shape, used):
    """256 images on 7x7 maps; every image offered on 64-px inputs' 3x3 maps (256 x 49 values a channel)."""
    net = create_supernet("mobilenet", shape, 4)
    seen = []
    net.stem.register_forward_pre_hook(lambda m, a: seen.append(len(a[0])))
    net.set_active(net.space.smallest())
    net.calibrate(torch.randn(1024, *shape))
    assert sum(seen) == used and not net.training
