"""A super-network from another package: registered by entry point, no edit of lightnas."""

import json
import os
import subprocess
import sys
from pathlib import Path

from lightnas.testing import SupernetTests

PLUGINS = Path(__file__).parent / "plugins"
sys.path.insert(0, str(PLUGINS))  # the toy package and its dist-info (its entry point) become visible
CLI = [sys.executable, "-m", "lightnas.cli"]


def setup_module():
    from toy_lightnas_plugin import ToyNet

    from lightnas.supernets import SUPERNETS

    if "toy" not in SUPERNETS:  # the registry was loaded before the path above existed
        SUPERNETS.add("toy", ToyNet)


class TestToySupernet(SupernetTests):
    supernet = "toy"
    input_shape = (1, 8, 8)
    n_archs = 2


def test_lightnas_run_with_a_plugin_supernet(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PLUGINS), os.environ.get("PYTHONPATH", "")])}
    listed = subprocess.run(
        [sys.executable, "-m", "lightnas.cli", "supernets"], capture_output=True, text=True, env=env
    )
    assert listed.returncode == 0 and "toy" in listed.stdout and "mobilenet" in listed.stdout
    out = tmp_path / "run"
    cmd = [
        "run",
        "--supernet",
        "toy",
        "--data",
        "digits",
        "--epochs",
        "1",
        "--budget",
        "3",
        "--out",
        str(out),
        "--quiet",
    ]
    res = subprocess.run([sys.executable, "-m", "lightnas.cli", *cmd], capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr
    index = json.loads((out / "models" / "index.json").read_text())
    card = json.loads((out / "models" / index["models"][0] / "card.json").read_text())
    assert card["supernet"] == "toy" and card["verification"]["onnx_max_abs_diff"] <= 1e-4


def test_a_name_registered_twice_is_an_error_naming_both():
    import pytest

    from lightnas.errors import LightnasError
    from lightnas.registry import Registry

    reg: Registry = Registry("widget")

    @reg.register("w")
    class First:
        pass

    reg.register("w")(First)  # the same object again (a module imported twice) is no conflict
    with pytest.raises(LightnasError, match=r"widget 'w' is registered twice: .*First and .*Second"):

        @reg.register("w")
        class Second:
            pass

    assert reg.get("w") is First
