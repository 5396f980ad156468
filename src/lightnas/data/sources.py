"""Datasets: the embedded Fashion-MNIST subset, scikit-learn digits, and the
user's own data (``.npz``, an image folder, or Fashion-MNIST/MNIST IDX files).

Torch-free. Every loader returns a :class:`Dataset` of uint8 images in NCHW
layout with fixed, seeded, stratified train/validation/test splits. Image
folders hold files of any size and mode, brought to one size by
:mod:`lightnas.data.images` and read from an on-disk cache; arrays are
resized the same way when ``image_size`` asks for another size.
"""

from __future__ import annotations

import dataclasses
import hashlib
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from lightnas.data.arrays import as_labels, as_nchw_uint8, find_idx, read_idx_pair, stratified_split
from lightnas.data.images import (
    SPLIT_DIRS,
    Preprocess,
    cached_images,
    channel_stats,
    choose_size,
    resize_array,
    scan_folder,
    survey,
    take_rows,
)
from lightnas.errors import LightnasError
from lightnas.registry import Registry

DATASETS: Registry[Callable[[int], Dataset]] = Registry("dataset", group="lightnas.datasets")
"""Named datasets: functions ``seed -> Dataset`` (paths are read by :func:`load_dataset` itself)."""
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
AUGMENTATIONS = ("shift", "photo")


@dataclass
class Dataset:
    """Images as uint8 (N, C, H, W) (arrays, or :class:`~lightnas.data.images.DiskImages`
    read from the cache), labels as int64 in ``[0, n_classes)``.

    Preprocessing an input needs (recorded in model cards): the resize and
    crop of ``preprocess`` when the images were brought to one size, then
    divide by 255, subtract ``mean``, divide by ``std`` (per channel), NCHW.

    ``augmentation`` is the training augmentation the data calls for:
    ``shift`` (small translations, and flips where ``hflip``; off unless asked
    for: it cost accuracy on short budgets of small grey images) or ``photo``
    (random-resized crops and horizontal flips, on unless switched off).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[str]
    hflip: bool = False  # horizontal flips keep the label (clothes yes, digits no)
    info: dict[str, Any] = field(default_factory=dict)
    augmentation: str = "shift"
    preprocess: Preprocess | None = None

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.x_train.shape[1:])  # type: ignore[return-value]

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @cached_property
    def _stats(self) -> tuple[list[float], list[float]]:
        return channel_stats(self.x_train)

    @property
    def mean(self) -> list[float]:
        return self._stats[0]

    @property
    def std(self) -> list[float]:
        return self._stats[1]

    def preprocessing(self, input_shape: tuple[int, ...] | None = None) -> dict[str, Any]:
        """Every step from an image file (or array) to the input of a model
        taking ``input_shape`` (default: the data's), in order: a model of
        lower resolution ends with a bilinear, antialiased resize of the
        normalised image (:func:`lightnas.supernets.base.resize_input`)."""
        c = self.input_shape[0]
        shape = tuple(input_shape or self.input_shape)
        steps = self.preprocess.steps() if self.preprocess is not None else []
        steps = [*steps, {"op": "normalize", "scale": 1 / 255, "mean": self.mean, "std": self.std}]
        if shape[1:] != self.input_shape[1:]:
            steps.append(
                {
                    "op": "resize_input",
                    "height": shape[1],
                    "width": shape[2],
                    "interpolation": "bilinear",
                    "antialias": True,
                }
            )
        return {
            "input_dtype": "float32",
            "layout": "NCHW",
            "input_shape": [1, *shape],
            "mode": "L" if c == 1 else "RGB",
            "steps": steps,
            "scale": 1 / 255,
            "mean": self.mean,
            "std": self.std,
            "formula": "x = (pixels_uint8 * scale - mean[c]) / std[c]",
            "classes": self.classes,
        }

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "n_classes": self.n_classes,
            "n_train": len(self.y_train),
            "n_val": len(self.y_val),
            "n_test": len(self.y_test),
            **self.info,
        }


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


VAL_FRACTION = 0.2
"""Of the training data, where no validation split is given. The sub-networks of one
super-network differ by a few tenths of a point, so the split must be large enough to rank
them: on a default run's 60 sub-networks, random 1,500-image splits rank them at Kendall tau
0.43 against held-out accuracy, 3,000-image splits at 0.53, 5,000 at 0.55
(``bench/val_size.py``)."""
TEST_FRACTION = 0.2  # of the data, where no test split is given


@dataclass
class Source:
    """What a loader read, before the missing splits are made: images and
    labels (``x``/``y``), the splits the data came with (``x_val`` ...), and
    the :class:`Dataset` fields that describe it."""

    name: str
    x: np.ndarray
    y: np.ndarray
    classes: list[str]
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    hflip: bool = False
    info: dict[str, Any] = field(default_factory=dict)
    augmentation: str = "shift"
    preprocess: Preprocess | None = None


def _finish(src: Source, seed: int) -> Dataset:
    """Split what is missing (test, then validation) from the training data by seed, and put the
    training split in a seeded random order: its first rows (BatchNorm and INT8 calibration, timing
    batches) sample every class, also where the files were read class by class."""
    if len(src.x) != len(src.y):
        raise LightnasError(f"{src.name}: {len(src.x)} images but {len(src.y)} labels")
    parts = {"train": (src.x, src.y), "val": (src.x_val, src.y_val), "test": (src.x_test, src.y_test)}
    splits: dict[str, Any] = {"seed": seed}
    for split, fraction, offset, of in (("test", TEST_FRACTION, 0, "given"), ("val", VAL_FRACTION, 1, "training")):
        if parts[split][0] is not None:
            splits[split] = "given"
            continue
        x, y = parts["train"]
        keep, held = stratified_split(y, fraction, seed + offset)
        parts[split], parts["train"] = (take_rows(x, held), y[held]), (take_rows(x, keep), y[keep])
        splits[split] = f"{fraction:.0%} of the {of} data, stratified"
    (x, y), (x_val, y_val), (x_test, y_test) = parts["train"], parts["val"], parts["test"]
    splits["digest"] = _digest(y, y_val, y_test, x[:64])  # which images each split holds, as read
    order = np.random.default_rng([seed, 2]).permutation(len(y))
    x, y = take_rows(x, order), y[order]
    info = {**src.info, "splits": splits}
    if src.preprocess is not None:
        info["image_size"] = src.preprocess.size
    data = Dataset(
        src.name, x, y, x_val, y_val, x_test, y_test, src.classes, src.hflip, info, src.augmentation, src.preprocess
    )
    _check(data)
    return data


def _check(d: Dataset) -> None:
    for split in ("train", "val", "test"):
        x, y = getattr(d, f"x_{split}"), getattr(d, f"y_{split}")
        if x.ndim != 4 or x.shape[1:] != d.x_train.shape[1:]:
            raise LightnasError(f"{d.name}: {split} images have shape {x.shape[1:]}, expected {d.x_train.shape[1:]}")
        if len(x) != len(y):
            raise LightnasError(f"{d.name}: {len(x)} {split} images but {len(y)} labels")
        if len(y) == 0:
            raise LightnasError(f"{d.name}: the {split} split is empty (too little data)")
        if y.min() < 0 or y.max() >= d.n_classes:
            raise LightnasError(f"{d.name}: {split} labels outside 0..{d.n_classes - 1}")
    if d.n_classes < 2:
        raise LightnasError(f"{d.name}: needs at least 2 classes, found {d.n_classes}")
    if min(d.x_train.shape[2:]) < 8:
        raise LightnasError(f"{d.name}: images of {d.x_train.shape[2:]} are smaller than 8x8")


@DATASETS.register("fashion-mnist")
def load_fashion_embedded(seed: int) -> Dataset:
    """Embedded Fashion-MNIST subset: 15,000 training images, the official 10,000 test images."""
    path = resources.files("lightnas.data") / "files" / "fashion_mnist_subset.npz"
    with path.open("rb") as fh, np.load(fh) as z:
        x, y, xt, yt = z["x_train"], z["y_train"], z["x_test"], z["y_test"]
    src = Source(
        "fashion-mnist",
        x[:, None],
        y.astype(np.int64),
        list(FASHION_CLASSES),
        x_test=xt[:, None],
        y_test=yt.astype(np.int64),
        hflip=True,
        info={"source": "embedded Fashion-MNIST subset (15,000 train, official 10,000 test), MIT"},
    )
    return _finish(src, seed)


@DATASETS.register("digits")
def load_digits(seed: int) -> Dataset:
    """scikit-learn's digits: 1,797 8x8 images of 10 classes."""
    # scikit-learn takes 1.4 s to import: only this data set needs it
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    classes = [str(c) for c in range(10)]
    src = Source(
        "digits", x, d.target.astype(np.int64), classes, info={"source": "scikit-learn digits (1,797 8x8 images)"}
    )
    return _finish(src, seed)


def load_npz(path: Path, seed: int) -> Dataset:
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise LightnasError(f"cannot read {path} as .npz: it holds one .npy array, not arrays x and y")
        with z:
            if "x" not in z or "y" not in z:
                raise LightnasError(f"{path}: an .npz needs arrays 'x' and 'y' (found {sorted(z.files)})")
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise LightnasError(f"cannot read {path} as .npz: {exc}") from None
    x = as_nchw_uint8(arrays["x"], f"{path}:x")
    y = as_labels(arrays["y"], f"{path}:y")
    extra: dict[str, np.ndarray] = {}
    for split in ("val", "test"):
        xs, ys = arrays.get(f"x_{split}"), arrays.get(f"y_{split}")
        if (xs is None) != (ys is None):
            raise LightnasError(f"{path}: 'x_{split}' and 'y_{split}' must come together")
        if xs is not None:
            extra[f"x_{split}"] = as_nchw_uint8(xs, f"{path}:x_{split}")
            extra[f"y_{split}"] = as_labels(ys, f"{path}:y_{split}")
    all_y = np.concatenate([y, *[v for k, v in extra.items() if k.startswith("y_")]])
    n_classes = int(all_y.max()) + 1 if all_y.size else 0
    classes = [str(c) for c in range(n_classes)]
    return _finish(Source(path.stem, x, y, classes, **extra, info={"source": str(path)}), seed)


def load_image_folder(path: Path, seed: int, image_size: int = 0, progress: bool = False) -> Dataset:
    """A folder of PNG/JPEG files of any size and mode: one subfolder per class,
    or ``train/``, ``val/``, ``test/`` folders of class subfolders (given splits).

    The mode is colour when any image is, grey otherwise; the size is
    ``image_size``, or the median shorter side (:func:`~lightnas.data.images.choose_size`),
    recorded in ``info["image_size_chosen"]``. Photo augmentation applies."""
    folder = scan_folder(path)
    every = [f for files in folder.files.values() for f in files]
    sides, colour = survey(every)
    chosen = not image_size
    pre = Preprocess(image_size or choose_size(sides), "RGB" if colour else "L")
    arrays: dict[str, Any] = {}
    for split, files in folder.files.items():
        arrays[split] = cached_images(files, pre, progress)
    info = {
        "source": str(path),
        "image_sides": [int(min(sides)), int(max(sides))],
        "image_size_chosen": "median shorter side" if chosen else "--image-size",
    }
    main = "all" if "all" in arrays else "train"
    extra = {
        f"{k}_{split}": v
        for split in ("val", "test")
        if split in arrays
        for k, v in (("x", arrays[split]), ("y", folder.labels[split]))
    }
    src = Source(
        path.name,
        arrays[main],
        folder.labels[main],
        folder.classes,
        **extra,
        hflip=True,
        info=info,
        augmentation="photo",
        preprocess=pre,
    )
    return _finish(src, seed)


def load_idx_folder(path: Path, seed: int) -> Dataset:
    x, y = read_idx_pair(path, "train")
    xt, yt = read_idx_pair(path, "t10k")
    n = int(max(y.max(), yt.max())) + 1
    classes = list(FASHION_CLASSES) if n == 10 and "fashion" in str(path).lower() else [str(c) for c in range(n)]
    src = Source(
        path.name,
        x[:, None],
        y,
        classes,
        x_test=xt[:, None],
        y_test=yt,
        hflip="fashion" in str(path).lower(),
        info={"source": f"IDX files in {path}"},
    )
    return _finish(src, seed)


def load_dataset(spec: str, seed: int = 0, image_size: int = 0, progress: bool = False) -> Dataset:
    """``fashion-mnist`` (embedded), ``digits``, or a path: ``.npz`` file, a
    folder of IDX files (``train-images-idx3-ubyte[.gz]`` ...), or an image
    folder (one subfolder per class, or ``train/``, ``val/``, ``test/`` of
    those). ``image_size`` (pixels, 0: the data's own) brings every image to
    that square size (shorter side resized, centre crop); ``progress`` shows
    the decoding of a folder met for the first time."""
    if image_size and image_size < 8:
        raise LightnasError(f"--image-size must be at least 8, not {image_size}")
    path = Path(spec).expanduser()
    if spec not in DATASETS and path.is_dir() and find_idx(path, "train-images-idx3-ubyte") is None:
        return load_image_folder(path, seed, image_size, progress)
    data = _load_arrays(spec, seed)
    return data if not image_size or data.input_shape[1:] == (image_size, image_size) else resized(data, image_size)


def resized(data: Dataset, size: int) -> Dataset:
    """``data`` with every split brought to ``size`` x ``size`` (shorter side, centre crop)."""
    pre = Preprocess(size, "L" if data.input_shape[0] == 1 else "RGB")
    splits = {s: resize_array(np.asarray(getattr(data, f"x_{s}")), pre) for s in SPLIT_DIRS}
    info = {**data.info, "image_size": size, "image_size_chosen": "--image-size"}
    info["splits"] = {**info["splits"], "digest": _digest(data.y_train, data.y_val, data.y_test, splits["train"][:64])}
    return dataclasses.replace(
        data, x_train=splits["train"], x_val=splits["val"], x_test=splits["test"], info=info, preprocess=pre
    )


def _load_arrays(spec: str, seed: int) -> Dataset:
    if spec in DATASETS:
        return DATASETS.get(spec)(seed)
    path = Path(spec).expanduser()
    if not path.exists():
        if "/" not in spec and "." not in spec:
            raise LightnasError(f"unknown dataset {spec!r} (named: {', '.join(DATASETS.names())}; or give a path)")
        raise LightnasError(f"data path {spec} does not exist")
    if path.is_file():
        if path.suffix != ".npz":
            raise LightnasError(f"{path}: data files must be .npz (arrays x, y[, x_val, y_val])")
        return load_npz(path, seed)
    return load_idx_folder(path, seed)
