"""Identifiers shaped like X's: 64-hex-char participant ids and 19-digit snowflake note/post ids."""

from __future__ import annotations

import numpy as np

# Twitter's snowflake epoch (2010-11-04), ms: id = (millis - epoch) << 22 | 22 low bits.
SNOWFLAKE_EPOCH_MILLIS = 1_288_834_974_657
_HEX = np.frombuffer(b"0123456789ABCDEF", dtype=np.uint8)


def participant_id_bytes(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` random 256-bit ids as uppercase hex, shape (n, 64) uint8 (ASCII), all distinct."""
    raw = rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
    out = np.empty((n, 64), dtype=np.uint8)
    out[:, 0::2] = _HEX[raw >> 4]
    out[:, 1::2] = _HEX[raw & 15]
    # 256 random bits never collide in practice; the check keeps "distinct" a guarantee.
    if n and np.unique(out.view("S64").ravel()).size != n:
        raise RuntimeError("participant id collision")  # pragma: no cover
    return out


def participant_ids(id_bytes: np.ndarray) -> np.ndarray:
    """The (n, 64) uint8 ids of ``participant_id_bytes`` as an object array of ``str``."""
    return np.array([b.decode("ascii") for b in id_bytes.view("S64").ravel()], dtype=object)


def snowflake_ids(rng: np.random.Generator, millis: np.ndarray) -> np.ndarray:
    """Distinct int64 ids whose high bits encode ``millis`` (shape (n,)), like X's tweet/note ids.

    Ids are increasing in ``millis`` wherever times differ; equal times get random low bits,
    bumped by one until distinct, so the result is deterministic given ``rng``.
    """
    millis = np.asarray(millis, dtype=np.int64)
    ids = ((millis - SNOWFLAKE_EPOCH_MILLIS) << 22) | rng.integers(
        0, 1 << 22, size=millis.size, dtype=np.int64
    )
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    while sorted_ids.size > 1:
        dup = np.flatnonzero(sorted_ids[1:] <= sorted_ids[:-1]) + 1
        if dup.size == 0:
            break
        sorted_ids[dup] = sorted_ids[dup - 1] + 1
    ids[order] = sorted_ids
    return ids
