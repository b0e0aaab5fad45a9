"""AVSC learning curves on generated S4 data with visible silent distractors (issue 6, point 5).

Every clip shows one sounding object and one silent one, both drawn from a few classes, so only the audio tells
which one to segment. The tiny preset is trained through the real loop twice, with the same seed, data and
steps: with the audio weighting of the correlation step, and without it (every kept instance counts fully: the
control). Per validation it prints step, each run's mean training loss since the previous validation and its
held-out (val) mJ / mF (official, batch 4); at the end, both runs' scores on the test clips. Example (CPU)::

    python bench/avsc_curves.py --steps 600 --val-every 100

With ``--probe`` each trained model also goes through ``ovavss probe-audio`` on the test clips (original,
silence, noise, misaligned audio) and its table is printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
from common import validation_curve

from ovavss_cli.console import console
from ovavss_cli.data.synthetic import ClipSpec, generate_s4
from ovavss_cli.engine.augment import AugmentConfig
from ovavss_cli.engine.criterion import CriterionConfig
from ovavss_cli.engine.point_sampling import ImportanceSamplingConfig
from ovavss_cli.engine.run_config import TrainConfig, tiny_recipe
from ovavss_cli.engine.run_log import LOG_FILE, read_log
from ovavss_cli.engine.train import run_training
from ovavss_cli.inference.audio_probe import probe_audio, probe_table
from ovavss_cli.inference.evaluate import evaluate_model_on_avsbench_object
from ovavss_cli.models.api import load_model

#: S4 classes whose generated looks and tones are easy to tell apart.
CLASSES = ("dog", "guitar", "helicopter", "piano", "violin", "car", "cat", "man")
VARIANTS = {"audio weighting": {}, "control (no audio weighting)": {"audio_weighting": False}}


def silent_distractor_clips(counts: dict[str, int], classes: tuple[str, ...], seed: int) -> list[ClipSpec]:
    """S4 clips per split, each with one sounding class and a different, visible but silent one."""
    rng = np.random.default_rng(seed)
    splits = [split for split, count in counts.items() for _ in range(count)]
    pairs = [rng.choice(len(classes), 2, replace=False) for _ in splits]
    return [
        ClipSpec(f"gen{index:04d}_0_5000", "v1s", split, (classes[a],), (classes[b],))
        for index, (split, (a, b)) in enumerate(zip(splits, pairs, strict=True))
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, help="Folder for the data and the runs (default: a temporary one).")
    parser.add_argument("--train-clips", type=int, default=32)
    parser.add_argument("--held-out", type=int, default=16, help="Clips in each of val and test.")
    parser.add_argument("--classes", type=int, default=4, help=f"How many of {', '.join(CLASSES)}.")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--val-every", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--probe", action="store_true", help="Also run the audio-reliance probe on each model.")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ovavss-avsc-curves-"))
    data = workdir / "data"
    if not data.exists():
        counts = {"train": args.train_clips, "val": args.held_out, "test": args.held_out}
        generate_s4(data, silent_distractor_clips(counts, CLASSES[: args.classes], args.seed), seed=args.seed)
    # The tiny recipe at the generated frames' own size (64 px), with point counts fit for 16x16 masks and the
    # final decoder output supervised only (deep supervision costs ~2x per step on a CPU): as the learning test.
    recipe = dataclasses.replace(
        tiny_recipe(),
        augment=AugmentConfig(short_edges=(64,)),
        criterion=CriterionConfig(
            matcher_points=256, sampling=ImportanceSamplingConfig(num_points=256), deep_supervision=False
        ),
    )
    curves, tests = {}, {}
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for index, (name, options) in enumerate(VARIANTS.items()):
        config = TrainConfig(
            data=str(data), model="avsc", preset="tiny", out=str(workdir / f"run-{stamp}-{index}"),
            seed=args.seed, batch_size=args.batch_size, max_steps=args.steps, val_every=args.val_every,
            threads=args.threads, device="cpu", recipe=recipe, task_options=options,
        )  # fmt: skip
        started = time.perf_counter()
        run_training(config)
        print(f"{name}: {args.steps} steps in {time.perf_counter() - started:.0f} s, run folder {config.run_dir}")
        curves[name] = validation_curve(read_log(config.run_dir / LOG_FILE))
        model = load_model(str(config.run_dir / "model.safetensors"), architecture="avsc")
        tests[name] = evaluate_model_on_avsbench_object(data, "s4", model).scores
        if args.probe:
            console.print(probe_table(probe_audio(model, data, benchmark="s4", seed=args.seed)))

    names = list(VARIANTS)
    print(
        f"{'step':>6} "
        + " ".join(f"{'loss':>8} {'val mJ':>7} {'val mF':>7}" for _ in names)
        + f"   ({' | '.join(names)})"
    )
    for points in zip(*(curves[name] for name in names), strict=True):
        cells = [f"{loss:8.3f} {val['mJ']:7.3f} {val['mF']:7.3f}" for _, loss, val in points]
        print(f"{points[0][0]:>6} " + " ".join(cells))
    for name in names:
        scores = tests[name]
        print(f"test, {name}: mJ {scores.official_miou:.3f} mF {scores.official_fscore:.3f} (official, batch 4); "
              f"clean mJ {scores.miou:.3f} mF {scores.fscore:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
