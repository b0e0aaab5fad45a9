"""The recipe of the bundled ``tiny-demo`` checkpoint and example clip; it wrote the files that ship.

    python -m ovavss_cli.weights.make_tiny_demo --work /tmp/tiny-demo-work

1. Generate an AVSBench-semantic tree with the project's generator: 480 train clips of base classes,
   40 val and 80 test clips of any class, one silent distractor per clip (so the segmenter must
   listen to tell the sounding object from the silent one).
2. ``ovavss make-split`` (rule ``exclude-novel``): the segmenter never sees a clip with a novel class.
3. ``ovavss train --preset tiny``: the class-agnostic sounding-object segmenter; its small VGGish-shaped
   audio encoder trains with it (there is no pretrained VGGish to freeze at this size).
4. Fit the tiny CLIP on a second, independently generated tree covering all 70 classes
   (:mod:`ovavss_cli.engine.clip_fit`): the stand-in for CLIP's web-scale pretraining, which cannot be
   downloaded here. Then measure it on held-out data and write the model card numbers.
5. Set ``open_vocab.min_sounding_score = 0.5`` (only queries the segmenter believes sound are named;
   the reference names every non-empty mask), save ``tiny-demo.safetensors`` (float16 storage: half
   the size) and render ``demo.mp4``.

Everything is seeded; the numbers it prints are the ones in ``tiny-demo.md``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import torch

from ovavss_cli.data.avsbench import load_avss
from ovavss_cli.data.classes import BASE_IDS, LABEL_NAMES
from ovavss_cli.data.split import load_split, make_split_file
from ovavss_cli.data.synthetic import ClipSpec, default_avss_clips, generate_avss
from ovavss_cli.data.synthetic_video import write_synthetic_video
from ovavss_cli.engine.clip_fit import ClipFitConfig, crop_accuracy, fit_clip, object_crops
from ovavss_cli.inference.validation import evaluate_clips
from ovavss_cli.models.api import load_model, save_model
from ovavss_cli.models.ovavss.model import OVAVSS

WEIGHTS = Path(__file__).resolve().parent
TRAIN_CLIPS, EVAL_CLIPS, SEGMENTER_SEED = 480, 120, 1
CLIP_WORLD_CLIPS, CLIP_WORLD_SEED, CLIP_HELD_OUT_SEED = 210, 2, 3
TRAIN_STEPS, TRAIN_SEED = 3000, 0
CLIP_FIT = ClipFitConfig(steps=400, seed=0)
MIN_SOUNDING_SCORE = 0.5
#: The example clip: a dog-looking object sounds for 3 s, then a violin-looking one (a novel class,
#: never in the segmenter's training clips) for 5 s; a car-looking object stays silent throughout.
DEMO_CLIP = ClipSpec(
    uid="demo",
    subset="v2",
    split="test",
    sounding=("dog", "violin"),
    silent=("car",),
    frames=8,
    schedule=(("dog",),) * 3 + (("violin",),) * 5,
)
DEMO_SEED = 7


def segmenter_clips() -> list[ClipSpec]:
    """Train clips with base classes only (what exclude-novel keeps), val/test clips with any class."""
    base_names = [LABEL_NAMES[i] for i in BASE_IDS]
    train = [
        replace(spec, uid=f"tr{spec.uid}", split="train")
        for spec in default_avss_clips(TRAIN_CLIPS, SEGMENTER_SEED, base_names)
    ]
    held_out = [
        replace(spec, uid=f"ev{spec.uid}", split="val" if index % 3 == 0 else "test")
        for index, spec in enumerate(default_avss_clips(EVAL_CLIPS, SEGMENTER_SEED + 1))
    ]
    return train + held_out


def run(command: list[str]) -> None:
    print("+", " ".join(command), flush=True)
    subprocess.run([sys.executable, "-m", "ovavss_cli.cli", *command], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="new folder for the generated data and the run")
    parser.add_argument("--out", type=Path, default=WEIGHTS, help="where tiny-demo.safetensors and demo.mp4 go")
    args = parser.parse_args()
    torch.set_num_threads(2)
    data, split_file, run_dir = args.work / "segmenter-data", args.work / "split.json", args.work / "run"

    generate_avss(data, segmenter_clips(), seed=SEGMENTER_SEED, silent_distractors=1)
    make_split_file(data, split_file, rule="exclude-novel")
    run(["train", "--data", str(data), "--split", str(split_file), "--preset", "tiny", "--device", "cpu",
         "--max-steps", str(TRAIN_STEPS), "--seed", str(TRAIN_SEED), "--threads", "2",
         "--out", str(run_dir)])  # fmt: skip
    model = load_model(str(run_dir / "model.safetensors"))

    world = load_avss(generate_avss(args.work / "clip-world", CLIP_WORLD_CLIPS, seed=CLIP_WORLD_SEED).root)
    held_out = load_avss(generate_avss(args.work / "clip-held-out", 70, seed=CLIP_HELD_OUT_SEED).root)
    short_side = model.config.min_size_test
    regions, labels = object_crops(model.open_vocab, world, world.clips, short_side)
    test_regions, test_labels = object_crops(model.open_vocab, held_out, held_out.clips, short_side)
    losses = fit_clip(model.open_vocab, regions, labels, CLIP_FIT)
    # Name only queries the segmenter believes sound (the reference names every non-empty mask, so a
    # silent object can be painted): the demo's one departure from the parity inference path.
    model = with_min_sounding_score(model, MIN_SOUNDING_SCORE)

    dataset = load_avss(data)
    split = load_split(split_file)
    test_clips = [dataset.clip(uid) for uid in split.uids("test")]
    card = {
        "segmenter": {"train_clips": len(split.uids("train")), "steps": TRAIN_STEPS, "seed": TRAIN_SEED},
        "clip_fit": {
            "crops": len(regions),
            "steps": CLIP_FIT.steps,
            "final_loss": losses[-1],
            "held_out_crop_accuracy": crop_accuracy(model.open_vocab, test_regions, test_labels),
        },  # fmt: skip
        "generated_test_split": {"clips": len(test_clips), **evaluate_clips(model, dataset, test_clips, split)},
    }
    target = args.out / "tiny-demo.safetensors"
    info = {"recipe": "ovavss_cli.weights.make_tiny_demo", "card": card}
    sha256 = save_model(model, target, dtype=torch.float16, info=info)
    write_synthetic_video(args.out / "demo.mp4", DEMO_CLIP, seed=DEMO_SEED)
    print(json.dumps({"sha256": sha256, "size_bytes": target.stat().st_size, **card}, indent=2))


def with_min_sounding_score(model: OVAVSS, score: float) -> OVAVSS:
    """The same weights under a config whose ``open_vocab.min_sounding_score`` is ``score`` (a new model: a
    built model's config is never changed)."""
    config = replace(model.config, open_vocab=replace(model.config.open_vocab, min_sounding_score=score))
    named = OVAVSS(config)
    named.load_state_dict(model.state_dict())
    return named.eval()


if __name__ == "__main__":
    main()
