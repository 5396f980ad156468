import numpy as np
import pytest
import torch

from lightnas.errors import LightnasError
from lightnas.supernets import create_supernet, list_supernets
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
# 32x32 (the small layouts) and RGB 96x96 (the large ones); RGB 224x224 in the slow set
SHAPES = {"": (1, 28, 28), "_rgb32": (3, 32, 32), "_rgb96": (3, 96, 96), "_rgb224": (3, 224, 224)}
for _name in list_supernets():
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
