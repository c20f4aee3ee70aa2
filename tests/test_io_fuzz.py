"""Property: on arbitrary bytes the reader either works or raises DataFormatError, nothing else."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridgewatch import schema
from bridgewatch.errors import DataFormatError
from bridgewatch.io import read_dataset
from test_io_helpers import write_basic

_HEADERS = {
    schema.NOTES_FILE: "\t".join(schema.NOTE_COLUMNS).encode(),
    schema.RATINGS_FILE: "\t".join(schema.RATING_COLUMNS).encode(),
    schema.STATUS_FILE: "\t".join(schema.NOTE_STATUS_HISTORY_COLUMNS).encode(),
    schema.ENROLLMENT_FILE: "\t".join(schema.ENROLLMENT_COLUMNS).encode(),
}
_ALPHABET = st.sampled_from(
    [
        b"\t",
        b"\n",
        b'"',
        b"\r",
        b"0",
        b"1",
        b"-",
        b"x",
        b"\xff",
        b"\x00",
        b"HELPFUL",
        b"1700000000000",
        b"earnedIn",
        b"NOT_MISLEADING",
        b"",
    ]
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    which=st.sampled_from(sorted(_HEADERS)),
    with_header=st.booleans(),
    body=st.one_of(st.binary(max_size=300), st.lists(_ALPHABET, max_size=80).map(b"".join)),
)
def test_arbitrary_bytes_work_or_raise_data_format_error(which: str, with_header: bool, body: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = write_basic(Path(tmp))
        data = (_HEADERS[which] + b"\n" + body) if with_header else body
        (d / which).write_bytes(data)
        with contextlib.suppress(DataFormatError):
            read_dataset(d)
