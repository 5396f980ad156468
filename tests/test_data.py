import numpy as np
import pytest
from PIL import Image

from lightnas.data import load_dataset
from lightnas.errors import LightnasError


def test_embedded_fashion_mnist_has_official_test_set():
    d = load_dataset("fashion-mnist", seed=0)
    assert d.input_shape == (1, 28, 28)
    assert len(d.y_test) == 10_000
    assert len(d.y_train) + len(d.y_val) == 15_000
    assert np.bincount(d.y_val).min() == np.bincount(d.y_val).max()  # stratified


def test_splits_fixed_by_seed():
    a, b, c = load_dataset("digits", 0), load_dataset("digits", 0), load_dataset("digits", 1)
    assert np.array_equal(a.y_val, b.y_val) and np.array_equal(a.x_test, b.x_test)
    assert a.info["splits"]["digest"] == b.info["splits"]["digest"] != c.info["splits"]["digest"]


def test_npz_with_and_without_validation(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (200, 12, 12, 3), dtype=np.uint8)
    y = np.arange(200) % 4
    np.savez(tmp_path / "d.npz", x=x, y=y)
    d = load_dataset(str(tmp_path / "d.npz"))
    assert d.input_shape == (3, 12, 12) and d.n_classes == 4
    np.savez(tmp_path / "e.npz", x=x, y=y, x_val=x[:20], y_val=y[:20])
    e = load_dataset(str(tmp_path / "e.npz"))
    assert len(e.y_val) == 20 and e.info["splits"]["val"] == "given"


def test_image_folder(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        for i in range(15):
            Image.fromarray(rng.integers(0, 255, (10, 10), dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    d = load_dataset(str(tmp_path))
    assert d.classes == ["cat", "dog"] and d.input_shape == (1, 10, 10)


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda p: p / "missing.npz", "does not exist"),
        (lambda p: [(p / "bad.npz").write_text("not a zip"), p / "bad.npz"][1], "cannot read"),
        (lambda p: np.savez(p / "nox.npz", a=np.zeros(3)) or p / "nox.npz", "needs arrays"),
        (
            lambda p: np.savez(p / "shape.npz", x=np.zeros((5, 2, 2, 2, 2)), y=np.zeros(5, int)) or p / "shape.npz",
            "3 or 4 dimensions",
        ),
        (lambda p: np.savez(p / "len.npz", x=np.zeros((5, 9, 9)), y=np.zeros(4, int)) or p / "len.npz", "labels"),
        (lambda p: [(p / "d.txt").write_text("x"), p / "d.txt"][1], "must be .npz"),
    ],
)
def test_bad_data_is_a_one_line_error(tmp_path, make, match):
    with pytest.raises(LightnasError, match=match):
        load_dataset(str(make(tmp_path)))


def test_unknown_dataset_name():
    with pytest.raises(LightnasError, match="unknown dataset"):
        load_dataset("cifar10")


def test_resources_are_bounded_by_the_data(tmp_path):
    import numpy as np
    import pytest
    from PIL import Image

    from lightnas.data import load_dataset
    from lightnas.errors import LightnasError

    x, y = np.zeros((20, 8, 8), np.uint8), np.arange(20) % 2
    y[0] = 10**9  # one stray label would size a classifier of a billion outputs
    np.savez(tmp_path / "d.npz", x=x, y=y)
    with pytest.raises(LightnasError, match="labels must lie in"):
        load_dataset(str(tmp_path / "d.npz"))
    # 16-bit grey images are scaled to 8 bits, not clipped to white
    for c in ("a", "b"):
        (tmp_path / "img" / c).mkdir(parents=True)
        for i in range(6):
            pixels = np.random.default_rng(i).integers(0, 65535, (10, 10)).astype(np.uint16)
            Image.fromarray(pixels).save(tmp_path / "img" / c / f"{i}.png")
    data = load_dataset(str(tmp_path / "img"))
    assert 100 < np.asarray(data.x_train).mean() < 155


def test_a_damaged_store_is_one_line_that_says_what_to_do(tmp_path):
    import pytest

    from lightnas.errors import LightnasError
    from lightnas.store import Store

    db = tmp_path / "lightnas.db"
    with Store(db) as store:
        for i in range(50):
            store.add("s", f"a{i}", {"x": i}, {"m": float(i)})
    raw = bytearray(db.read_bytes())
    raw[len(raw) // 2 : len(raw) // 2 + 512] = b"\xff" * 512  # a page damaged in the middle
    db.write_bytes(bytes(raw))
    with pytest.raises(LightnasError, match="damaged.*move it aside"), Store(db) as store:
        store.records("s")
