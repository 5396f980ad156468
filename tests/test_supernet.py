import numpy as np
import pytest
import torch

from lightnas.errors import LightnasError
from lightnas.supernets import create_supernet, list_supernets
from lightnas.supernets.mobilenet import PlainNet
from lightnas.testing import SupernetTests

torch.set_flush_denormal(True)


def _trained_like(net):
    """Give every BatchNorm non-trivial statistics and affine parameters."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return net.eval()


@pytest.mark.parametrize("name", list_supernets())
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 16, 20), (1, 8, 8)])
@torch.no_grad()
def test_extract_equals_active_subnetwork(name, shape):
    net = _trained_like(create_supernet(name, input_shape=shape, n_classes=7))
    rng = np.random.default_rng(0)
    x = torch.randn(4, *shape)
    archs = [net.space.smallest(), net.space.largest()] + [net.space.sample(rng) for _ in range(15)]
    for arch in archs:
        net.set_active(arch)
        ref = net(x)
        plain = net.extract(arch).eval()
        assert isinstance(plain, PlainNet)
        assert ref.shape == (4, 7)
        assert float((plain(x) - ref).abs().max()) <= 1e-5, arch.key
        # no elastic machinery left: only standard modules
        kinds = {type(m).__name__ for m in plain.modules()}
        assert kinds <= {"PlainNet", "PlainBlock", "Sequential", "Conv2d", "BatchNorm2d", "Linear", "Dropout"}


def test_sub_networks_share_weights():
    net = create_supernet("mobilenet")
    n_super = sum(p.numel() for p in net.parameters())
    n_plain = sum(p.numel() for p in net.extract(net.space.largest()).parameters())
    assert n_plain == n_super  # the largest sub-network is the whole super-network


def test_state_dict_round_trip_weights_only(tmp_path):
    net = _trained_like(create_supernet("mobilenet"))
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


def test_latency_parts_cover_every_sub_network():
    net = create_supernet("mobilenet")
    every = set(net.all_latency_parts())
    rng = np.random.default_rng(0)
    for _ in range(50):
        assert set(net.latency_parts(net.space.sample(rng))) <= every


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


# every registered super-network gets the whole contract suite
for _name in list_supernets():
    globals()[f"TestSupernet_{_name}"] = type(f"TestSupernet_{_name}", (SupernetTests,), {"supernet": _name})


class TestMobileNetOnDigits(SupernetTests):
    """The contract on 8x8 RGB-less images: strides adapt to tiny inputs."""

    supernet = "mobilenet"
    input_shape = (1, 8, 8)
    n_classes = 7
