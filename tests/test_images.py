"""Image folders at real sizes: mixed sizes and modes, given splits, the on-disk cache,
bad files, the card's preprocessing reproduced by hand, photo augmentation."""

import dataclasses
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from lightnas.data import load_dataset
from lightnas.data.images import DiskImages, cache_dir, choose_size
from lightnas.errors import LightnasError


def _photo(rng, h, w, mode="RGB"):
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    arr = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
    return Image.fromarray(arr[..., 0] if channels == 1 else arr, mode)


def _folder(root, sizes=((40, 60), (64, 64), (90, 48)), per_class=8, modes=("RGB", "L", "RGBA"), ext=".png"):
    rng = np.random.default_rng(0)
    for c in ("cat", "dog", "owl"):
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            h, w = sizes[i % len(sizes)]
            _photo(rng, h, w, modes[i % len(modes)]).save(root / c / f"{i}{ext}")
    return root


def test_a_folder_of_mixed_sizes_and_modes_loads_at_one_size(tmp_path):
    d = load_dataset(str(_folder(tmp_path / "f")))
    sides = [40, 64, 48] * 8
    assert d.input_shape == (3, choose_size(sides), choose_size(sides)) == (3, 48, 48)
    assert d.info["image_size_chosen"] == "median shorter side" and d.info["image_sides"] == [40, 64]
    assert d.augmentation == "photo" and d.hflip
    e = load_dataset(str(tmp_path / "f"), image_size=32)
    assert e.input_shape == (3, 32, 32) and e.info["image_size_chosen"] == "--image-size"
    assert e.info["splits"]["digest"] != d.info["splits"]["digest"]
    # grey everywhere stays grey
    g = load_dataset(str(_folder(tmp_path / "g", modes=("L",))), image_size=16)
    assert g.input_shape == (1, 16, 16)


def test_given_splits_are_kept(tmp_path):
    _folder(tmp_path / "d" / "train", per_class=10)
    _folder(tmp_path / "d" / "test", per_class=3)
    d = load_dataset(str(tmp_path / "d"), image_size=16)
    assert len(d.y_test) == 9 and d.info["splits"]["test"] == "given"
    assert len(d.y_train) + len(d.y_val) == 30 and d.classes == ["cat", "dog", "owl"]
    (tmp_path / "d" / "test" / "emu").mkdir()
    with pytest.raises(LightnasError, match="'emu' is not among the training classes"):
        load_dataset(str(tmp_path / "d"), image_size=16)


def test_the_training_split_of_a_folder_read_class_by_class_is_in_random_order(tmp_path):
    """Its first rows (BatchNorm and INT8 calibration) sample every class; the order is the seed's."""
    _folder(tmp_path / "d" / "train", per_class=30, sizes=((16, 16),), modes=("RGB",))
    _folder(tmp_path / "d" / "test", per_class=2, sizes=((16, 16),), modes=("RGB",))
    d = load_dataset(str(tmp_path / "d"))
    assert set(d.y_train[:12].tolist()) == {0, 1, 2}
    again, other = load_dataset(str(tmp_path / "d")), load_dataset(str(tmp_path / "d"), seed=1)
    assert np.array_equal(again.y_train, d.y_train) and not np.array_equal(other.y_train, d.y_train)
    assert np.array_equal(np.asarray(again.x_train[np.arange(5)]), np.asarray(d.x_train[np.arange(5)]))


def test_the_cache_is_written_once_and_read_per_row(tmp_path):
    folder = _folder(tmp_path / "f")
    a = load_dataset(str(folder), image_size=24)
    caches = sorted(cache_dir().glob("images-*.npy"))
    stamps = [p.stat().st_mtime_ns for p in caches]
    b = load_dataset(str(folder), image_size=24)
    assert [p.stat().st_mtime_ns for p in sorted(cache_dir().glob("images-*.npy"))] == stamps
    assert isinstance(a.x_train, DiskImages) and np.array_equal(np.asarray(a.x_train), np.asarray(b.x_train))
    whole = np.load(a.x_train.path)
    assert np.array_equal(a.x_train[3], whole[a.x_train.rows[3]])
    assert np.array_equal(a.x_train[np.array([5, 1])], whole[a.x_train.rows[[5, 1]]])
    assert np.array_equal(a.x_val[:2], whole[a.x_val.rows[:2]])
    # a changed file is decoded again
    im = Image.open(folder / "cat" / "0.png").convert("RGB")
    im.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(folder / "cat" / "0.png")
    os.utime(folder / "cat" / "0.png", ns=(1, 1))
    load_dataset(str(folder), image_size=24)
    assert len(list(cache_dir().glob("images-*.npy"))) == len(caches) + 1


@pytest.mark.parametrize(
    "damage,match",
    [
        (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 3]), "cannot read image .*0.jpg"),
        (lambda p: Image.new("RGB", (1, 1)).save(p, "JPEG"), "0.jpg: 1x1 pixels is too small"),
        (lambda p: p.write_text("not an image"), "cannot read image .*0.jpg"),
    ],
)
def test_a_bad_file_is_one_line_naming_it(tmp_path, damage, match):
    folder = _folder(tmp_path / "f", ext=".jpg", modes=("RGB",))
    damage(folder / "dog" / "0.jpg")
    with pytest.raises(LightnasError, match=match) as err:
        load_dataset(str(folder), image_size=16)
    assert "\n" not in str(err.value) and "dog" in str(err.value)


def test_the_cards_preprocessing_is_reproduced_with_pillow_and_numpy(tmp_path):
    from lightnas.tensors import to_tensor

    folder = tmp_path / "t"
    _folder(folder / "train", per_class=6)
    _folder(folder / "test", per_class=2)
    d = load_dataset(str(folder), image_size=32)
    pre = json.loads(json.dumps(d.preprocessing()))
    assert [s["op"] for s in pre["steps"]] == ["convert", "resize", "center_crop", "normalize"]
    # what a user writes from the card alone (the README's example)
    path = sorted((folder / "test" / "cat").iterdir())[1]
    im = Image.open(path)
    im = Image.alpha_composite(Image.new("RGBA", im.size, "white"), im.convert("RGBA")) if "A" in im.mode else im
    im = im.convert(pre["mode"])
    side = pre["steps"][1]["shorter_side"]
    w, h = im.size
    im = im.resize((max(side, round(w * side / min(w, h))), max(side, round(h * side / min(w, h)))), Image.BILINEAR)
    left, top = (im.width - side) // 2, (im.height - side) // 2
    im = im.crop((left, top, left + side, top + side))
    norm = pre["steps"][-1]
    x = (np.asarray(im, np.float32) * norm["scale"] - norm["mean"]) / norm["std"]
    x = x.transpose(2, 0, 1)[None]
    mine = to_tensor(d.x_test[1:2], d).numpy()
    np.testing.assert_allclose(x, mine, atol=1e-5)


def test_npz_arrays_are_brought_to_the_image_size(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.integers(0, 255, (60, 20, 30, 3), dtype=np.uint8), y=np.arange(60) % 3)
    d = load_dataset(str(tmp_path / "d.npz"), image_size=16)
    assert d.input_shape == (3, 16, 16) and d.preprocess is not None
    assert load_dataset(str(tmp_path / "d.npz")).input_shape == (3, 20, 30)


def test_splits_from_the_cache_are_normalised_per_batch_exactly():
    from lightnas.tensors import Images, split_tensors, to_tensor

    d = load_dataset("digits", 0)
    images, _ = split_tensors(d, "val")
    assert isinstance(images, Images) and images.source.dtype == torch.uint8
    torch.testing.assert_close(images[:50], to_tensor(d.x_val[:50], d), rtol=0, atol=0)


def test_photo_augmentation_is_a_seeded_crop_that_keeps_the_size():
    from lightnas.tasks.classification import ClassificationTask, random_resized_crop

    x = torch.rand(16, 3, 24, 24)
    a = random_resized_crop(x, torch.Generator().manual_seed(1), hflip=True)
    b = random_resized_crop(x, torch.Generator().manual_seed(1), hflip=True)
    assert a.shape == x.shape and torch.equal(a, b) and not torch.allclose(a, x)
    flat = torch.full((4, 1, 10, 10), 0.25)  # a crop of a flat image is flat
    torch.testing.assert_close(random_resized_crop(flat, torch.Generator().manual_seed(0), True), flat)
    # a horizontal ramp: a crop keeps its direction unless mirrored; both happen with flips
    ramp = torch.linspace(0, 1, 32).expand(64, 1, 32, 32).contiguous()
    rising = random_resized_crop(ramp, torch.Generator().manual_seed(0), True).diff(dim=3).mean((1, 2, 3))
    assert (rising > 0).any() and (rising < 0).any()
    assert (random_resized_crop(ramp, torch.Generator().manual_seed(0), False).diff(dim=3).mean((1, 2, 3)) > 0).all()
    task = ClassificationTask(augment=True, policy="photo", hflip=True)
    assert task.crop and task.pad == 0


def test_the_data_decides_the_kind_of_augmentation_and_the_budget_whether(tmp_path):
    from lightnas.config import LONG_BUDGET, TrainConfig
    from lightnas.tasks import task_for

    photos = load_dataset(str(_folder(tmp_path / "f")), image_size=16)
    clothes = load_dataset("fashion-mnist", 0)
    n = len(photos.y_train)
    long = TrainConfig(epochs=-(-LONG_BUDGET // n))  # the fewest epochs that make a long budget
    short = TrainConfig(epochs=long.epochs - 1)
    assert task_for(photos, long).crop and not task_for(photos, short).crop
    assert task_for(photos, TrainConfig(epochs=1, augment=True)).crop
    assert not task_for(photos, dataclasses.replace(long, augment=False)).crop
    off = task_for(clothes, TrainConfig())  # the default run: 108k image-epochs, a short budget
    assert off.pad == 0 and not off.crop and not off.hflip and not off.augments
    assert task_for(clothes, TrainConfig(augment=True)).pad == 2
    assert task_for(clothes, TrainConfig(augment=True)).augments and task_for(photos, long).augments

    from lightnas.tasks.base import Task

    class Still(Task):  # a task of a plug-in's: it augments where it overrides augment
        loss = distill_loss = metric = None

    class Moving(Still):
        def augment(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
            return x.flip(3)

    assert not Still().augments and Moving().augments
    assert not task_for(clothes, TrainConfig(augment=True)).crop
    # a length in steps counts as the epochs it makes of this data
    per_epoch = -(-n // 128)
    assert task_for(photos, TrainConfig(steps=long.epochs * per_epoch)).crop
