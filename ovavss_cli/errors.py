"""The one exception type for errors a user can cause.

`cli.py` catches it once and prints its message on one line, so every message must name the
file (or argument) and the problem, e.g. ``"avsbench/metadata.csv: missing column 'a_obj'"``.
"""

from __future__ import annotations

from pathlib import Path


class OvavssError(Exception):
    """A user-facing error: bad input, missing file, impossible request."""

    def __init__(self, message: str, path: str | Path | None = None):
        message = " ".join(str(message).split())  # one line, always
        super().__init__(f"{path}: {message}" if path is not None else message)
