"""What a training run shows and records: the JSONL log in the run folder and the progress bar's columns.

``RUN_DIR/train_log.jsonl`` has one JSON object per line, each with the ``step`` it belongs to: training records
(``loss``, its named terms, ``lr``, ``grad_norm``, ``epoch``, ``seconds``), validation records (``val``) and
events (``event``: ``start``, ``resume``, ``interrupted``, ``end``). Lines are appended and flushed as they come;
a resumed run first rewrites the file (atomically) without the records of steps it is about to redo, and without
a line cut short by a crash.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.progress import Progress, ProgressColumn, Task, TextColumn
from rich.text import Text

from ..atomic import atomic_write_text
from ..console import make_progress

LOG_FILE = "train_log.jsonl"


def read_log(path: Path) -> list[dict[str, Any]]:
    """The records of a JSONL log; a last line cut short (a crash while writing it) is skipped."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


class JsonlLog:
    """Append-only JSONL records in the run folder (written by rank 0 only)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def append(self, record: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()

    def keep_until(self, step: int) -> None:
        """Drop the records of steps after ``step`` (they will be redone) and any unreadable line."""
        kept = [record for record in read_log(self.path) if record.get("step", 0) <= step]
        atomic_write_text(self.path, "".join(json.dumps(record) + "\n" for record in kept))


class SpeedColumn(ProgressColumn):
    """Iterations per second, as rich measures them over its recent updates."""

    def render(self, task: Task) -> Text:
        speed = task.speed
        return Text("-- it/s" if speed is None else f"{speed:.2f} it/s", style="progress.data.speed")


def training_progress() -> Progress:
    """Bar with step count, loss, lr, it/s, elapsed time and ETA; update it with ``loss=`` and ``lr=`` fields."""
    return make_progress(
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("lr {task.fields[lr]}"),
        SpeedColumn(),
    )
