"""Images at real sizes: folders of PNG/JPEG files of any size and mode, resized
to one training size and cached once on disk.

Torch-free. The pipeline every image goes through (recorded in model cards as
:meth:`Preprocess.steps`, so a user reproduces it with Pillow and NumPy):

1. decode; convert to the data set's mode (``L`` grey or ``RGB``; a colour
   image in a grey set becomes grey, a transparent one is laid on white);
2. resize so that the shorter side is ``size`` pixels (bilinear, antialiased);
3. centre-crop to ``size`` x ``size``.

A folder is decoded once into a uint8 ``(N, C, size, size)`` ``.npy`` file in
the cache folder (``LIGHTNAS_CACHE``, default ``~/.cache/lightnas``), keyed by
the files' names, sizes and modification times and by the pipeline; the
training reads the rows of each batch from it (:class:`DiskImages`), so the
process's memory does not grow with the data set.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from lightnas.errors import LightnasError
from lightnas.io import atomic_write

IMAGE_EXT = {".png", ".jpg", ".jpeg"}
MAX_IMAGE_PIXELS = 4096 * 4096
MIN_SIDE = 8  # smaller images are refused (a 1-pixel file is a broken export, not a photo)
MAX_AUTO_SIZE = 224  # the chosen training size never exceeds MobileNet's usual input
SPLIT_DIRS = ("train", "val", "test")


@dataclass(frozen=True)
class Preprocess:
    """Resize the shorter side to ``size`` and centre-crop ``size`` x ``size``, in ``mode``."""

    size: int
    mode: str  # "L" or "RGB"

    def __post_init__(self) -> None:
        if self.mode not in ("L", "RGB"):
            raise LightnasError(f"image mode must be L or RGB, not {self.mode!r}")
        if self.size < MIN_SIDE:
            raise LightnasError(f"--image-size must be at least {MIN_SIDE}, not {self.size}")

    @property
    def channels(self) -> int:
        return 1 if self.mode == "L" else 3

    def steps(self) -> list[dict[str, Any]]:
        """The steps in order, as the model card states them."""
        return [
            {"op": "convert", "mode": self.mode, "transparent": "laid on white"},
            {"op": "resize", "shorter_side": self.size, "interpolation": "bilinear", "antialias": True},
            {"op": "center_crop", "height": self.size, "width": self.size},
        ]

    def apply(self, im: Any) -> np.ndarray:
        """A Pillow image -> uint8 ``(C, size, size)``."""

        im = _to_mode(im, self.mode)
        w, h = im.size
        scale = self.size / min(w, h)
        nw, nh = max(self.size, round(w * scale)), max(self.size, round(h * scale))
        if (nw, nh) != (w, h):
            im = im.resize((nw, nh), Image.Resampling.BILINEAR, reducing_gap=None)
        left, top = (nw - self.size) // 2, (nh - self.size) // 2
        im = im.crop((left, top, left + self.size, top + self.size))
        arr = np.asarray(im, dtype=np.uint8)
        return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def _to_mode(im: Any, mode: str) -> Any:
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        wide = np.asarray(im, dtype=np.int64)
        im = Image.fromarray(np.clip(wide >> 8 if wide.max() > 255 else wide, 0, 255).astype(np.uint8))
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA"):
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, im.convert("RGBA"))
    return im.convert(mode) if im.mode != mode else im


def is_colour(mode: str) -> bool:
    """Whether a Pillow mode holds colour (palette images are taken as colour)."""
    return mode not in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")


# -- reading files ----------------------------------------------------------------------------
def open_checked(f: Path) -> Any:
    """Open ``f`` with Pillow (headers only); one-line errors naming the file."""

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(f)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise LightnasError(f"cannot read image {f}: {exc}") from None
    if im.width * im.height > MAX_IMAGE_PIXELS:
        im.close()
        raise LightnasError(f"{f}: {im.width}x{im.height} is larger than {MAX_IMAGE_PIXELS} pixels")
    if min(im.width, im.height) < MIN_SIDE:
        im.close()
        raise LightnasError(f"{f}: {im.width}x{im.height} pixels is too small (at least {MIN_SIDE} on each side)")
    return im


def decode(f: Path, pre: Preprocess) -> np.ndarray:
    """One file through the pipeline; a truncated or broken file is a one-line error naming it."""

    with open_checked(f) as im:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                im.load()
                return pre.apply(im)
        except (OSError, ValueError, SyntaxError) as exc:
            raise LightnasError(f"cannot read image {f}: {exc}") from None


@dataclass(frozen=True)
class Folder:
    """The files of an image folder: per split (``all`` when the folder has no
    ``train``/``val``/``test`` subfolders) the files and their labels."""

    root: Path
    classes: list[str]
    files: dict[str, list[Path]]
    labels: dict[str, np.ndarray]


def _class_files(root: Path, classes: list[str] | None) -> tuple[list[str], list[Path], list[int]]:
    dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    names = classes if classes is not None else [d.name for d in dirs]
    unknown = sorted({d.name for d in dirs} - set(names))
    if unknown:
        raise LightnasError(f"{root}: class folder {unknown[0]!r} is not among the training classes")
    files, labels = [], []
    for label, name in enumerate(names):
        d = root / name
        found = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_EXT) if d.is_dir() else []
        if not found and classes is None:
            raise LightnasError(f"{d}: no PNG or JPEG images")
        files += found
        labels += [label] * len(found)
    return names, files, labels


def scan_folder(root: Path) -> Folder:
    """One subfolder per class, or ``train/`` (and ``val/``, ``test/``) each
    holding one subfolder per class (the classes are the training split's)."""
    if not (root / "train").is_dir():
        classes, files, labels = _class_files(root, None)
        if len(classes) < 2:
            raise LightnasError(f"{root}: an image folder needs one subfolder per class (found {len(classes)})")
        return Folder(root, classes, {"all": files}, {"all": np.array(labels, dtype=np.int64)})
    classes, files, labels = _class_files(root / "train", None)
    if len(classes) < 2:
        raise LightnasError(f"{root / 'train'}: needs one subfolder per class (found {len(classes)})")
    out_files, out_labels = {"train": files}, {"train": np.array(labels, dtype=np.int64)}
    for split in ("val", "test"):
        if (root / split).is_dir():
            _, f, lab = _class_files(root / split, classes)
            if not f:
                raise LightnasError(f"{root / split}: no PNG or JPEG images")
            out_files[split], out_labels[split] = f, np.array(lab, dtype=np.int64)
    return Folder(root, classes, out_files, out_labels)


def survey(files: Sequence[Path]) -> tuple[list[int], bool]:
    """(shorter side of every image, whether any holds colour), from headers only."""
    sides, colour = [], False
    for f in files:
        with open_checked(f) as im:
            sides.append(min(im.size))
            colour = colour or is_colour(im.mode)
    return sides, colour


def choose_size(sides: Sequence[int]) -> int:
    """The training side chosen from the data: the median shorter side, at
    most :data:`MAX_AUTO_SIZE`, rounded down to a multiple of 8 from 32 up."""
    size = min(int(np.median(sides)), MAX_AUTO_SIZE)
    return size - size % 8 if size >= 32 else size


# -- the cache --------------------------------------------------------------------------------
def cache_dir() -> Path:
    """``LIGHTNAS_CACHE``, else ``$XDG_CACHE_HOME/lightnas``, else ``~/.cache/lightnas``."""
    if os.environ.get("LIGHTNAS_CACHE"):
        return Path(os.environ["LIGHTNAS_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lightnas"


def _key(files: Sequence[Path], pre: Preprocess) -> str:
    h = hashlib.sha256(json.dumps([pre.size, pre.mode, 1]).encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def cached_images(files: Sequence[Path], pre: Preprocess, progress: bool = False) -> DiskImages:
    """The files through ``pre`` as one uint8 ``(N, C, size, size)`` array on
    disk, decoded on the first call and read back after (written atomically:
    an interrupted decode leaves no partial cache)."""
    path = cache_dir() / f"images-{_key(files, pre)}.npy"
    if not path.exists():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LightnasError(f"cannot create the image cache {path.parent}: {exc.strerror}") from None
        shape = (len(files), pre.channels, pre.size, pre.size)

        def write(tmp: Path) -> None:
            # written row by row through the file, not a memory map: the pages
            # written stay in the OS's cache, not in this process's resident memory
            header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False}
            bar = _bar(len(files), progress)
            with open(tmp, "wb") as fh:
                np.lib.format.write_array_header_1_0(fh, {**header, "shape": shape})
                for f in files:
                    fh.write(np.ascontiguousarray(decode(f, pre)).tobytes())
                    if bar is not None:
                        bar.update(1)
            if bar is not None:
                bar.close()

        atomic_write(path, write)
    return DiskImages(path)


def _bar(total: int, on: bool) -> Any:
    if not on:
        return None

    return tqdm(total=total, desc="decode", unit="img", file=sys.stderr)


class DiskImages:
    """Rows of a uint8 ``.npy`` image array on disk, read when indexed.

    Behaves as a read-only array for what the pipeline does with images
    (``len``, ``shape``, ``dtype``, indexing by an int, a slice or an index
    array, which returns a NumPy array); :meth:`take` selects rows without
    reading them. Rows are read with ``os.pread``, so the pages read stay in
    the OS's file cache and not in the process's resident memory."""

    def __init__(self, path: Path, rows: np.ndarray | None = None):
        self.path = Path(path)
        try:
            mm = np.load(self.path, mmap_mode="r", allow_pickle=False)  # the header only; rows are read below
        except (OSError, ValueError) as exc:
            raise LightnasError(f"cannot read the image cache {path}: {exc}") from None
        shape, dtype, self.offset = mm.shape, mm.dtype, int(mm.offset)
        del mm
        if dtype != np.uint8 or len(shape) != 4:
            raise LightnasError(f"{path} is not a lightnas image cache")
        self.full_len = int(shape[0])
        self.row_shape = tuple(int(s) for s in shape[1:])
        self.row_bytes = int(np.prod(self.row_shape))
        self.rows = np.arange(self.full_len) if rows is None else np.asarray(rows, dtype=np.int64)
        self.dtype = np.dtype(np.uint8)
        self.ndim = 4
        self._fd: int | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.rows), *self.row_shape)

    def __len__(self) -> int:
        return len(self.rows)

    def take(self, idx: np.ndarray) -> DiskImages:
        """The rows ``idx`` (positions in this view), not read."""
        return DiskImages(self.path, self.rows[np.asarray(idx, dtype=np.int64)])

    def _read(self, rows: np.ndarray) -> np.ndarray:
        if self._fd is None or os.getpid() != getattr(self, "_pid", None):
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
        out = np.empty((len(rows), *self.row_shape), dtype=np.uint8)
        flat = out.reshape(len(rows), -1)
        for i, r in enumerate(rows):
            buf = os.pread(self._fd, self.row_bytes, self.offset + int(r) * self.row_bytes)
            flat[i] = np.frombuffer(buf, dtype=np.uint8)
        return out

    def __getitem__(self, idx: Any) -> np.ndarray:
        if isinstance(idx, int | np.integer):
            return self._read(self.rows[[int(idx)]])[0]
        return self._read(self.rows[idx])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        arr = self._read(self.rows)
        return arr if dtype is None else arr.astype(dtype)

    def __getstate__(self) -> dict[str, Any]:  # a file descriptor does not cross processes
        return {**self.__dict__, "_fd": None}

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None and getattr(self, "_pid", None) == os.getpid():
            os.close(self._fd)  # type: ignore[arg-type]


def take_rows(x: Any, idx: np.ndarray) -> Any:
    """``x[idx]`` for arrays; a view of the rows for :class:`DiskImages` (nothing read)."""
    return x.take(idx) if isinstance(x, DiskImages) else x[idx]


def channel_stats(x: Any, chunk_values: int = 1 << 25) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of uint8 images scaled to [0, 1],
    accumulated over chunks of about ``chunk_values`` pixel values (float64:
    256 MB at the default, whatever the data set's size)."""
    n = len(x)
    c = x.shape[1]
    chunk = max(1, chunk_values // max(1, int(np.prod(x.shape[1:]))))
    s, ss, count = np.zeros(c), np.zeros(c), 0
    for i in range(0, n, chunk):
        part = np.asarray(x[i : i + chunk], dtype=np.float64) / 255.0
        s += part.sum(axis=(0, 2, 3))
        ss += (part * part).sum(axis=(0, 2, 3))
        count += part.shape[0] * part.shape[2] * part.shape[3]
    mean = s / max(count, 1)
    var = np.maximum(ss / max(count, 1) - mean * mean, 0.0)
    return [float(v) for v in mean], [float(v) for v in np.sqrt(var) + 1e-8]


def resize_array(x: np.ndarray, pre: Preprocess) -> np.ndarray:
    """uint8 ``(N, C, H, W)`` images in memory through ``pre`` (for arrays given at another size)."""

    out = np.empty((len(x), pre.channels, pre.size, pre.size), dtype=np.uint8)
    for i, img in enumerate(x):
        im = Image.fromarray(img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0))
        out[i] = pre.apply(im)
    return out
