"""Typed errors raised by the core; each edge (CLI, API) translates them once."""

from __future__ import annotations


class BridgewatchError(Exception):
    """Base class for every error Bridgewatch raises on purpose."""


class DataFormatError(BridgewatchError):
    """An input file breaks the public data format.

    Carries where (file, line, field) and what was expected, so the message a user sees points at
    the exact place to fix. ``line`` is 1-based and counts the header as line 1.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = path
        self.line = line
        self.field = field
        self.reason = message
        where = []
        if path is not None:
            where.append(str(path))
        if line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"field {field!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class ConfigError(BridgewatchError):
    """A configuration value is missing, of the wrong type or outside its allowed range."""


class ScoringError(BridgewatchError):
    """Scoring cannot proceed on this data (for example, nothing left after the filters)."""
