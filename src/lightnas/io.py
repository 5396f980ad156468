"""Atomic file writes: a temporary file in the target folder, then a rename,
so a killed process never leaves a half-written result."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lightnas.errors import LightnasError


def atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)``, then move the file to ``path`` (mode 0644).

    The earlier file at ``path`` is untouched until the new one is whole. A
    full disk (or quota) is a one-line :class:`LightnasError` naming the file
    and the space it needed; the partial temporary file is removed."""
    path = Path(path)
    tmp = ""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        os.close(fd)
        write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:  # torch.save reports a failed write as a RuntimeError
        written = os.path.getsize(tmp) if tmp and os.path.exists(tmp) else 0
        if _is_full(exc, path):
            free = shutil.disk_usage(_existing(path.parent)).free
            raise LightnasError(
                f"no space left to write {path} ({free / 2**20:.1f} MB free, {written / 2**20:.1f} MB written "
                "before it filled): free some space and continue with --resume"
            ) from None
        if isinstance(exc, OSError):
            raise LightnasError(f"cannot write {path}: {(exc.strerror or str(exc)).lower()}") from None
        raise
    finally:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)


def _existing(p: Path) -> Path:
    while not p.exists():
        p = p.parent
    return p


def _is_full(exc: BaseException, path: Path) -> bool:
    """Whether a failed write ran out of disk: ENOSPC/EDQUOT, or another
    error of the write (torch.save's own, such as "unexpected pos 64 vs 0",
    name no errno) with under 1 MiB left beside ``path``."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return shutil.disk_usage(_existing(path.parent)).free < 2**20


def write_bytes(data: bytes, path: Path) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def write_text(text: str, path: Path) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def write_json(obj: Any, path: Path) -> None:
    write_text(json.dumps(obj, indent=2), path)
