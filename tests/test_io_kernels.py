"""Numba sort/encode kernels agree with their numpy twins."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from bridgewatch.io import kernels


def test_pair_order_matches_numpy_twin() -> None:
    rng = np.random.default_rng(7)
    note = rng.integers(0, 50, 5000).astype(np.int32)
    rater = rng.integers(0, 80, 5000).astype(np.int32)
    want = kernels.pair_order_numpy(note, rater, 50, 80)
    for chunks in (1, 3, 8):
        got = kernels.pair_order(
            note, rater, 50, 80, np.empty(5000, np.int32), np.empty(5000, np.int32), chunks
        )
        assert np.array_equal(got, want)
    # Stable: duplicated pairs keep input order.
    assert np.array_equal(np.sort(got), np.arange(5000))


def test_stable_order_matches_numpy_twin() -> None:
    key = np.random.default_rng(3).integers(0, 40, 3000).astype(np.int32)
    for chunks in (1, 2, 7):
        assert np.array_equal(kernels.stable_order(key, 40, chunks), kernels.stable_order_numpy(key, 40))


def test_encode_strings_matches_numpy_twin() -> None:
    words = ["", "a", "b", "ab", "ba", "a" * 64, "é", "a", "ab", "007", "7"]
    arr = pa.array(words, type=pa.string())
    _, off, data = arr.buffers()
    table = kernels.new_string_table()
    got = kernels.encode_strings(np.frombuffer(off, np.int32), np.frombuffer(data, np.uint8), table, 0)
    twin = kernels.encode_strings_numpy(words, {})
    assert got.tolist() == twin.tolist()
    again = kernels.encode_strings(
        np.frombuffer(off, np.int32), np.frombuffer(data, np.uint8), table, len(table)
    )
    assert again.tolist() == twin.tolist()


def test_repeated_pair_and_permute_in_place_match_numpy_twins() -> None:
    rng = np.random.default_rng(9)
    note = rng.integers(0, 30, 2000).astype(np.int32)
    rater = rng.integers(0, 500, 2000).astype(np.int32)
    order = kernels.pair_order_numpy(note, rater, 30, 500).astype(np.int32)
    assert kernels.repeated_pair(note, rater, order) == kernels.repeated_pair_numpy(note, rater, order)
    unique = np.unique(note.astype(np.int64) * 500 + rater, return_index=True)[1]
    n1, r1 = note[unique], rater[unique]
    o1 = kernels.pair_order_numpy(n1, r1, 30, 500).astype(np.int32)
    assert not kernels.repeated_pair(n1, r1, o1) and not kernels.repeated_pair_numpy(n1, r1, o1)
    assert kernels.repeated_pair(note, rater, order)
    cols = [
        note.copy(),
        rater.copy(),
        rng.random(2000).astype(np.float32),
        rng.integers(0, 2**40, 2000),
        rng.integers(0, 2**31, 2000).astype(np.uint32),
        rng.random(2000) < 0.5,
    ]
    twins = [c.copy() for c in cols]
    perm = rng.permutation(2000).astype(np.int32)
    kernels.permute_in_place(perm, *cols)
    kernels.permute_in_place_numpy(perm, *twins)
    for got, want in zip(cols, twins, strict=True):
        assert np.array_equal(got, want)


def test_sort_strings_matches_python_order() -> None:
    rng = np.random.default_rng(4)
    words = ["", "a", "a\x00", "a\x00\x00", "ab", "é", "z" * 30, "zz", "prefix-" * 3, "ü", "\x7f"]
    words += [f"participant-{int(i):06d}" for i in rng.permutation(300)]  # long shared prefixes
    words += ["".join(rng.choice(list("0123456789ABCDEF"), 64)) for _ in range(300)]
    words = list(dict.fromkeys(words))
    arr = pa.array(words, type=pa.large_string())
    _, off, data = arr.buffers()
    got = kernels.sort_strings(np.frombuffer(off, np.int64), np.frombuffer(data, np.uint8))
    assert [words[i] for i in got] == sorted(words)
    assert np.array_equal(got, kernels.sort_strings_numpy(words))
