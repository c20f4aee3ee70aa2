"""A columnar cache of the ``RatingMatrix``, so a rerun on the same files skips the TSV parse.

One entry per set of input files (the ratings files, the notes and NSH files whose note ids
enter the matrix's note index space), in ``CACHE_DIR/ratings-<hash of their paths>/``: one
``.npy`` file per array, rater ids as UTF-8 bytes + offsets, and ``meta.json`` with the format
version, each file's (path, size, mtime in ns), the warnings the ingest gave, and each array's
dtype, shape and CRC-32.

An entry is used only if the version and every file's stat match (otherwise it is stale and
rebuilt) and every array loads with its recorded dtype, shape and checksum (otherwise it is
corrupt: rebuilt, with a warning). Arrays are memory-mapped, so loading costs one checksum pass
over the bytes. The per-rating columns are mapped read-only (``READ_ONLY``; a write raises) and
handed back to the page cache after their checksum: most passes read a few of them, and a run need
not keep all ~29 bytes a rating resident while a phase reads none or some (``RatingMatrix.release``).
The per-note and per-rater indexes are mapped copy-on-write. Entries are written to a temporary
folder and renamed into place, so a crash never leaves a half-written entry behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa

from bridgewatch.io.matrix import RATING_COLUMNS, RatingMatrix, release_pages

CACHE_VERSION = 2  # 2: ``by_rater`` int32
_META = "meta.json"
_ARRAYS = (
    "note",
    "rater",
    "value",
    "created_at",
    "tags",
    "population_sampled",
    "note_ids",
    "note_indptr",
    "by_rater",
    "rater_indptr",
)
_FILES = (*_ARRAYS, "rater_ids.offsets", "rater_ids.bytes")
# Mapped read-only (writes raise), so their pages can be dropped and read again
# (``RatingMatrix.release``): every per-rating column.
READ_ONLY = RATING_COLUMNS

PathLike = str | os.PathLike[str]


def cache_key(ratings: list[PathLike], notes: PathLike | None, status: PathLike | None) -> dict[str, object]:
    """What an entry depends on: the format version and each input file's path, size and mtime."""
    files = [("ratings", p) for p in ratings]
    files += [(role, p) for role, p in (("notes", notes), ("status", status)) if p is not None]
    rows = []
    for role, p in files:
        st = os.stat(p)
        rows.append([role, str(Path(p).resolve()), st.st_size, st.st_mtime_ns])
    return {"version": CACHE_VERSION, "files": rows}


def entry_dir(cache_dir: PathLike, key: dict[str, object]) -> Path:
    """The entry's folder: named by the input paths only, so a changed file replaces its entry."""
    paths = json.dumps([row[:2] for row in key["files"]])  # type: ignore[index, union-attr]
    return Path(cache_dir) / f"ratings-{hashlib.sha256(paths.encode()).hexdigest()[:16]}"


def load(
    cache_dir: PathLike, key: dict[str, object], warnings: list[str]
) -> tuple[RatingMatrix, list[str]] | None:
    """The cached matrix and its ingest warnings, or None when there is no valid entry.

    A corrupt entry (unreadable meta, a missing, truncated or altered array) is never used:
    None is returned and a warning saying so is appended to ``warnings``.
    """
    entry = entry_dir(cache_dir, key)
    try:
        meta = json.loads((entry / _META).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        warnings.append(f"ratings cache {entry} is unreadable ({exc}); rebuilt it")
        return None
    if not isinstance(meta, dict) or meta.get("key") != key:
        return None  # stale: another version or the files changed
    try:
        arrays = {name: _load_array(entry, name, meta["arrays"][name]) for name in _FILES}
        names = pa.LargeStringArray.from_buffers(
            arrays["rater_ids.offsets"].shape[0] - 1,
            pa.py_buffer(arrays.pop("rater_ids.offsets")),
            pa.py_buffer(arrays.pop("rater_ids.bytes")),
        )
        names.validate(full=True)
        rater_ids = np.asarray(names.to_numpy(zero_copy_only=False), dtype=object)
        matrix = RatingMatrix(**arrays, rater_ids=rater_ids)
        ratings_warnings = [str(w) for w in meta["warnings"]]
    except (OSError, ValueError, KeyError, TypeError, pa.ArrowException) as exc:
        warnings.append(f"ratings cache {entry} is corrupt ({exc}); rebuilt it")
        return None
    return matrix, ratings_warnings


def _load_array(entry: Path, name: str, expect: dict[str, object]) -> np.ndarray:
    arr = np.load(entry / f"{name}.npy", mmap_mode="r" if name in READ_ONLY else "c", allow_pickle=False)
    if str(arr.dtype) != expect["dtype"] or list(arr.shape) != expect["shape"]:
        raise ValueError(f"{name}: {arr.dtype}{list(arr.shape)}, expected {expect['dtype']}{expect['shape']}")
    if _crc(arr) != expect["crc32"]:
        raise ValueError(f"{name}: checksum mismatch")
    # The checksum made every page resident: a read-only column's go back at once, so the load
    # holds one column's pages at a time, not the whole matrix (at X's scale 9.4 GiB at the
    # peak, when all of them went back only at the end).
    release_pages(arr)
    return np.asarray(arr)


def _crc(arr: np.ndarray) -> int:
    return zlib.crc32(memoryview(np.ascontiguousarray(arr)).cast("B")) if arr.size else 0


def store(cache_dir: PathLike, key: dict[str, object], matrix: RatingMatrix, warnings: list[str]) -> Path:
    """Write ``matrix`` and its ingest ``warnings`` as the entry for ``key``; returns its folder."""
    entry = entry_dir(cache_dir, key)
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", suffix=".part", dir=entry.parent))
    try:
        arrays = {name: getattr(matrix, name) for name in _ARRAYS}
        ids = pa.array(matrix.rater_ids, type=pa.large_string())
        _, offsets, data = ids.buffers()
        offs = np.frombuffer(offsets, np.int64)[: len(ids) + 1]
        arrays["rater_ids.offsets"] = offs
        raw = np.frombuffer(data, np.uint8) if data else np.empty(0, np.uint8)
        arrays["rater_ids.bytes"] = raw[: offs[-1]]
        meta: dict[str, object] = {"key": key, "warnings": list(warnings), "arrays": {}}
        for name, arr in arrays.items():
            np.save(tmp / f"{name}.npy", arr, allow_pickle=False)
            meta["arrays"][name] = {  # type: ignore[index]
                "dtype": str(arr.dtype),
                "shape": list(arr.shape),
                "crc32": _crc(arr),
            }
        (tmp / _META).write_text(json.dumps(meta, indent=1), encoding="utf-8")
        old = entry.with_name(f".{entry.name}.{os.getpid()}.old")
        if entry.exists():
            os.replace(entry, old)
        os.replace(tmp, entry)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return entry
