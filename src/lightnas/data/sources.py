"""Datasets: the embedded Fashion-MNIST subset, scikit-learn digits, and the
user's own data (``.npz``, an image folder, or Fashion-MNIST/MNIST IDX files).

Torch-free. Every loader returns a :class:`Dataset` of uint8 images in NCHW
layout with fixed, seeded, stratified train/validation/test splits.
"""

from __future__ import annotations

import gzip
import hashlib
import zipfile
import zlib
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from lightnas.errors import LightnasError
from lightnas.registry import Registry

DATASETS: Registry[Any] = Registry("dataset", group="lightnas.datasets")
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
_IMAGE_EXT = {".png", ".jpg", ".jpeg"}


@dataclass
class Dataset:
    """Images as uint8 (N, C, H, W), labels as int64 in ``[0, n_classes)``.

    Preprocessing an input needs (recorded in model cards): divide by 255,
    subtract ``mean``, divide by ``std`` (per channel), NCHW layout.
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

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.x_train.shape[1:])  # type: ignore[return-value]

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @cached_property
    def mean(self) -> list[float]:
        return [float(v) for v in (self.x_train / 255.0).mean(axis=(0, 2, 3))]

    @cached_property
    def std(self) -> list[float]:
        return [float(v) for v in (self.x_train / 255.0).std(axis=(0, 2, 3)) + 1e-8]

    def preprocessing(self) -> dict[str, Any]:
        return {
            "input_dtype": "float32",
            "layout": "NCHW",
            "input_shape": [1, *self.input_shape],
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


# -- splitting ------------------------------------------------------------------
def stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, held_out) with ``fraction`` of each class held out."""
    rng = np.random.default_rng(seed)
    held: list[np.ndarray] = []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        k = max(1, int(round(fraction * len(idx)))) if len(idx) > 1 else 0
        held.append(idx[:k])
    out = np.sort(np.concatenate(held)) if held else np.zeros(0, dtype=np.int64)
    keep = np.setdiff1d(np.arange(len(y)), out)
    return keep, out


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def _finish(
    name: str,
    x: np.ndarray,
    y: np.ndarray,
    seed: int,
    classes: list[str],
    x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    x_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    hflip: bool = False,
    info: dict[str, Any] | None = None,
) -> Dataset:
    """Split what is missing (test, then validation) from the training data by seed."""
    if len(x) != len(y):
        raise LightnasError(f"{name}: {len(x)} images but {len(y)} labels")
    splits: dict[str, Any] = {"seed": seed}
    if x_test is None:
        keep, held = stratified_split(y, test_fraction, seed)
        x_test, y_test = x[held], y[held]
        x, y = x[keep], y[keep]
        splits["test"] = f"{test_fraction:.0%} of the given data, stratified"
    else:
        splits["test"] = "given"
    if x_val is None:
        keep, held = stratified_split(y, val_fraction, seed + 1)
        x_val, y_val = x[held], y[held]
        x, y = x[keep], y[keep]
        splits["val"] = f"{val_fraction:.0%} of the training data, stratified"
    else:
        splits["val"] = "given"
    assert y_val is not None and y_test is not None
    splits["digest"] = _digest(y, y_val, y_test, x[:64])
    data = Dataset(name, x, y, x_val, y_val, x_test, y_test, classes, hflip, {**(info or {}), "splits": splits})
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


# -- normalising arrays -------------------------------------------------------------
def as_nchw_uint8(x: np.ndarray, what: str) -> np.ndarray:
    """Accept (N,H,W), (N,H,W,C) or (N,C,H,W) with C in {1,3}; uint8 or floats in [0,1]."""
    x = np.asarray(x)
    if x.dtype == object or not (np.issubdtype(x.dtype, np.number)):
        raise LightnasError(f"{what}: images must be numeric arrays, got dtype {x.dtype}")
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4:
        if x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
            x = x.transpose(0, 3, 1, 2)
        elif x.shape[1] not in (1, 3):
            raise LightnasError(f"{what}: cannot tell the channel axis of shape {x.shape} (1 or 3 channels)")
    else:
        raise LightnasError(f"{what}: images must have 3 or 4 dimensions, got shape {x.shape}")
    if x.dtype != np.uint8:
        x = x.astype(np.float64)
        if not np.isfinite(x).all():
            raise LightnasError(f"{what}: images contain NaN or infinite values")
        hi = x.max() if x.size else 1.0
        x = np.clip(np.round(x * 255.0 if hi <= 1.0 else x), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(x)


MAX_CLASSES = 10_000  # the label count sizes the classifier: bounded, so a stray label cannot exhaust memory


def _labels(y: np.ndarray, what: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise LightnasError(f"{what}: labels must be a 1-D integer array, got {y.dtype} of shape {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= MAX_CLASSES):
        raise LightnasError(f"{what}: labels must lie in 0..{MAX_CLASSES - 1}, found {y.min()}..{y.max()}")
    return y.astype(np.int64)


# -- sources ----------------------------------------------------------------------
def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped), as in the MNIST distribution."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path) as fh:
                raw = fh.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise LightnasError(f"cannot read IDX file {path}: {exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 8:
        raise LightnasError(f"{path} is not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise LightnasError(f"{path}: header says {dims} but holds {data.size} bytes")
    return data.reshape(dims)


def _find_idx(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def read_idx_pair(folder: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """``{prefix}-images-idx3-ubyte[.gz]`` and ``{prefix}-labels-idx1-ubyte[.gz]``."""
    xi = _find_idx(folder, f"{prefix}-images-idx3-ubyte")
    yi = _find_idx(folder, f"{prefix}-labels-idx1-ubyte")
    if xi is None or yi is None:
        raise LightnasError(f"{folder}: missing {prefix}-images/labels IDX files")
    return read_idx(xi), read_idx(yi).astype(np.int64)


@DATASETS.register("fashion-mnist")
def load_fashion_embedded(seed: int) -> Dataset:
    """Embedded Fashion-MNIST subset: 15,000 training images, the official 10,000 test images."""
    path = resources.files("lightnas.data") / "files" / "fashion_mnist_subset.npz"
    with path.open("rb") as fh, np.load(fh) as z:
        x, y, xt, yt = z["x_train"], z["y_train"], z["x_test"], z["y_test"]
    return _finish(
        "fashion-mnist",
        x[:, None],
        y.astype(np.int64),
        seed,
        list(FASHION_CLASSES),
        x_test=xt[:, None],
        y_test=yt.astype(np.int64),
        hflip=True,
        info={"source": "embedded Fashion-MNIST subset (15,000 train, official 10,000 test), MIT"},
    )


@DATASETS.register("digits")
def load_digits(seed: int) -> Dataset:
    """scikit-learn's digits: 1,797 8x8 images of 10 classes."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    return _finish(
        "digits",
        x,
        d.target.astype(np.int64),
        seed,
        [str(c) for c in range(10)],
        info={"source": "scikit-learn digits (1,797 8x8 images)"},
    )


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
    y = _labels(arrays["y"], f"{path}:y")
    extra: dict[str, np.ndarray] = {}
    for split in ("val", "test"):
        xs, ys = arrays.get(f"x_{split}"), arrays.get(f"y_{split}")
        if (xs is None) != (ys is None):
            raise LightnasError(f"{path}: 'x_{split}' and 'y_{split}' must come together")
        if xs is not None:
            extra[f"x_{split}"] = as_nchw_uint8(xs, f"{path}:x_{split}")
            extra[f"y_{split}"] = _labels(ys, f"{path}:y_{split}")
    all_y = np.concatenate([y, *[v for k, v in extra.items() if k.startswith("y_")]])
    n_classes = int(all_y.max()) + 1 if all_y.size else 0
    return _finish(path.stem, x, y, seed, [str(c) for c in range(n_classes)], **extra, info={"source": str(path)})


MAX_IMAGE_PIXELS = 4096 * 4096


def _read_image(f: Path) -> np.ndarray:
    """One image as uint8 (H, W) grey or (H, W, 3) colour; 16-bit grey is scaled
    to 8 bits (not clipped); images over :data:`MAX_IMAGE_PIXELS` are refused
    before they are decompressed."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(f) as im:
                if im.width * im.height > MAX_IMAGE_PIXELS:
                    raise LightnasError(f"{f}: {im.width}x{im.height} is larger than {MAX_IMAGE_PIXELS} pixels")
                if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                    wide = np.asarray(im, dtype=np.int64)
                    return np.clip(wide >> 8 if wide.max() > 255 else wide, 0, 255).astype(np.uint8)
                return np.asarray(im.convert("L" if im.mode in ("L", "1", "LA") else "RGB"))
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise LightnasError(f"cannot read image {f}: {exc}") from None


def load_image_folder(path: Path, seed: int) -> Dataset:
    class_dirs = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(class_dirs) < 2:
        raise LightnasError(f"{path}: an image folder needs one subfolder per class (found {len(class_dirs)})")
    images, labels, shape, mode = [], [], None, None
    for label, d in enumerate(class_dirs):
        files = sorted(p for p in d.iterdir() if p.suffix.lower() in _IMAGE_EXT)
        if not files:
            raise LightnasError(f"{d}: no PNG or JPEG images")
        for f in files:
            arr = _read_image(f)
            mode = mode or ("L" if arr.ndim == 2 else "RGB")
            if (arr.ndim == 2) != (mode == "L"):
                raise LightnasError(f"{f}: mixes grey and colour images with the first image")
            if shape is None:
                shape = arr.shape
            if arr.shape != shape:
                raise LightnasError(f"{f}: size {arr.shape} differs from the first image's {shape}")
            images.append(arr)
            labels.append(label)
    x = as_nchw_uint8(np.stack(images), str(path))
    return _finish(path.name, x, np.array(labels), seed, [d.name for d in class_dirs], info={"source": str(path)})


def load_idx_folder(path: Path, seed: int) -> Dataset:
    x, y = read_idx_pair(path, "train")
    xt, yt = read_idx_pair(path, "t10k")
    n = int(max(y.max(), yt.max())) + 1
    classes = list(FASHION_CLASSES) if n == 10 and "fashion" in str(path).lower() else [str(c) for c in range(n)]
    return _finish(
        path.name,
        x[:, None],
        y,
        seed,
        classes,
        x_test=xt[:, None],
        y_test=yt,
        hflip="fashion" in str(path).lower(),
        info={"source": f"IDX files in {path}"},
    )


def load_dataset(spec: str, seed: int = 0) -> Dataset:
    """``fashion-mnist`` (embedded), ``digits``, or a path: ``.npz`` file, a
    folder of IDX files (``train-images-idx3-ubyte[.gz]`` ...), or an image
    folder with one subfolder per class."""
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
    if _find_idx(path, "train-images-idx3-ubyte") is not None:
        return load_idx_folder(path, seed)
    return load_image_folder(path, seed)
