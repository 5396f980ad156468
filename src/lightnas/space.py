"""Search spaces: named finite dimensions, immutable architectures, encodings.

This module is torch-free. A :class:`SearchSpace` is an ordered tuple of
:class:`Choice` dimensions. A dimension may be *conditional*: it is active only
when another (ordinal) dimension is at least some value, as the kernel size of
the fourth block of a stage is only meaningful when the stage's depth is >= 4.
Every architecture is kept in *canonical form*: inactive dimensions hold their
first value, so that two descriptions of the same network are the same
:class:`Arch`, with the same key and the same store row.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lightnas.errors import LightnasError

Value = int | float | str


@dataclass(frozen=True)
class Choice:
    """One dimension: a finite tuple of values.

    ``active_if=(dim, min_value)`` makes the dimension active only when the
    value of ``dim`` is ``>= min_value`` (used for blocks beyond a depth).
    ``ordinal`` says the values are ordered (features encode them as a rank
    instead of one-hot).
    """

    name: str
    values: tuple[Value, ...]
    active_if: tuple[str, Value] | None = None
    ordinal: bool = False

    def __post_init__(self) -> None:
        if not self.values:
            raise LightnasError(f"dimension {self.name!r} has no values")
        if len(set(self.values)) != len(self.values):
            raise LightnasError(f"dimension {self.name!r} has repeated values")
        object.__setattr__(self, "values", tuple(self.values))

    def index(self, value: Value) -> int:
        """Position of ``value``; a one-line error when it is not a choice."""
        try:
            return self.values.index(value)
        except ValueError:
            raise LightnasError(
                f"{value!r} is not a value of dimension {self.name!r} (choices: {list(self.values)})"
            ) from None


class Arch(Mapping[str, Value]):
    """An immutable, hashable architecture: dimension name -> value.

    ``key`` is a stable string (``name=value`` pairs in space order, joined by
    ``-``) used in the store, in file names and on the command line.
    """

    __slots__ = ("_items", "_values", "_key", "_hash")

    def __init__(self, items: Sequence[tuple[str, Value]]):
        self._items = tuple(items)
        self._values = dict(self._items)
        self._key = "-".join(f"{k}{v}" for k, v in self._items)
        self._hash = hash(self._items)

    @property
    def key(self) -> str:
        return self._key

    def __getitem__(self, name: str) -> Value:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Arch) and self._items == other._items

    def __repr__(self) -> str:
        return f"Arch({self._key})"

    def to_json(self) -> str:
        return json.dumps(dict(self._items))


@dataclass(frozen=True)
class SearchSpace:
    """An ordered set of dimensions with encodings and variation operators.

    Contract: every method that returns an :class:`Arch` returns it in
    canonical form; every random method takes an explicit
    ``numpy.random.Generator``.
    """

    dims: tuple[Choice, ...]
    name: str = "space"
    _by_name: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "dims", tuple(self.dims))
        by_name = {d.name: i for i, d in enumerate(self.dims)}
        if len(by_name) != len(self.dims):
            raise LightnasError("search space has repeated dimension names")
        for d in self.dims:
            if d.active_if is not None:
                parent, _ = d.active_if
                if parent not in by_name or by_name[parent] >= by_name[d.name]:
                    raise LightnasError(f"dimension {d.name!r} depends on {parent!r}, which must come before it")
        object.__setattr__(self, "_by_name", by_name)

    # -- sizes -----------------------------------------------------------
    @property
    def n_dims(self) -> int:
        return len(self.dims)

    @property
    def cardinalities(self) -> np.ndarray:
        return np.array([len(d.values) for d in self.dims], dtype=np.int64)

    def size(self) -> int:
        """Number of distinct canonical architectures (exact). Where every
        conditional dimension depends on an unconditional one this is a sum
        over each parent's values of its children's products; deeper chains
        are enumerated."""
        by_name = {d.name: d for d in self.dims}
        if any(by_name[d.active_if[0]].active_if is not None for d in self.dims if d.active_if is not None):
            return sum(1 for _ in self._iter_canonical_codes())
        total = 1
        for parent in (d for d in self.dims if d.active_if is None):
            children = [d for d in self.dims if d.active_if is not None and d.active_if[0] == parent.name]
            total *= sum(
                math.prod(len(c.values) if v >= c.active_if[1] else 1 for c in children)  # type: ignore[index,operator]
                for v in parent.values
            )
        return int(total)

    def _conditional(self) -> bool:
        return any(d.active_if is not None for d in self.dims)

    # -- construction ------------------------------------------------------
    def is_active(self, values: Mapping[str, Value], dim: Choice) -> bool:
        if dim.active_if is None:
            return True
        parent, threshold = dim.active_if
        return values[parent] >= threshold  # type: ignore[operator]

    def make(self, values: Mapping[str, Value]) -> Arch:
        """Validate and canonicalise a mapping into an :class:`Arch`."""
        unknown = set(values) - set(self._by_name)
        if unknown:
            raise LightnasError(f"unknown dimension(s) {sorted(unknown)} for space {self.name!r}")
        items: list[tuple[str, Value]] = []
        current: dict[str, Value] = {}
        for d in self.dims:
            if d.name not in values:
                if d.active_if is None or self.is_active(current, d):
                    raise LightnasError(f"architecture is missing dimension {d.name!r}")
                v = d.values[0]
            else:
                v = values[d.name]
                d.index(v)
                if not self.is_active(current, d):
                    v = d.values[0]
            current[d.name] = v
            items.append((d.name, v))
        return Arch(items)

    def from_key(self, key: str) -> Arch:
        """Parse a key written by :attr:`Arch.key`; a one-line error otherwise."""
        values: dict[str, Value] = {}
        parts = key.split("-") if key else []
        if len(parts) != self.n_dims:
            raise LightnasError(f"malformed architecture key {key!r} for space {self.name!r}")
        for d, part in zip(self.dims, parts, strict=True):
            if not part.startswith(d.name):
                raise LightnasError(f"malformed architecture key {key!r}: expected {d.name!r}")
            raw = part[len(d.name) :]
            match = [v for v in d.values if str(v) == raw]
            if not match:
                raise LightnasError(f"malformed architecture key {key!r}: {raw!r} not in {d.name}")
            values[d.name] = match[0]
        return self.make(values)

    # -- integer encoding (pymoo) -------------------------------------------
    def encode(self, arch: Arch) -> np.ndarray:
        """Integer vector: the index of each dimension's value."""
        return np.array([d.index(arch[d.name]) for d in self.dims], dtype=np.int64)

    def decode(self, code: Sequence[int] | np.ndarray) -> Arch:
        """Inverse of :meth:`encode` (indices are clipped into range)."""
        code = np.asarray(code).round().astype(np.int64)
        if code.shape != (self.n_dims,):
            raise LightnasError(f"code of shape {code.shape} does not fit {self.n_dims} dimensions")
        code = np.clip(code, 0, self.cardinalities - 1).tolist()
        # canonical by construction (valid indices, inactive dimensions at their first value): no make()
        current: dict[str, Value] = {}
        for d, i in zip(self.dims, code, strict=True):
            current[d.name] = d.values[i] if self.is_active(current, d) else d.values[0]
        return Arch(list(current.items()))

    # -- predictor features -------------------------------------------------
    def feature_names(self) -> list[str]:
        names: list[str] = []
        for d in self.dims:
            if d.ordinal:
                names.append(d.name)
            else:
                names.extend(f"{d.name}={v}" for v in d.values)
        return names

    def features(self, archs: Sequence[Arch]) -> np.ndarray:
        """Feature matrix (n, f): one-hot for categorical dims, rank in [0, 1]
        for ordinal dims; inactive dimensions are all zeros (masked)."""
        codes = np.stack([self.encode(a) for a in archs]) if archs else np.zeros((0, self.n_dims))
        return self.features_from_codes(codes.astype(np.int64))

    def features_from_codes(self, codes: np.ndarray) -> np.ndarray:
        """As :meth:`features`, from an (n, d) integer matrix of canonical codes."""
        cols = []
        n = codes.shape[0]
        for j, d in enumerate(self.dims):
            active = np.ones(n, dtype=bool)
            if d.active_if is not None:
                parent, threshold = d.active_if
                p = self._by_name[parent]
                pvals = np.array(self.dims[p].values, dtype=object)[codes[:, p]]
                active = np.array([v >= threshold for v in pvals], dtype=bool)
            k = len(d.values)
            if d.ordinal:
                col = codes[:, j] / max(k - 1, 1)
                cols.append((col * active)[:, None])
            else:
                onehot = np.zeros((n, k))
                onehot[np.arange(n), codes[:, j]] = 1.0
                cols.append(onehot * active[:, None])
        return np.hstack(cols) if cols else np.zeros((n, 0))

    # -- sampling and variation ----------------------------------------------
    def sample(self, rng: np.random.Generator) -> Arch:
        """One architecture, each dimension uniform."""
        return self.decode([rng.integers(len(d.values)) for d in self.dims])

    def mutate(self, arch: Arch, rng: np.random.Generator, p: float | None = None) -> Arch:
        """Resample each active dimension with probability ``p`` (default
        1/number of dims), always changing at least one; the result differs
        from ``arch`` unless the space has a single architecture."""
        p = 1.0 / self.n_dims if p is None else p
        code = self.encode(arch)
        active = [j for j, d in enumerate(self.dims) if self.is_active(arch, d) and len(d.values) > 1]
        if not active:
            return arch
        flips = [j for j in active if rng.random() < p] or [active[rng.integers(len(active))]]
        for j in flips:
            k = len(self.dims[j].values)
            code[j] = (code[j] + 1 + rng.integers(k - 1)) % k
        return self.decode(code)

    def crossover(self, a: Arch, b: Arch, rng: np.random.Generator) -> Arch:
        """Uniform crossover of two parents."""
        ca, cb = self.encode(a), self.encode(b)
        mask = rng.random(self.n_dims) < 0.5
        return self.decode(np.where(mask, ca, cb))

    # -- enumeration -----------------------------------------------------------
    def _iter_canonical_codes(self) -> Iterator[tuple[int, ...]]:
        seen: set[tuple[int, ...]] = set()
        for code in itertools.product(*(range(len(d.values)) for d in self.dims)):
            c = tuple(self.encode(self.decode(code)))
            if c not in seen:
                seen.add(c)
                yield c

    def enumerate_codes(self, limit: int) -> np.ndarray | None:
        """All canonical codes as an (n, d) matrix when the space has at most
        ``limit`` architectures, else ``None`` (cheap for large spaces)."""
        raw = math.prod(len(d.values) for d in self.dims)
        if raw > 50 * limit:
            return None
        if not self._conditional():
            if raw > limit:
                return None
            grids = np.meshgrid(*(np.arange(len(d.values)) for d in self.dims), indexing="ij")
            return np.stack([g.ravel() for g in grids], axis=1).astype(np.int64)
        codes = list(itertools.islice(self._iter_canonical_codes(), limit + 1))
        return None if len(codes) > limit else np.array(codes, dtype=np.int64)

    def smallest(self) -> Arch:
        """Each dimension at its first value (by convention the cheapest)."""
        return self.decode([0] * self.n_dims)

    def largest(self) -> Arch:
        """Each dimension at its last value (by convention the most expensive)."""
        return self.decode(self.cardinalities - 1)

    def scaled(self, t: float) -> Arch:
        """Every dimension ``t`` (0 to 1) of the way from its first value to its
        last: the chain of nested sub-networks from :meth:`smallest` (0) to
        :meth:`largest` (1) that SortedNet-style training walks."""
        if not 0.0 <= t <= 1.0:
            raise ValueError(f"t must be in [0, 1], not {t}")
        return self.decode(np.rint(t * (self.cardinalities - 1)).astype(int))

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dims": [{"name": d.name, "values": list(d.values), "active_if": d.active_if} for d in self.dims],
        }
