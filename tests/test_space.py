import numpy as np
import pytest

from lightnas.errors import LightnasError
from lightnas.space import Choice, SearchSpace


def cond_space() -> SearchSpace:
    return SearchSpace(
        (
            Choice("d", (1, 2, 3), ordinal=True),
            Choice("k1", (3, 5, 7), ordinal=True),
            Choice("k2", (3, 5, 7), active_if=("d", 2), ordinal=True),
            Choice("k3", (3, 5, 7), active_if=("d", 3), ordinal=True),
            Choice("op", ("a", "b")),
        )
    )


def test_encode_decode_and_key_round_trip():
    space = cond_space()
    rng = np.random.default_rng(0)
    for _ in range(200):
        a = space.sample(rng)
        assert space.decode(space.encode(a)) == a
        assert space.from_key(a.key) == a
        assert hash(space.from_key(a.key)) == hash(a)


def test_inactive_dimensions_are_canonical():
    space = cond_space()
    a = space.make({"d": 1, "k1": 5, "k2": 7, "k3": 7, "op": "b"})
    b = space.make({"d": 1, "k1": 5, "op": "b"})
    assert a == b and a.key == b.key
    assert a["k2"] == 3
    f = space.features([a])[0]
    names = space.feature_names()
    assert f[names.index("k2")] == 0.0 and f[names.index("k3")] == 0.0


def test_size_counts_canonical_architectures():
    space = cond_space()
    assert space.size() == (3 + 9 + 27) * 2
    assert len(space.enumerate_codes(10_000)) == space.size()
    assert space.enumerate_codes(10) is None


def test_mutate_changes_and_stays_valid():
    space = cond_space()
    rng = np.random.default_rng(1)
    for _ in range(100):
        a = space.sample(rng)
        b = space.mutate(a, rng)
        assert b != a
        assert space.make(dict(b)) == b


@pytest.mark.parametrize("bad", ["", "d9-k13-k23-k33-opa", "d1-k13-k23-k33", "x1-k13-k23-k33-opa"])
def test_malformed_keys_are_one_line_errors(bad):
    with pytest.raises(LightnasError):
        cond_space().from_key(bad)


def test_make_rejects_unknown_values():
    with pytest.raises(LightnasError, match="not a value"):
        cond_space().make({"d": 4, "k1": 3, "op": "a"})


def test_size_is_counted_without_enumerating_one_level_conditions():
    """Two stages with conditional blocks and a free dimension: the sum-product
    count equals the enumeration, and a space of 10^20 is counted at once."""
    dims = [Choice("a", (1, 2, 3), ordinal=True), Choice("b", (0, 1), ordinal=True)]
    dims += [Choice("a2", (3, 5), ("a", 2)), Choice("a3", (3, 5, 7), ("a", 3)), Choice("b1", (1, 2, 3), ("b", 1))]
    dims.append(Choice("w", (8, 16)))
    space = SearchSpace(tuple(dims))
    assert space.size() == len(space.enumerate_codes(10_000)) == (1 + 2 + 6) * (1 + 3) * 2
    big = SearchSpace(tuple(Choice(f"x{i}", (1, 2, 3, 4, 5, 6, 7, 8, 9, 10)) for i in range(20)))
    assert big.size() == 10**20
