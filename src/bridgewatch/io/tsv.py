"""Writing the public TSV format: tab-separated, one header row, empty cells for missing values.

Text cells holding tabs, newlines or quotes are quoted the way ``csv``/pandas quote them
(double quotes, inner quotes doubled), which X's reader (pandas) parses back unchanged.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence
from typing import IO

import pandas as pd

from bridgewatch.io.atomic import atomic_text


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
