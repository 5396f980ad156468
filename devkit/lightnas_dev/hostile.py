"""Hostile inputs and faults, and the promise each must keep.

A :class:`Case` prepares a sandbox folder (bad data, a tampered copy of a
finished run, a malformed option) and names the command to run there.
:func:`check` runs it and holds it to the promise of the README:

- an error is one line on stderr (``lightnas: error: ...``), exit status 2,
  names the problem (never "internal error"), and comes within
  :data:`MAX_ERROR_SECONDS` of the start when it does not depend on training;
- a failed command changes nothing on disk: every file in the sandbox (the run
  folder included) keeps its bytes, and no file appears;
- a command that succeeds touches nothing outside its run folder.

``bench/hostile.py`` runs every case of
:func:`lightnas_dev.hostile_cases.battery` in fresh processes;
the tests run :func:`malformed_files`, seeded random corruptions of every file
a user hands in or a run folder holds.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import sqlite3
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAX_ERROR_SECONDS = 10.0
FAST = ["--epochs", "1", "--budget", "2", "--max-export", "2", "--quiet"]
"""Options that keep a case that unexpectedly succeeds short."""

Invoke = Callable[[list[str], Path], tuple[int, str]]
"""Runs ``lightnas`` with these arguments in this folder; returns (exit status, stderr)."""


@dataclass(frozen=True)
class Case:
    """One hostile input. ``make(sandbox)`` prepares the sandbox (a copy of a
    finished run is at ``sandbox / "run"`` when ``needs_run``) and returns the
    command's arguments. ``expect`` is ``"error"`` (with ``needle`` in the
    message) or ``"ok"``."""

    name: str
    make: Callable[[Path], list[str]]
    expect: str = "error"
    needle: str = ""
    needs_run: bool = False


@dataclass(frozen=True)
class Outcome:
    case: str
    passed: bool
    why: str
    seconds: float
    message: str


def snapshot(folder: Path) -> dict[str, str]:
    """Relative path -> sha1 of every file under ``folder`` (folders as ``dir``),
    the run folders' lock files aside (held by any writer, successful or not)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.name == "lightnas.lock":
            continue
        rel = str(p.relative_to(folder))
        out[rel] = "dir" if p.is_dir() else hashlib.sha1(p.read_bytes()).hexdigest()
    return out


def check(case: Case, sandbox: Path, invoke: Invoke, finished_run: Path | None = None) -> Outcome:
    """Prepare ``case`` in the empty folder ``sandbox``, run it and judge it."""
    if case.needs_run:
        if finished_run is None:
            raise ValueError(f"{case.name} needs a finished run")
        shutil.copytree(finished_run, sandbox / "run")
    args = case.make(sandbox)
    before = snapshot(sandbox)
    t0 = time.perf_counter()
    rc, err = invoke(args, sandbox)
    seconds = time.perf_counter() - t0
    after = snapshot(sandbox)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    message = lines[-1] if lines else ""

    def outcome(passed: bool, why: str) -> Outcome:
        return Outcome(case.name, passed, why, round(seconds, 2), message)

    if case.expect == "ok" or (case.expect == "any" and rc == 0):
        if rc != 0:
            return outcome(False, f"exit {rc}, expected success")
        outside = {k for k in set(before) | set(after) if before.get(k) != after.get(k) and not _in_run(k)}
        return outcome(not outside, f"touched outside the run folder: {sorted(outside)[:3]}" if outside else "ok")
    if rc != 2:
        return outcome(False, f"exit {rc}, expected 2")
    if len(lines) != 1 or not message.startswith("lightnas: error:"):
        return outcome(False, f"{len(lines)} stderr lines, expected one 'lightnas: error:' line")
    if "internal error" in message:
        return outcome(False, "an internal error, not a named problem")
    if case.needle and case.needle not in message:
        return outcome(False, f"message lacks {case.needle!r}")
    if before != after:
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        return outcome(False, f"files changed by a failed command: {changed[:3]}")
    if seconds > MAX_ERROR_SECONDS:
        return outcome(False, f"error after {seconds:.1f} s")
    return outcome(True, "ok")


def _in_run(rel: str) -> bool:
    """Whether ``rel`` lies in the run folder: the cases name it ``run`` or ``out``."""
    return rel.split("/")[0] in ("run", "out")


# -- makers ------------------------------------------------------------------------------
def write_npz(path: Path, **arrays: np.ndarray) -> Path:
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def good_arrays(n: int = 40, shape: tuple[int, ...] = (8, 8), classes: int = 4) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"x": rng.integers(0, 256, (n, *shape), dtype=np.uint8), "y": np.arange(n) % classes}


def write_idx(folder: Path, n: int = 40, compress: bool = False) -> Path:
    """A small valid IDX folder (train and t10k images and labels)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix in ("train", "t10k"):
        x = rng.integers(0, 256, (n, 8, 8), dtype=np.uint8)
        y = (np.arange(n) % 4).astype(np.uint8)
        files = {
            f"{prefix}-images-idx3-ubyte": struct.pack(">IIII", 0x803, n, 8, 8) + x.tobytes(),
            f"{prefix}-labels-idx1-ubyte": struct.pack(">II", 0x801, n) + y.tobytes(),
        }
        for name, raw in files.items():
            if compress:
                (folder / f"{name}.gz").write_bytes(gzip.compress(raw))
            else:
                (folder / name).write_bytes(raw)
    return folder


def write_images(folder: Path, classes: int = 2, per_class: int = 6, size: int = 8, mode: str = "L") -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(classes):
        d = folder / f"class{c}"
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            shape = (size, size) if mode == "L" else (size, size, 3)
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode).save(d / f"{i}.png")
    return folder


def _run(data: str | Path, *extra: str) -> list[str]:
    return ["run", "--data", str(data), "--out", "out", *FAST, *extra]


def data_case(name: str, build: Callable[[Path], Path | str], needle: str = "", expect: str = "error") -> Case:
    return Case(name, lambda s: _run(build(s)), expect, needle)


def option_case(name: str, options: list[str], needle: str = "", data: str = "digits") -> Case:
    return Case(name, lambda s: ["run", "--data", data, "--out", "out", *options], "error", needle)


def run_case(
    name: str, tamper: Callable[[Path], None], command: list[str], needle: str = "", expect: str = "error"
) -> Case:
    def make(s: Path) -> list[str]:
        first = first_model(s / "run") if "FIRST" in command else ""
        tamper(s / "run")
        return [{"RUN": "run", "FIRST": first}.get(c, c) for c in command]

    return Case(name, make, expect, needle, needs_run=True)


def bytes_file(name: str, raw: bytes) -> Callable[[Path], Path]:
    def build(s: Path) -> Path:
        (s / name).write_bytes(raw)
        return s / name

    return build


def npz_file(name: str, **arrays: np.ndarray) -> Callable[[Path], Path]:
    return lambda s: write_npz(s / name, **arrays)


def make_dir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def truncated(p: Path, keep: float) -> Path:
    raw = p.read_bytes()
    p.write_bytes(raw[: int(len(raw) * keep)])
    return p


def first_model(run: Path) -> str:
    return json.loads((run / "models" / "index.json").read_text())["models"][0]


def checkpoint_db(path: Path) -> None:
    """Fold the write-ahead log into the database file, so the file holds every page."""
    con = sqlite3.connect(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    for tail in ("-wal", "-shm"):
        Path(str(path) + tail).unlink(missing_ok=True)


# -- generated corruptions (property-style) ------------------------------------------------
def mutate(raw: bytes, rng: np.random.Generator) -> bytes:
    """One random corruption of a file's bytes: truncation, a flipped byte run,
    inserted garbage, or a zeroed stretch."""
    b = bytearray(raw)
    kind = int(rng.integers(4))
    at = int(rng.integers(0, max(len(b), 1)))
    if kind == 0:
        return bytes(b[:at])
    n = int(rng.integers(1, 64))
    if kind == 1:
        for i in range(at, min(at + n, len(b))):
            b[i] ^= int(rng.integers(1, 256))
    elif kind == 2:
        b[at:at] = bytes(rng.integers(0, 256, n, dtype=np.uint8))
    else:
        b[at : at + n] = bytes(len(b[at : at + n]))
    return bytes(b)


def malformed_files(seed: int, per_kind: int) -> list[Case]:
    """``per_kind`` seeded random corruptions of each kind of file lightnas
    reads: an .npz, an IDX folder, a PNG folder, ``config.json``, a
    ``card.json`` and ``lightnas.db``."""
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(per_kind):
        r = int(rng.integers(2**31))
        cases += [
            data_case(f"npz #{i}", lambda s, r=r: _mutated(write_npz(s / "d.npz", **good_arrays()), r), expect="any"),
            data_case(f"idx #{i}", lambda s, r=r: _mutated_in(write_idx(s / "idx", compress=r % 2 == 1), r), "", "any"),
            data_case(f"png #{i}", lambda s, r=r: _mutated_in(write_images(s / "imgs"), r), "", "any"),
            _run_case_any(f"config.json #{i}", "config.json", r, ["report", "RUN"]),
            _run_case_any(f"card.json #{i}", "CARD", r, ["report", "RUN"]),
            _run_case_any(f"lightnas.db #{i}", "lightnas.db", r, ["report", "RUN"]),
        ]
    return cases


def _mutated(path: Path, r: int) -> Path:
    path.write_bytes(mutate(path.read_bytes(), np.random.default_rng(r)))
    return path


def _mutated_in(folder: Path, r: int) -> Path:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    _mutated(files[r % len(files)], r)
    return folder


def _run_case_any(name: str, rel: str, r: int, command: list[str]) -> Case:
    def tamper(run: Path) -> None:
        path = run / "models" / first_model(run) / "card.json" if rel == "CARD" else run / rel
        if rel == "lightnas.db":
            checkpoint_db(path)
        _mutated(path, r)

    return run_case(name, tamper, command, expect="any")


# -- tampering with a finished run ----------------------------------------------------------
def set_json(rel: str, edit: Callable[[dict], object]) -> Callable[[Path], None]:
    def tamper(run: Path) -> None:
        d = json.loads((run / rel).read_text())
        edit(d)
        (run / rel).write_text(json.dumps(d))

    return tamper


def write_file(rel: str, raw: bytes) -> Callable[[Path], None]:
    return lambda run: (run / rel).write_bytes(raw)


def edit_card(edit: Callable[[dict], object]) -> Callable[[Path], None]:
    return lambda run: set_json(f"models/{first_model(run)}/card.json", edit)(run)


def edit_checkpoint(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def tamper(run: Path) -> None:
        import torch

        state = torch.load(run / "supernet.pt", weights_only=True)
        edit(state)
        torch.save(state, run / "supernet.pt")

    return tamper


def overwrite_db_page(page: int) -> Callable[[Path], None]:
    def tamper(run: Path) -> None:
        checkpoint_db(run / "lightnas.db")
        raw = bytearray((run / "lightnas.db").read_bytes())
        size = 4096
        start = min(page * size, max(len(raw) - size, 0))
        raw[start : start + size] = bytes(np.random.default_rng(page).integers(0, 256, size, dtype=np.uint8))
        (run / "lightnas.db").write_bytes(bytes(raw))

    return tamper
