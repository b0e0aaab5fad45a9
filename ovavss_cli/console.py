"""Shared rich console (stderr, so stdout stays clean for piping) and progress bars."""

from __future__ import annotations

import logging

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)


def make_progress(*extra_columns, transient: bool = False, disable: bool = False) -> Progress:
    """A progress bar with count, elapsed time and ETA; ``extra_columns`` go before the timing.

    ``disable``: show nothing (the ranks other than 0 of a torchrun job).
    """
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *extra_columns,
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=transient,
        disable=disable,
    )


class _HideRandomInitWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Model initialized randomly" not in record.getMessage()


def hide_open_clip_random_init_warning() -> None:
    """The command line's one logging setting: open_clip warns (on the root logger) that a CLIP built with
    ``pretrained=None`` is random, though our checkpoint supplies its weights right after. Only the
    application calls this; library code never changes logging."""
    root = logging.getLogger()
    if not any(isinstance(existing, _HideRandomInitWarning) for existing in root.filters):
        root.addFilter(_HideRandomInitWarning())
