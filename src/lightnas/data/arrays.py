"""Arrays as lightnas takes them: images as (N, C, H, W) uint8, labels as
int64 class indices, the IDX files of the MNIST distribution, and stratified splits."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from lightnas.errors import LightnasError


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


def as_labels(y: np.ndarray, what: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise LightnasError(f"{what}: labels must be a 1-D integer array, got {y.dtype} of shape {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= MAX_CLASSES):
        raise LightnasError(f"{what}: labels must lie in 0..{MAX_CLASSES - 1}, found {y.min()}..{y.max()}")
    return y.astype(np.int64)


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


def find_idx(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def read_idx_pair(folder: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """``{prefix}-images-idx3-ubyte[.gz]`` and ``{prefix}-labels-idx1-ubyte[.gz]``."""
    xi = find_idx(folder, f"{prefix}-images-idx3-ubyte")
    yi = find_idx(folder, f"{prefix}-labels-idx1-ubyte")
    if xi is None or yi is None:
        raise LightnasError(f"{folder}: missing {prefix}-images/labels IDX files")
    return read_idx(xi), read_idx(yi).astype(np.int64)


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
