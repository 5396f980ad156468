import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(autouse=True, scope="session")
def _image_cache(tmp_path_factory):
    """Decoded image folders go to a folder of the session's, not the user's cache."""
    os.environ["LIGHTNAS_CACHE"] = str(tmp_path_factory.mktemp("image-cache"))


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory):
    """A small finished run (digits, 1 epoch, 4 evaluations under a parameter
    bound, 2 models), made once per session; tests that change it work on a copy."""
    from lightnas.cli import main

    out = tmp_path_factory.mktemp("finished") / "run"
    args = ["run", "--data", "digits", "--out", str(out), "--epochs", "1", "--budget", "4", "--max-export", "2"]
    args += ["--max-params", "150000"]
    assert main([*args, "--quiet"]) == 0
    return out
