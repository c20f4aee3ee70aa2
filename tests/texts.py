"""The TSV bytes ``io.tsv`` writes for a frame, in memory: what the tests compare texts against."""

from __future__ import annotations

import io
from collections.abc import Sequence

import pandas as pd

from bridgewatch.io.tsv import write_rows


def frame_text(frame: pd.DataFrame, columns: Sequence[str]) -> bytes:
    """The bytes ``write_tsv`` writes for ``frame`` (header included)."""
    buf = io.BytesIO()
    write_rows(buf, frame, columns)
    return buf.getvalue()
