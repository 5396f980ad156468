"""SQLite store of evaluations: one row per (study, architecture), written as
each evaluation finishes, read back to resume (torch-free)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lightnas.errors import LightnasError
from lightnas.space import Value

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS evaluations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    study TEXT NOT NULL,
    arch_key TEXT NOT NULL,
    arch TEXT NOT NULL,
    metrics TEXT NOT NULL,
    status TEXT NOT NULL,
    seconds REAL NOT NULL,
    created REAL NOT NULL,
    UNIQUE (study, arch_key)
);
"""

OK = "ok"
SKIPPED = "skipped"  # rejected by a constraint on a cheap metric, not evaluated


@dataclass(frozen=True)
class Record:
    """One stored evaluation. ``seconds`` is the evaluation's wall time."""

    index: int
    arch_key: str
    arch: dict[str, Value]
    metrics: dict[str, float]
    status: str
    seconds: float


class Store:
    """A SQLite file (created on first use). Every write is its own committed
    transaction, so a killed process loses at most the evaluation in flight."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._con: sqlite3.Connection | None = None
        try:
            if self.path.exists():
                _quick_check(self.path)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._con = sqlite3.connect(str(self.path), timeout=30.0)
            self._con.execute("PRAGMA journal_mode=WAL")
            self._con.executescript(_SCHEMA)
            self._con.commit()
        except sqlite3.OperationalError as exc:
            if "malformed" in str(exc) or "not a database" in str(exc):
                raise self._damaged(exc) from None
            raise self._unwritable(exc) from None
        except sqlite3.DatabaseError as exc:
            raise self._damaged(exc) from None

    def _damaged(self, exc: Exception) -> LightnasError:
        """The one-line report of a damaged file: what can still be read, and how to keep it."""
        if self._con is not None:
            with contextlib.suppress(Exception):
                self._con.close()
        n = len(readable_rows(self.path))
        keep = (
            f"{n} evaluations can still be read: 'lightnas search DIR --salvage' moves the file aside "
            "and starts a new one holding them"
            if n
            else "no evaluation can be read from it: move it aside and run the search again"
        )
        return LightnasError(f"{self.path} is damaged ({str(exc).splitlines()[0]}); {keep}")

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- metadata ----------------------------------------------------------
    def set_meta(self, key: str, value: Any) -> None:
        """Record ``value`` (JSON) under ``key`` in the ``meta`` table: what the
        run searched (space, data, quantization), for tools reading the
        database on its own; lightnas itself reads the run folder's files."""
        try:
            with self._con:
                self._con.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))
        except sqlite3.OperationalError as exc:
            raise self._unwritable(exc) from None

    # -- evaluations ---------------------------------------------------------
    def add(
        self,
        study: str,
        arch_key: str,
        arch: dict[str, Any],
        metrics: dict[str, float],
        status: str = OK,
        seconds: float = 0.0,
    ) -> None:
        """Insert one evaluation; an existing (study, arch) row is an error."""
        try:
            with self._con:
                self._con.execute(
                    "INSERT INTO evaluations (study, arch_key, arch, metrics, status, seconds, created)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (study, arch_key, json.dumps(arch), json.dumps(metrics), status, seconds, time.time()),
                )
        except sqlite3.IntegrityError:
            raise LightnasError(f"architecture {arch_key} is already stored in study {study!r}") from None
        except sqlite3.OperationalError as exc:
            raise self._unwritable(exc) from None

    def _unwritable(self, exc: sqlite3.OperationalError) -> LightnasError:
        """A failed write in one sentence: a full disk says where and how much is free."""

        if "full" in str(exc):
            free = shutil.disk_usage(self.path.parent).free
            return LightnasError(
                f"the disk holding {self.path} is full ({free / 2**20:.1f} MB free; the search needs a few MB "
                "more): free some space and continue with --resume; every evaluation already stored is kept"
            )
        return LightnasError(f"cannot write {self.path}: {exc}")

    def records(self, study: str, status: str | None = None) -> list[Record]:
        """Evaluations of ``study`` in the order they were written."""
        q = "SELECT id, arch_key, arch, metrics, status, seconds FROM evaluations WHERE study = ?"
        args: tuple[Any, ...] = (study,)
        if status is not None:
            q += " AND status = ?"
            args += (status,)
        try:
            rows = self._con.execute(q + " ORDER BY id", args).fetchall()
            return [Record(r[0], r[1], json.loads(r[2]), json.loads(r[3]), r[4], r[5]) for r in rows]
        except (sqlite3.DatabaseError, json.JSONDecodeError, TypeError) as exc:
            raise self._damaged(exc) from None

    def count(self, study: str, status: str = OK) -> int:
        row = self._con.execute(
            "SELECT COUNT(*) FROM evaluations WHERE study = ? AND status = ?", (study, status)
        ).fetchone()
        return int(row[0])

    def studies(self) -> list[str]:
        return [r[0] for r in self._con.execute("SELECT DISTINCT study FROM evaluations")]


_COLUMNS = "study, arch_key, arch, metrics, status, seconds, created"


def read_only_connection(path: Path) -> sqlite3.Connection:
    """A connection that reads the file as it is and writes nothing, not even
    the write-ahead log's side files (``immutable``: the log is not read)."""
    return sqlite3.connect(f"{Path(path).resolve().as_uri()}?immutable=1", uri=True)


def reading_connection(path: Path) -> sqlite3.Connection:
    """A connection that reads what SQLite itself would: the file with its
    write-ahead log (``-wal``) when there is one. Where the folder is writable
    that is an ordinary connection (which also recovers a log left by a killed
    writer); elsewhere a read-only one, and the file alone when even that
    cannot open (no ``-shm`` beside a log in a read-only folder)."""
    path = Path(path)
    if os.access(path.parent, os.W_OK):
        return sqlite3.connect(str(path), timeout=30.0)
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        con.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return con
    except sqlite3.DatabaseError:
        return read_only_connection(path)


def _quick_check(path: Path) -> None:
    """SQLite's page-level consistency check on what SQLite reads (the log
    included); raises ``sqlite3.DatabaseError``."""
    con = reading_connection(path)
    try:
        problem = con.execute("PRAGMA quick_check").fetchone()[0]
    finally:
        con.close()
    if problem != "ok":
        raise sqlite3.DatabaseError(problem)


def readable_rows(path: Path) -> list[tuple[Any, ...]]:
    """Every evaluation row of a (possibly damaged) store that still reads
    whole, with valid JSON, row by row (read-only; nothing is written)."""
    rows: list[tuple[Any, ...]] = []
    try:
        con = reading_connection(path)
    except sqlite3.DatabaseError:
        return rows
    try:
        ids = [r[0] for r in con.execute("SELECT id FROM evaluations ORDER BY id")]
    except sqlite3.DatabaseError:
        ids = []
    for i in ids:
        try:
            row = con.execute(f"SELECT {_COLUMNS} FROM evaluations WHERE id = ?", (i,)).fetchone()
            json.loads(row[2]), json.loads(row[3])
            rows.append(tuple(row))
        except (sqlite3.DatabaseError, json.JSONDecodeError, TypeError, IndexError):
            continue
    con.close()
    return rows


def salvage(path: Path) -> int:
    """Move a damaged store aside (``<name>.damaged``) and write a new one at
    ``path`` holding its readable evaluations; returns how many. Refuses when
    the file aside already exists (nothing is overwritten)."""
    path = Path(path)
    aside = path.with_name(path.name + ".damaged")
    if aside.exists():
        raise LightnasError(f"{aside} already exists: move it away before salvaging {path} again")
    rows = readable_rows(path)
    path.rename(aside)
    for tail in ("-wal", "-shm"):
        side = Path(str(path) + tail)
        if side.exists():
            side.rename(Path(str(aside) + tail))
    with Store(path) as store, store._con:
        store._con.executemany(f"INSERT OR IGNORE INTO evaluations ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    return len(rows)
