"""Zero-cost proxies: definitions, determinism, and agreement with NASLib."""

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

from lightnas.bench import nb201, nb201_net
from lightnas.errors import LightnasError
from lightnas.proxies import PROXIES, compute_proxies

NASLIB = Path(__file__).resolve().parents[2] / "shared" / "bench-data" / "nb201_zc_proxies.csv"


def _small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10),
    )  # fmt: skip


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(16, 1, 12, 12, generator=g), torch.randint(0, 10, (16,), generator=g)


def test_every_proxy_is_finite_deterministic_and_leaves_the_model_alone():
    net = _small_net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x, y = _batch()
    a = compute_proxies(net, x, y, seed=3)
    b = compute_proxies(net, x, y, seed=3)
    assert set(a) == set(PROXIES) and a == b
    assert all(np.isfinite(v) for v in a.values())
    assert a["params"] == sum(p.numel() for p in net.parameters())
    assert a["macs"] == 12 * 12 * (8 * 9 + 8 * 8 * 9) + 80
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert compute_proxies(net, x, y, names=("grad_norm",), seed=4) != compute_proxies(
        net, x, y, names=("grad_norm",), seed=3
    )


def test_synflow_grows_with_width_and_naswot_separates_images():
    x, y = _batch()
    narrow = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 100, 10))
    wide = nn.Sequential(nn.Conv2d(1, 16, 3), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 100, 10))
    sn, sw = (compute_proxies(m, x, y, names=("synflow", "naswot")) for m in (narrow, wide))
    assert sw["synflow"] > sn["synflow"]
    assert sw["naswot"] > sn["naswot"]  # more units, more distinct activation patterns


def test_bad_requests_are_one_line_errors():
    x, y = _batch()
    with pytest.raises(LightnasError, match="unknown zero-cost proxy 'foo'"):
        compute_proxies(_small_net(), x, y, names=("foo",))
    with pytest.raises(LightnasError, match="one label per image"):
        compute_proxies(_small_net(), x, y[:3])


def test_nb201_network_matches_naslib_in_rank():
    """Data-independent proxies of the PyTorch cell network agree in rank with
    NASLib's published scores (a sample of cells here; all 725 in
    bench/nb201_proxies.py)."""
    if not NASLIB.exists():
        pytest.skip("NASLib's proxy file is not beside the repository")
    with NASLIB.open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["dataset"] == "cifar10"][::60]
    x, y = torch.zeros(1, 3, 32, 32), torch.zeros(1, dtype=torch.long)
    ours = [
        compute_proxies(nb201_net.build(nb201.parse_cellstr(r["cellstr"])), x, y, names=("synflow", "params", "macs"))
        for r in rows
    ]
    for name, col in (("synflow", "synflow"), ("params", "params"), ("macs", "flops")):
        rho = spearmanr([o[name] for o in ours], [float(r[col]) for r in rows])[0]
        assert rho >= 0.95, (name, rho)


def test_packaged_synflow_is_the_cell_networks():
    d = nb201.descriptors()
    table = nb201.load_table()
    for row in (0, 777, 15624):
        net = nb201_net.build(table.codes[row])
        s = compute_proxies(net, torch.zeros(1, 3, 32, 32), torch.zeros(1, dtype=torch.long), names=("synflow",))
        assert d["zc_synflow"][row] == pytest.approx(s["synflow"], rel=1e-5)
