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

from bridgewatch.io.atomic import atomic_path
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


# Rows formatted at a time. Before its rows are joined every cell is a Python str (~55 bytes):
# scored_notes formatted whole held ~5 KB a note of them, ~13 GB at X's 2.5M notes.
BLOCK_ROWS = 16_384


def write_tsv(
    path: str | os.PathLike[str],
    frames: pd.DataFrame | Iterable[pd.DataFrame],
    columns: Sequence[str],
) -> None:
    """Write one frame, or a stream of frames (chunks), to ``path`` atomically."""
    chunks = [frames] if isinstance(frames, pd.DataFrame) else frames
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        wrote_header = False
        for chunk in chunks:
            write_rows(fh, chunk, columns, header=not wrote_header)
            wrote_header = True
        if not wrote_header:
            fh.write(("\t".join(columns) + "\n").encode("utf-8"))


def write_rows(
    fh: IO[bytes],
    frame: pd.DataFrame,
    columns: Sequence[str],
    *,
    header: bool = True,
    block_rows: int = BLOCK_ROWS,
) -> None:
    """Append ``frame`` to a binary stream as ``write_tsv`` writes it, ``block_rows`` rows at a
    time, so formatting holds one block's cells whatever the frame's length. Each row's cells
    are formatted from its own values (``tsv_cells``), so the bytes do not depend on
    ``block_rows``. A dtype ``tsv_cells`` does not know goes to pandas whole: pandas formats
    some (datetimes) by what the whole column holds, and bounds its own memory by chunks."""
    if frame_cells(frame.iloc[:0], columns) is None:
        text = io.TextIOWrapper(fh, encoding="utf-8", newline="", write_through=True)
        write_frame(text, frame, columns, header=header)
        text.detach()
        return
    if len(frame) == 0:
        if header:
            fh.write(rows_text(columns, _cells(frame, columns)))
        return
    for start in range(0, len(frame), block_rows):
        cells = _cells(frame.iloc[start : start + block_rows], columns)
        fh.write(rows_text(columns if header and start == 0 else None, cells))


def _cells(frame: pd.DataFrame, columns: Sequence[str]) -> list[np.ndarray]:
    cells = frame_cells(frame, columns)
    if cells is None:  # (dtypes decide it, and the caller has checked them)
        raise TypeError("tsv_cells cannot format these columns")
    return cells


# Bytes read at a time when scanning or copying a text (bounded, whatever the file's size).
_CHUNK = 1 << 24


def line_ends(fh: IO[bytes]) -> np.ndarray:
    """int64[L]: the offset one past each newline of the binary stream ``fh``, read in chunks."""
    fh.seek(0)
    ends, offset = [], 0
    while chunk := fh.read(_CHUNK):
        ends.append(
            np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == ord("\n")).astype(np.int64) + offset + 1
        )
        offset += len(chunk)
    return np.concatenate(ends) if ends else np.zeros(0, dtype=np.int64)


def _copy(src: IO[bytes], start: int, end: int, out: IO[bytes]) -> None:
    src.seek(start)
    while start < end:
        chunk = src.read(min(_CHUNK, end - start))
        if not chunk:
            raise OSError(f"{getattr(src, 'name', 'text')}: ended at byte {start}, expected {end}")
        out.write(chunk)
        start += len(chunk)


def splice_rows(
    old: IO[bytes],
    old_keys: np.ndarray,
    new: IO[bytes],
    new_keys: np.ndarray,
    keys: np.ndarray,
    out: IO[bytes],
) -> bool:
    """Write to ``out`` the TSV text whose rows follow ``keys``: a key's row from ``new`` when
    ``new_keys`` holds it, else from ``old`` (both binary streams of texts as ``write_rows``
    writes them, one row per key, in key order).

    Incremental runs rewrite only the rows that changed; every row is formatted on its own, so
    the result equals formatting the whole frame. Both texts are read in bounded chunks, never
    whole (at X's scale scored_notes' text is ~2 GB). Returns False, having written nothing,
    when a text is not one line per row (a quoted cell holding a newline), the headers differ
    or a key is in neither: format it whole then.
    """
    old_end, new_end = line_ends(old), line_ends(new)
    if old_end.size != len(old_keys) + 1 or new_end.size != len(new_keys) + 1:
        return False
    old.seek(0)
    new.seek(0)
    head = old.read(int(old_end[0]))
    if head != new.read(int(new_end[0])):
        return False
    keys = np.asarray(keys)
    in_new = pd.Index(np.asarray(new_keys)).get_indexer(keys)
    in_old = pd.Index(np.asarray(old_keys)).get_indexer(keys)
    if ((in_new < 0) & (in_old < 0)).any():
        return False
    use_new = in_new >= 0

    def pick(new_pos: np.ndarray, old_pos: np.ndarray) -> np.ndarray:
        # Row spans (header excluded) padded by one so an empty side can still be indexed.
        a = np.append(new_pos[1:], 0)[np.where(use_new, in_new, -1)]
        b = np.append(old_pos[1:], 0)[np.where(use_new, -1, in_old)]
        return np.where(use_new, a, b)

    start = pick(np.concatenate([[0], new_end[:-1]]), np.concatenate([[0], old_end[:-1]]))
    end = pick(new_end, old_end)
    # Copy runs of rows that sit back to back in one source as one range each.
    cut = np.flatnonzero((use_new[1:] != use_new[:-1]) | (start[1:] != end[:-1])) + 1
    first = np.concatenate([[0], cut]).astype(np.int64)
    last = np.concatenate([cut, [keys.shape[0]]]).astype(np.int64) - 1
    out.write(head)
    sources = (old, new)
    for f, la in zip(first.tolist(), last.tolist(), strict=True):
        if f <= la:
            _copy(sources[int(use_new[f])], int(start[f]), int(end[la]), out)
    return True
