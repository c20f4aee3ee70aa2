"""Per-note columns kept compact between a scorer's run and the assembly of the outputs.

Why: every scorer's run lives until the outputs are assembled, and a group or topic scorer fits
a small share of the notes, yet its frame, fits and low-diligence intercepts are sized to every
note of the dataset (~164 bytes a note a scorer; ~11 GB over ~27 final runs at X's 2.5M notes).
A column whose values are mostly one fill (±NaN or 0 for floats, 0 for integers and booleans) is
kept as a pandas ``SparseArray``: the differing values plus their int32 positions. ``np.asarray`` and
``Series.to_numpy`` expand it back to the full array, one column at a time, where the outputs
are written; dense columns stay as they are.
"""

from __future__ import annotations

import dataclasses
from typing import TypeVar

import numpy as np
import pandas as pd

T = TypeVar("T")

# Above this share of non-fill values a sparse column (8 + 4 bytes an entry) saves too little.
MAX_DENSITY = 0.5

# Below this many entries a column stays dense: the memory saved is at most a few hundred KB while
# building a ``SparseArray`` costs ~0.5 ms of pandas overhead a column, which over the ~1,000
# columns a final run keeps was ~7% of an incremental run's CPU (read at call time: tests lower it).
MIN_ENTRIES = 65_536


def _differ(values: np.ndarray, fill: np.generic) -> np.ndarray:
    """bool[n]: entries whose bits differ from ``fill``'s, which a sparse column must store to
    expand back bit for bit (a -0.0 or a negative NaN is not the fill)."""
    unsigned = np.dtype(f"u{values.dtype.itemsize}")
    return values.view(unsigned) != np.asarray(fill, dtype=values.dtype).view(unsigned)


def _candidates(dtype: np.dtype) -> tuple[np.generic, ...]:
    """Fill values worth trying, typed as ``dtype`` so the expansion keeps it (a float32 column
    with a Python-float fill would expand to float64)."""
    if dtype.kind == "f":  # NaN of either sign: arithmetic on NaN (0/0 means) yields -NaN on x86
        return (dtype.type(np.nan), np.copysign(dtype.type(np.nan), dtype.type(-1)), dtype.type(0))
    if dtype.kind in "iu":
        return (dtype.type(0),)
    if dtype.kind == "b":
        return (np.False_,)
    return ()  # objects and anything else stay dense


def _sparse(values: np.ndarray, keep: np.ndarray, fill: np.generic) -> pd.arrays.SparseArray:
    """The entries ``keep`` of ``values`` around ``fill``, stored as given (pandas' own
    constructor would take any NaN or -0.0 for a NaN or 0.0 fill and expand it to the fill)."""
    dtype = pd.SparseDtype(values.dtype, fill)
    from_indices = getattr(pd.arrays.SparseArray, "from_indices", None)  # pandas >= 3
    if from_indices is not None:
        idx = np.flatnonzero(keep).astype(np.int32)
        return from_indices(values[keep], idx, values.size, fill_value=fill, dtype=values.dtype)
    index = pd.arrays.SparseArray(keep, fill_value=False, kind="integer").sp_index
    return pd.arrays.SparseArray(values[keep], sparse_index=index, dtype=dtype)


def compact(values: np.ndarray) -> np.ndarray | pd.arrays.SparseArray:
    """``values`` (1-D) as a ``SparseArray`` around the fill (±NaN or 0 for floats, 0 / False
    otherwise) that leaves the fewest entries, when at most ``MAX_DENSITY`` of them remain and
    there are at least ``MIN_ENTRIES``; else unchanged. Expands to the same dtype and bits."""
    values = np.asarray(values)
    if values.ndim != 1 or values.size == 0 or values.size < MIN_ENTRIES:
        return values
    best, keep, fewest = None, None, MAX_DENSITY * values.size
    for fill in _candidates(values.dtype):
        differ = _differ(values, fill)
        count = np.count_nonzero(differ)
        if count <= fewest:
            best, keep, fewest = fill, differ, count
    if best is None:
        return values
    return _sparse(values, keep, best)


def compact_frame(frame: pd.DataFrame, shared: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
    """``frame`` with each column ``compact`` would shrink made sparse (same index and order);
    ``frame`` itself when it has too few rows for any (an incremental run's scorers: rebuilding
    each one's frame column by column cost ~2% of the run). ``shared``: arrays held anyway (the
    dataset's note ids); a column equal to one of them, bit for bit and in dtype, becomes that
    array itself (every scorer's frame has the note ids: 8 bytes a note a scorer)."""
    if len(frame) < MIN_ENTRIES:
        return frame
    columns = {}
    for name in frame.columns:
        values = frame[name].to_numpy()
        same = (shared or {}).get(name)
        if same is not None and same.dtype == values.dtype and np.array_equal(same, values):
            columns[name] = pd.Series(same, index=frame.index, copy=False)
        else:
            kept = compact(values)
            # a dense column read from the frame's 2-D block is a view that would keep it whole
            columns[name] = values.copy() if kept is values and values.base is not None else kept
    return pd.DataFrame(columns, index=frame.index, copy=False)


@dataclasses.dataclass(frozen=True, eq=False)
class Overlay:
    """A kept column that is another kept column (``base``: an array or ``SparseArray`` held
    anyway) but for a few entries: ``values`` at int32 ``positions``. ``np.asarray`` expands it.

    Why: a scorer keeps its fits (the values before the capture test blanks a note) beside its
    final frame (after it); they differ on the notes that failed the test only."""

    base: object
    positions: np.ndarray
    values: np.ndarray

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = np.array(self.base, dtype=self.values.dtype, copy=True)
        out[self.positions] = self.values
        return out if dtype is None else out.astype(dtype, copy=False)

    def __len__(self) -> int:
        return int(np.shape(self.base)[0])


def overlay(values: np.ndarray, dense_base: np.ndarray, kept_base: object) -> object:
    """``values`` kept as an ``Overlay`` of ``kept_base`` (which expands to ``dense_base``) when
    they differ in fewer bits than ``compact(values)`` would hold, else ``compact(values)``; the
    base itself when every bit is the same."""
    values = np.asarray(values)
    if values.dtype != dense_base.dtype or values.shape != dense_base.shape or values.dtype.kind != "f":
        return compact(values)
    unsigned = f"u{values.dtype.itemsize}"
    differ = np.ascontiguousarray(values).view(unsigned) != np.ascontiguousarray(dense_base).view(unsigned)
    count = int(np.count_nonzero(differ))
    if count == 0:
        return kept_base
    own = compact(values)
    if count * (values.dtype.itemsize + 4) >= kept_bytes(own):
        return own
    pos = np.flatnonzero(differ).astype(np.int32)
    return Overlay(kept_base, pos, values[pos])


@dataclasses.dataclass(frozen=True, eq=False)
class Coded:
    """A text column of few distinct values kept as ``compact`` int codes into ``uniques``;
    ``np.asarray`` expands it (the same objects, so the same text).

    Why: a rule chain's per-note active filter tags are "" for nearly every note; as objects they
    were 8 bytes a note a scorer, kept by every final run until the outputs are assembled."""

    codes: object
    uniques: np.ndarray

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self.uniques[np.asarray(self.codes)]
        return out if dtype is None else out.astype(dtype, copy=False)

    def __len__(self) -> int:
        return int(np.shape(self.codes)[0])


def code(values: np.ndarray) -> object:
    """An object column as ``Coded`` when it has ``MIN_ENTRIES`` or more entries, at most 126
    distinct values besides None (an int8 code each, None's -1), and no missing value but None
    (kept as None); else unchanged."""
    values = np.asarray(values)
    if values.dtype != object or values.ndim != 1 or values.size < max(MIN_ENTRIES, 1):
        return values
    codes, uniques = pd.factorize(values)  # a missing value's code is -1
    missing = codes < 0
    if uniques.shape[0] > 126 or not all(v is None for v in values[missing].tolist()):
        return values
    table = np.empty(uniques.shape[0] + 1, dtype=object)
    table[:-1] = uniques
    table[-1] = None  # code -1 reads the last entry
    return Coded(compact(codes.astype(np.int8)), table)


def kept_bytes(values: object) -> int:
    """Bytes a kept column holds: values plus positions for a sparse one, ``nbytes`` otherwise;
    summed over a frame's columns, a dict's values, a ``Packed``'s columns and a dataclass's
    fields (text columns count their ``nbytes`` only)."""
    if isinstance(values, pd.arrays.SparseArray):
        return int(values.sp_values.nbytes + values.sp_index.indices.nbytes)
    if isinstance(values, pd.DataFrame):
        return sum(kept_bytes(values[c].array) for c in values.columns)
    if isinstance(values, dict):
        return sum(kept_bytes(v) for v in values.values())
    if isinstance(values, Packed):
        return sum(kept_bytes(c) for c in values.columns)
    if isinstance(values, Overlay):  # its base is counted where it is held
        return int(values.positions.nbytes + values.values.nbytes)
    if isinstance(values, Coded):
        return kept_bytes(values.codes) + int(values.uniques.nbytes)
    if isinstance(values, PackedFrame):
        return kept_bytes(values.columns)
    if dataclasses.is_dataclass(values) and not isinstance(values, type):
        return sum(kept_bytes(getattr(values, f.name)) for f in dataclasses.fields(values))
    return int(getattr(values, "nbytes", 0))


# --- Whole results kept between phases (prescoring states) -------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class Packed:
    """An array (1-D or 2-D) kept small until it is read again; ``expand`` gives it back bit for bit.

    Why: each scorer's prescoring (both rounds' parameters, the low-diligence model, the helpfulness
    table, per-rater "incorrect" counts) is sized to every note and rater of the dataset and lives
    from its prescoring to the assembly of the outputs, yet a group or topic scorer fits a small
    share of them, and the fits are float32 arithmetic stored as float64. ``columns``: one
    entry per column, each float32 where that holds the float64 values exactly and sparse
    (``compact``) where mostly one fill; ``dtype``/``shape``: what ``expand`` rebuilds.
    """

    columns: tuple[np.ndarray | pd.arrays.SparseArray, ...]
    dtype: np.dtype
    shape: tuple[int, ...]


def _narrow(values: np.ndarray) -> np.ndarray:
    """float64 ``values`` as float32 when that keeps every bit (NaN payloads and -0.0 included);
    int64 as int32 when every value fits."""
    if values.dtype == np.int64:
        lo, hi = np.iinfo(np.int32).min, np.iinfo(np.int32).max
        return values.astype(np.int32) if values.min() >= lo and values.max() <= hi else values
    if values.dtype != np.float64:
        return values
    small = values.astype(np.float32)
    if np.array_equal(small.astype(np.float64).view(np.uint64), values.view(np.uint64)):
        return small
    return values


def pack(values: object) -> object:
    """A numeric 1-D or 2-D array as ``Packed``; anything else (and an empty array) unchanged."""
    if not isinstance(values, np.ndarray) or values.size == 0 or values.ndim not in (1, 2):
        return values
    if values.dtype.kind not in "fiub":
        return values
    cols = [values] if values.ndim == 1 else [values[:, j] for j in range(values.shape[1])]
    packed = tuple(compact(_narrow(np.ascontiguousarray(c))) for c in cols)
    return Packed(packed, values.dtype, values.shape)


def expand(values: object) -> object:
    """The array ``pack`` (or ``compact``, ``code``) replaced, as a fresh ndarray; anything else
    unchanged."""
    if isinstance(values, pd.arrays.SparseArray | Coded):
        return np.asarray(values)
    if not isinstance(values, Packed):
        return values
    out = np.empty(values.shape, dtype=values.dtype)
    if len(values.shape) == 1:
        out[:] = np.asarray(values.columns[0]).astype(values.dtype)
    else:
        for j, col in enumerate(values.columns):
            out[:, j] = np.asarray(col).astype(values.dtype)
    return out


def expand_rows(values: object, start: int, stop: int, column: int | None = None) -> np.ndarray:
    """Rows ``start:stop`` of ``expand(values)`` (of its column ``column`` when 2-D), bit for bit,
    expanding only those rows: a packed state is written a block of rows at a time without a
    full-size copy of any column. ``values``: a ``Packed``, ``SparseArray`` or ndarray."""
    if isinstance(values, Packed):
        part = np.asarray(values.columns[column or 0][start:stop])
        return part.astype(values.dtype, copy=False)
    if isinstance(values, pd.arrays.SparseArray):
        return np.asarray(values[start:stop])
    block = np.asarray(values)[start:stop]
    return block if column is None else block[:, column]


@dataclasses.dataclass(frozen=True, eq=False)
class PackedFrame:
    """A DataFrame whose numeric columns are ``Packed`` (text columns kept as they are)."""

    columns: dict[str, object]
    index: pd.Index


def pack_frame(frame: object) -> object:
    if not isinstance(frame, pd.DataFrame):
        return frame
    cols = {c: pack(frame[c].to_numpy()) if isinstance(frame[c].dtype, np.dtype) else frame[c].array
            for c in frame.columns}  # fmt: skip
    return PackedFrame(cols, frame.index)


def expand_frame(frame: object) -> object:
    if not isinstance(frame, PackedFrame):
        return frame
    return pd.DataFrame({c: expand(v) for c, v in frame.columns.items()}, index=frame.index)


def pack_fields(obj: T, nested: tuple[type, ...] = ()) -> T:
    """``obj`` (a dataclass) with every array field ``pack``ed and every DataFrame field
    ``pack_frame``d; fields whose value is one of the ``nested`` dataclasses are packed likewise.
    Packing a packed object again returns the same values."""
    changes: dict[str, object] = {}
    for f in dataclasses.fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, f.name)
        if isinstance(value, nested):
            changes[f.name] = pack_fields(value, nested)
        elif isinstance(value, np.ndarray):
            changes[f.name] = pack(value)
        elif isinstance(value, pd.DataFrame):
            changes[f.name] = pack_frame(value)
    return dataclasses.replace(obj, **changes)  # type: ignore[type-var]


def expand_fields(obj: T, nested: tuple[type, ...] = ()) -> T:
    """The inverse of ``pack_fields``: every field as the array or frame it was (fresh copies);
    an object that was never packed comes back with the same values."""
    changes: dict[str, object] = {}
    for f in dataclasses.fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, f.name)
        if isinstance(value, nested):
            changes[f.name] = expand_fields(value, nested)
        elif isinstance(value, Packed | pd.arrays.SparseArray | Coded):
            changes[f.name] = expand(value)
        elif isinstance(value, PackedFrame):
            changes[f.name] = expand_frame(value)
    return dataclasses.replace(obj, **changes) if changes else obj  # type: ignore[type-var]
