"""Generated AVSS trees and tiny-preset run configs shared by the ``test_train_*`` tests."""

from __future__ import annotations

from pathlib import Path

from ovavss_cli.data.classes import BASE_IDS, LABEL_NAMES
from ovavss_cli.data.split import make_split_file
from ovavss_cli.data.synthetic import ClipSpec, generate_avss
from ovavss_cli.engine.run_config import TrainConfig
from ovavss_cli.engine.run_log import LOG_FILE, read_log

#: Base classes only, so the default exclude-novel split keeps every generated training clip.
BASE_CLASSES: tuple[str, ...] = tuple(LABEL_NAMES[i] for i in BASE_IDS[:6])


def make_tree(
    root: Path, clips: int | list[ClipSpec] = 18, rule: str = "exclude-novel", **options
) -> tuple[Path, Path]:
    """A generated AVSS tree at ``root/data`` and its split file ``root/split.json``."""
    options.setdefault("classes", BASE_CLASSES)
    data = root / "data"
    generate_avss(data, clips, **options)
    split = root / "split.json"
    make_split_file(data, split, rule=rule)
    return data, split


def tiny_config(data: Path, split: Path, out: Path, **overrides) -> TrainConfig:
    """A tiny-preset CPU run: batch 2, 6 steps, checkpoints every 2 steps, unless overridden.

    One thread: on a shared 2-core machine two OpenMP threads per process can be 10x slower than one.
    """
    settings = dict(preset="tiny", device="cpu", batch_size=2, max_steps=6, checkpoint_every=2, seed=7, threads=1)
    settings.update(overrides)
    return TrainConfig(data=str(data), split=str(split), out=str(out), **settings)


def step_losses(run_dir: Path) -> dict[int, float]:
    """step -> logged training loss, from the run's JSONL log."""
    return {record["step"]: record["loss"] for record in read_log(Path(run_dir) / LOG_FILE) if "loss" in record}
