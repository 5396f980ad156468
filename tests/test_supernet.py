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


# every registered super-network gets the whole contract suite
for _name in list_supernets():
    globals()[f"TestSupernet_{_name}"] = type(f"TestSupernet_{_name}", (SupernetTests,), {"supernet": _name})


class TestMobileNetOnDigits(SupernetTests):
    """The contract on 8x8 RGB-less images: strides adapt to tiny inputs."""

    supernet = "mobilenet"
    input_shape = (1, 8, 8)
    n_classes = 7
