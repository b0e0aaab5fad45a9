"""The learning curve of ``ovavss train`` on generated data (issue 4, point 5).

Generates a small AVSBench-semantic tree with the project's generator (sounding classes drawn from the base
classes, so the exclude-novel split keeps every training clip), writes its AVSBench-OV split, measures the
untrained model on the held-out (val) clips, then trains with periodic validation through the real loop and
prints, per validation: step, mean training loss since the previous one, class-agnostic IoU (pooled and
per-frame mean) and the GZSL mIoU of the eval protocol. Example (CPU, tiny preset, a few minutes)::

    python bench/learning_curve.py --steps 600 --val-every 100

The tiny preset's CLIP is random, so its mIoU (naming) stays near zero: the class-agnostic IoU is what it learns.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from common import validation_curve

from ovavss_cli.data.classes import BASE_IDS, LABEL_NAMES
from ovavss_cli.data.split import make_split_file
from ovavss_cli.data.synthetic import generate_avss
from ovavss_cli.engine.run_config import TrainConfig
from ovavss_cli.engine.run_log import LOG_FILE, read_log
from ovavss_cli.engine.train import build_task, run_training


def untrained_metrics(config: TrainConfig) -> dict[str, float]:
    """Validation metrics of the model the run starts from (same seed, same initial weights)."""
    task = build_task(config.model, config)
    torch.manual_seed(config.seed)
    model = task.build_model().eval()
    with torch.no_grad():
        return task.validate(model)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, help="Folder for the data and the run (default: a temporary one).")
    parser.add_argument("--clips", type=int, default=72, help="Generated clips (1/3 train, 1/3 val, 1/3 test).")
    parser.add_argument("--classes", type=int, default=8, help="Sounding classes to draw from (base classes).")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--val-every", type=int, default=100)
    parser.add_argument("--val-clips", type=int, default=0, help="Held-out clips to score (0: all val clips).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ovavss-learning-"))
    data = workdir / "data"
    if not data.exists():
        classes = [LABEL_NAMES[i] for i in BASE_IDS[: args.classes]]
        generate_avss(data, args.clips, seed=args.seed, classes=classes)
        make_split_file(data, data / "split.json")
    config = TrainConfig(
        data=str(data),
        split=str(data / "split.json"),
        preset=args.preset,
        out=str(workdir / f"run-{time.strftime('%Y%m%d-%H%M%S')}"),
        seed=args.seed,
        batch_size=args.batch_size,
        max_steps=args.steps,
        val_every=args.val_every,
        val_clips=args.val_clips,
        threads=args.threads,
        device="cpu",
    )
    before = untrained_metrics(config)
    started = time.perf_counter()
    run_training(config)
    seconds = time.perf_counter() - started

    records = read_log(config.run_dir / LOG_FILE)
    print(f"{'step':>6} {'loss':>9} {'fg_iou':>7} {'fg_frame':>8} {'miou':>7}")
    print(f"{0:>6} {'':>9} {before['fg_iou']:7.3f} {before['fg_mean_frame_iou']:8.3f} {before['miou']:7.3f}")
    for step, mean_loss, val in validation_curve(records):
        print(f"{step:>6} {mean_loss:9.3f} {val['fg_iou']:7.3f} {val['fg_mean_frame_iou']:8.3f} {val['miou']:7.3f}")
    print(f"trained {args.steps} steps in {seconds:.0f} s ({args.steps / seconds:.2f} it/s incl. validation); "
          f"run folder {config.run_dir}")  # fmt: skip


if __name__ == "__main__":
    main()
