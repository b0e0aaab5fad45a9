"""Training speed and memory of ``ovavss train`` (issue 4, point 6).

For each preset (tiny, r50 by default), each device (CPU, and CUDA when present), batch sizes 1 and 4, and AMP
off / on, one child process runs the real training loop (``run_training``: data loading, augmentation, forward,
loss, backward, optimiser) on a generated AVSBench-semantic tree and prints:

* iterations per second, timed from the JSONL log over the steps after ``--warmup`` (the first steps include
  one-time work: caches, allocator growth);
* peak resident memory of the process and, on CUDA, the peak memory allocated by torch.

The r50 model starts from random weights written once to ``--workdir`` as an ``--init`` checkpoint (VGGish and
CLIP included, so nothing is downloaded): speed does not depend on the values. Example::

    python bench/train_speed.py --preset tiny --preset r50 --steps 5 --warmup 2
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from common import measure, parse_or_run_child, peak_rss_mib

FRAME_SIZE = (360, 640)  # (H, W) of the generated frames, a common AVSBench size


def prepare_data(workdir: Path) -> tuple[Path, Path]:
    """A generated tree with 12 training clips (and its split), made once per workdir."""
    from ovavss_cli.data.classes import BASE_IDS, LABEL_NAMES
    from ovavss_cli.data.split import make_split_file
    from ovavss_cli.data.synthetic import generate_avss

    data, split = workdir / "data", workdir / "split.json"
    if not split.is_file():
        generate_avss(data, 36, size=FRAME_SIZE, classes=[LABEL_NAMES[i] for i in BASE_IDS[:8]])
        make_split_file(data, split)
    return data, split


def random_init(workdir: Path, preset: str) -> Path | None:
    """A random-weights full-model checkpoint for presets that otherwise need released weights."""
    from ovavss_cli.engine.ovavss_task import RANDOM_INIT_PRESETS
    from ovavss_cli.models.api import create_model, model_checkpoint_config
    from ovavss_cli.models.checkpoint import save_checkpoint

    if preset in RANDOM_INIT_PRESETS:
        return None
    path = workdir / f"{preset}-random.safetensors"
    if not path.is_file():
        model = create_model(preset)
        save_checkpoint(path, model.state_dict(), kind="model", config=model_checkpoint_config(model.config))
    return path


def run_child(job: dict) -> dict:
    import torch

    from ovavss_cli.engine.run_config import TrainConfig
    from ovavss_cli.engine.run_log import LOG_FILE, read_log
    from ovavss_cli.engine.train import run_training

    workdir = Path(job["workdir"])
    data, split = prepare_data(workdir)
    preset = f"ovavss-{job['preset']}"
    init = random_init(workdir, preset)
    steps = job["warmup"] + job["steps"]
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=workdir)) / "run"
    config = TrainConfig(
        data=str(data),
        split=str(split),
        preset=preset,
        init=None if init is None else str(init),
        out=str(run_dir),
        batch_size=job["batch_size"],
        max_steps=steps,
        checkpoint_every=steps,
        amp=job["amp"],
        device=job["device"],
        threads=job["threads"],
    )
    run_training(config)
    seconds = {record["step"]: record["seconds"] for record in read_log(run_dir / LOG_FILE) if "loss" in record}
    timed = seconds[steps] - seconds[job["warmup"]]
    result = {"it_per_s": job["steps"] / timed, "peak_rss_mib": peak_rss_mib()}
    if job["device"].startswith("cuda"):
        result["cuda_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", action="append", help="tiny | r50 | swinb (repeatable; default tiny and r50)")
    parser.add_argument("--batch-size", action="append", type=int, help="repeatable; default 1 and 4")
    parser.add_argument("--steps", type=int, default=5, help="timed steps (default 5)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed first steps (default 2)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2, as CI)")
    parser.add_argument("--workdir", type=Path, help="where the generated data and runs go")
    args = parse_or_run_child(parser, run_child)
    if args is None:
        return

    import torch

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ovavss-train-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    header = f"{'device':<6} {'preset':<6} {'batch':>5} {'amp':<4} {'it/s':>8} {'clips/s':>8}"
    print(f"{header} {'peak RSS':>10} {'CUDA peak':>10}")
    for device in devices:
        for preset in args.preset or ["tiny", "r50"]:
            for batch_size in args.batch_size or [1, 4]:
                for amp in (False, True):
                    job = {"workdir": str(workdir), "device": device, "preset": preset, "batch_size": batch_size,
                           "amp": amp, "steps": args.steps, "warmup": args.warmup, "threads": args.threads}  # fmt: skip
                    result = measure(__file__, job)
                    row = f"{device:<6} {preset:<6} {batch_size:>5} {'on' if amp else 'off':<4}"
                    if "skipped" in result:
                        print(f"{row} skipped: {result['skipped']}")
                        continue
                    cuda = f"{result['cuda_peak_mib']:8.0f} MiB" if "cuda_peak_mib" in result else f"{'-':>10}"
                    speed = result["it_per_s"]
                    print(f"{row} {speed:8.3f} {speed * batch_size:8.3f} {result['peak_rss_mib']:6.0f} MiB {cuda}")


if __name__ == "__main__":
    main()
