"""The vocabulary of the elastic analysis: channel layouts, skippable blocks,
what was found, and the union-find over channel spaces."""

from __future__ import annotations

import dataclasses

Segment = tuple[int, int, int]
"""(space, channels, inner): ``channels`` channels of a space, each repeated
``inner`` times along the axis (a flatten of ``inner`` spatial positions)."""
Layout = tuple[Segment, ...]


@dataclasses.dataclass(frozen=True)
class Block:
    """A skippable residual block: ``add`` computes ``skip + branch``; ``branch``
    is every node the addition alone needs."""

    add: str
    skip: str
    branch: frozenset[str]


@dataclasses.dataclass
class Structure:
    """What the analysis found (node names of the traced graph)."""

    layouts: dict[str, Layout]
    """The channel layout of every tensor-valued node."""
    space_sizes: dict[int, int]
    """Every space's full channel count (spaces are union-find roots)."""
    elastic: list[int]
    """The spaces whose width is searched, in order of first producer."""
    producers: dict[int, list[str]]
    """Per space, the layers whose output channels it is."""
    stages: list[list[Block]]
    """Per residual stream with skippable blocks, its blocks in order."""
    kernels: dict[str, int]
    """Depthwise convolutions with a searchable kernel -> their full kernel size."""
    notes: list[str]
    """One line per thing that cannot be made elastic."""


class Spaces:
    """Union-find over channel spaces, with a reason per space that stays fixed."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.size: list[int] = []
        self.fixed: dict[int, str] = {}
        self.producers: dict[int, list[str]] = {}

    def new(self, size: int, producer: str | None = None, fixed: str | None = None) -> int:
        self.parent.append(len(self.parent))
        self.size.append(size)
        s = len(self.parent) - 1
        self.producers[s] = [producer] if producer else []
        if fixed:
            self.fixed[s] = fixed
        return s

    def find(self, s: int) -> int:
        while self.parent[s] != s:
            self.parent[s] = self.parent[self.parent[s]]
            s = self.parent[s]
        return s

    def union(self, a: int, b: int) -> None:
        a, b = self.find(a), self.find(b)
        if a == b:
            return
        a, b = min(a, b), max(a, b)
        self.parent[b] = a
        self.producers[a] += self.producers.pop(b)
        if b in self.fixed:
            self.fixed.setdefault(a, self.fixed.pop(b))

    def fix(self, layout: Layout | None, reason: str) -> None:
        for s, _, _ in layout or ():
            self.fixed.setdefault(self.find(s), reason)
