"""Writing the public TSV format: tab-separated, one header row, empty cells for missing values.

Text cells holding tabs, newlines or quotes are quoted the way ``csv``/pandas quote them
(double quotes, inner quotes doubled), which X's reader (pandas) parses back unchanged.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Sequence
from typing import IO

import numpy as np
import pandas as pd

from bridgewatch.io.atomic import atomic_text
from bridgewatch.io.tsv_cells import frame_cells, rows_text


def write_frame(fh: IO[str], frame: pd.DataFrame, columns: Sequence[str], header: bool) -> None:
    """Append ``frame`` to an open text stream as TSV in ``columns`` order.

    Columns missing from ``frame`` are written empty, so a writer can emit a full reference
    schema before every column is computed.
    """
    out = frame.reindex(columns=list(columns))
    out.to_csv(
        fh,
        sep="\t",
        index=False,
        header=header,
        na_rep="",
        quoting=csv.QUOTE_MINIMAL,
        lineterminator="\n",
    )


def write_tsv(
    path: str | os.PathLike[str],
    frames: pd.DataFrame | Iterable[pd.DataFrame],
    columns: Sequence[str],
) -> None:
    """Write one frame, or a stream of frames (chunks), to ``path`` atomically."""
    chunks = [frames] if isinstance(frames, pd.DataFrame) else frames
    with atomic_text(path) as fh:
        wrote_header = False
        for chunk in chunks:
            write_frame(fh, chunk, columns, header=not wrote_header)
            wrote_header = True
        if not wrote_header:
            fh.write("\t".join(columns) + "\n")


def frame_text(frame: pd.DataFrame, columns: Sequence[str]) -> bytes:
    """The bytes ``write_tsv`` writes for ``frame`` (header included), in memory: formatted
    column by column (``tsv_cells``) where every column's dtype allows, else by pandas."""
    cells = frame_cells(frame, columns)
    if cells is not None:
        return rows_text(columns, cells)
    buf = io.StringIO(newline="")
    write_frame(buf, frame, columns, header=True)
    return buf.getvalue().encode("utf-8")


def _lines(text: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) int64[L]: byte spans of the newline-terminated lines of ``text``."""
    nl = np.flatnonzero(np.frombuffer(text, dtype=np.uint8) == ord("\n")).astype(np.int64)
    starts = np.concatenate([[0], nl[:-1] + 1]) if nl.size else np.zeros(0, dtype=np.int64)
    return starts, nl + 1


def splice_rows(
    old: bytes, old_keys: np.ndarray, new: bytes, new_keys: np.ndarray, keys: np.ndarray
) -> bytes | None:
    """TSV text whose rows follow ``keys``: a key's row from ``new`` when ``new_keys`` holds it,
    else from ``old`` (both texts as ``frame_text`` writes them, one row per key, in key order).

    Incremental runs rewrite only the rows that changed; every row is formatted on its own, so
    the result equals ``frame_text`` of the whole frame. Returns None when a text is not one
    line per row (a quoted cell holding a newline) or the headers differ: format it whole then.
    """
    old_start, old_end = _lines(old)
    new_start, new_end = _lines(new)
    if old_start.size != len(old_keys) + 1 or new_start.size != len(new_keys) + 1:
        return None
    if old[: old_end[0]] != new[: new_end[0]]:
        return None
    keys = np.asarray(keys)
    in_new = pd.Index(np.asarray(new_keys)).get_indexer(keys)
    in_old = pd.Index(np.asarray(old_keys)).get_indexer(keys)
    if ((in_new < 0) & (in_old < 0)).any():
        return None
    use_new = in_new >= 0

    def pick(new_pos: np.ndarray, old_pos: np.ndarray) -> np.ndarray:
        # Row spans (header excluded) padded by one so an empty side can still be indexed.
        a = np.append(new_pos[1:], 0)[np.where(use_new, in_new, -1)]
        b = np.append(old_pos[1:], 0)[np.where(use_new, -1, in_old)]
        return np.where(use_new, a, b)

    start, end = pick(new_start, old_start), pick(new_end, old_end)
    # Copy runs of rows that sit back to back in one source as one slice each.
    cut = np.flatnonzero((use_new[1:] != use_new[:-1]) | (start[1:] != end[:-1])) + 1
    first = np.concatenate([[0], cut]).astype(np.int64)
    last = np.concatenate([cut, [keys.shape[0]]]).astype(np.int64) - 1
    parts = [old[: old_end[0]]]
    views = (memoryview(old), memoryview(new))
    for f, la in zip(first.tolist(), last.tolist(), strict=True):
        if f <= la:
            parts.append(views[int(use_new[f])][start[f] : end[la]])
    return b"".join(parts)
