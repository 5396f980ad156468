"""One writer per run folder: an exclusive lock on ``DIR/lightnas.lock``.

The lock is an OS lock (``flock``) on an open file, so the kernel releases it
when its process ends in any way (exit, exception, ``kill -9``): a dead
writer never leaves a stale lock. The file names the process that holds it
(pid, command, start time), which is what a second writer is told. Readers
(``report`` of a finished run, ``compare``, ``export-study``) take no lock;
:func:`writer_of` tells them whether a writer is at work.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from lightnas.errors import LightnasError

LOCK_FILE = "lightnas.lock"


def _holder(fd: int) -> str:
    """Who holds the lock on ``fd``'s file, in words, from what it wrote there."""
    try:
        raw = os.pread(fd, 4096, 0)
        info = json.loads(raw.decode()) if raw else {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        info = {}
    if not isinstance(info, dict) or "pid" not in info:
        return "another process"
    return f"process {info['pid']} ({info.get('command', 'lightnas')}, since {info.get('started', '?')})"


@contextlib.contextmanager
def writing(folder: Path) -> Iterator[None]:
    """Hold the folder's exclusive lock while the block runs; a one-line error
    naming the holder when another process writes the folder. A folder that
    did not exist is made, and removed again when the block leaves nothing but
    the lock in it (a command refused before it wrote anything)."""
    folder = Path(folder)
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise LightnasError(f"cannot write to {folder}: {(exc.strerror or str(exc)).lower()}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LightnasError(
                f"{folder} is being written by {_holder(fd)}; wait for it to finish or use another --out"
            ) from None
        info = {
            "pid": os.getpid(),
            "command": shlex.join(["lightnas", *sys.argv[1:]])[:300],
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        with contextlib.suppress(OSError):  # a full disk must not stop the lock itself
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
        try:
            yield
        finally:
            if created and {p.name for p in folder.iterdir()} == {LOCK_FILE}:
                with contextlib.suppress(OSError):
                    (folder / LOCK_FILE).unlink()
                    folder.rmdir()
    finally:
        os.close(fd)  # releases the lock


def writer_of(folder: Path) -> str | None:
    """The process writing ``folder`` now, in words, or ``None`` when none is."""
    path = Path(folder) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
