"""The one place that says where ovavss keeps things on disk between runs."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_DIR_ENV = "OVAVSS_CACHE_DIR"


def cache_root() -> Path:
    """``$OVAVSS_CACHE_DIR`` when set and non-empty, else ``$XDG_CACHE_HOME/ovavss`` (``~/.cache/ovavss``).

    Below it: ``text-embeddings/`` (CLIP text cache), ``weights/`` (checkpoints imported with
    ``ovavss weights import``). Read at each call, so tests and users can redirect it at any time.
    """
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ovavss"
