"""Speed and memory of ``ovavss predict``, measured (issue point 8; issue 12 points 4 and 6).

Prints, for each ``--weights`` on CPU (and CUDA when present):

* sampled frames per second of ``VideoPredictor.predict_frames`` (decode + model, no writers) on a
  generated 640x360 / 30 fps video with stereo 44.1 kHz audio, with windows decoded ahead in a thread
  (the default, ``decode_ahead=2``) and without (``0``), and the process's peak RSS;

for ``--memory-weights`` (default: the first) on CPU:

* sampled frames per second of a whole ``ovavss predict`` job over a folder of ``--job-videos`` such
  videos (``--no-video``), as one process with ``--threads`` threads and as ``torchrun`` with 2
  processes of ``--threads / 2`` each (wall clock of the command: start-up and model loads included);
* the cost per video frame of painting and encoding ``overlay.mp4`` for a generated 3840x2160 video, at
  the bounded working resolution ``predict`` uses (long side ``OVERLAY_MAX_SIDE``) and at full size;

and the peak RSS of a full ``predict_to_folder`` run (masks, JSON and overlay.mp4) on generated
1-minute and 10-minute videos. The 10-minute peak must stay within
1.2x of the 1-minute peak (streaming decode, bounded audio, JSON written as frames arrive).

Every measurement runs in its own child process, so each peak RSS is that run's alone. Generated
videos are cached in ``--workdir`` (default: a temporary folder). Example::

    python bench/predict_speed.py --weights tiny-demo --weights preset:ovavss-r50 --memory-weights tiny-demo

A weights spec is anything ``--weights`` takes, or ``preset:NAME`` for a preset with fresh random
weights (speed does not depend on the values, except that random masks are rarely empty, so every
(frame, query) crop goes to CLIP: parity mode's worst case). A spec that cannot be loaded (not
imported, no network) is reported as skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from common import load_weights_spec, measure, parse_or_run_child, peak_rss_mib

MEMORY_RATIO_LIMIT = 1.2
SIZE = (640, 360)
VIDEO_FPS = 30
AUDIO_RATE = 44100


def generate_video(path: Path, seconds: float, size: tuple[int, int] = SIZE) -> Path:
    """A moving-disc video with a chirping tone; cached by name."""
    if path.is_file():
        return path
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width]
    tmp = path.with_suffix(".part.mp4")
    with av.open(str(tmp), "w") as container:
        video = container.add_stream("libx264", rate=VIDEO_FPS)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"preset": "ultrafast"}
        audio = container.add_stream("aac", rate=AUDIO_RATE)
        audio.layout = "stereo"
        samples_per_frame = AUDIO_RATE // VIDEO_FPS  # 1470: an integer, so audio and video stay aligned
        for index in range(round(seconds * VIDEO_FPS)):
            phase = index / VIDEO_FPS
            centre_x, centre_y = width * (0.5 + 0.35 * np.sin(phase)), height * (0.5 + 0.3 * np.cos(0.7 * phase))
            disc = (xx - centre_x) ** 2 + (yy - centre_y) ** 2 < (height / 6) ** 2
            image = np.empty((height, width, 3), np.uint8)
            image[...] = (40 + index % 50, 90, 140)
            image[disc] = (230, 200, 40)
            container.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
            times = (index * samples_per_frame + np.arange(samples_per_frame)) / AUDIO_RATE
            wave = (0.3 * np.sin(2 * np.pi * (300 + 40 * (times % 5)) * times)).astype(np.float32)
            sound = av.AudioFrame.from_ndarray(np.stack([wave, wave]), format="fltp", layout="stereo")
            sound.sample_rate, sound.pts, sound.time_base = (
                AUDIO_RATE,
                index * samples_per_frame,
                Fraction(1, AUDIO_RATE),
            )
            container.mux(audio.encode(sound))
        container.mux(video.encode(None))
        container.mux(audio.encode(None))
    tmp.rename(path)
    return path


# ---------------------------------------------------------------------------------------------
# child processes: one measurement each, the result as one JSON line on stdout


def run_child(job: dict) -> dict:
    import torch

    from ovavss_cli.device import resolve_device
    from ovavss_cli.inference.predictor import VideoPredictor

    torch.set_num_threads(job["threads"])
    device = resolve_device(job["device"])
    model = load_weights_spec(job["weights"], device)
    predictor = VideoPredictor(model, job["vocab"], device=device, decode_ahead=job.get("decode_ahead", 2))
    if job["kind"] == "overlay":
        return overlay_cost(predictor, Path(job["video"]), Path(job["out"]))
    start = time.perf_counter()
    if job["kind"] == "speed":
        frames = sum(1 for _ in predictor.predict_frames(job["video"]))
    else:
        out = predictor.predict_to_folder(job["video"], Path(job["out"]))
        frames = json.loads((out / "predictions.json").read_text())["summary"]["frames"]
    seconds = time.perf_counter() - start
    result = {"frames": frames, "seconds": seconds, "frames_per_s": frames / seconds, "peak_rss_mib": peak_rss_mib()}
    if device.type == "cuda":
        result["cuda_peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return result


def overlay_cost(predictor, video: Path, out: Path) -> dict:
    """Seconds per video frame to paint and encode overlay.mp4, at the bounded working size and at full size
    (the same painter ``predict`` uses, on the masks ``predict`` wrote)."""
    from ovavss_cli.data.media import probe, write_painted_video
    from ovavss_cli.data.predictions import OVERLAY_MAX_SIDE
    from ovavss_cli.inference.predictor import _MaskOverlay

    folder = predictor.predict_to_folder(video, out, write_video=False)
    count = json.loads((folder / "predictions.json").read_text())["summary"]["frames"]
    info = probe(video)
    result = {"width": info.width, "height": info.height, "max_side": OVERLAY_MAX_SIDE}
    for name, max_side in (("bounded", OVERLAY_MAX_SIDE), ("full", None)):
        painter = _MaskOverlay(folder, predictor.vocab, predictor.fps, count)
        start = time.perf_counter()
        written = write_painted_video(video, out / f"overlay_{name}.mp4", painter, info, max_side=max_side)
        result[f"{name}_s_per_frame"] = (time.perf_counter() - start) / written
        result["video_frames"] = written
    return result


def predict_job(weights: str, folder: Path, out: Path, processes: int, threads: int) -> dict:
    """Wall clock and sampled frames of ``ovavss predict FOLDER --no-video`` as 1 process or under torchrun."""
    launcher = [sys.executable]
    if processes > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
    command = [*launcher, "-m", "ovavss_cli.cli", "predict", str(folder), "--weights", weights, "--vocab"]
    command += ["dog, car, man", "--device", "cpu", "--no-video", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, threads // processes))}
    start = time.perf_counter()
    process = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        return {"skipped": (process.stderr.strip().splitlines() or ["no output"])[-1]}
    report = json.loads((out / "predict-report.json").read_text())
    frames = sum(record["frames"] for record in report["inputs"])
    return {"frames": frames, "seconds": seconds, "frames_per_s": frames / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", action="append", help="weights spec to time (repeatable)")
    parser.add_argument("--memory-weights", help="weights for the 1-min vs 10-min memory check (default: the first)")
    parser.add_argument("--speed-seconds", type=int, default=20, help="length of the speed video (default 20)")
    parser.add_argument(
        "--memory-minutes", default="1,10", help='video lengths for the memory check (default 1,10; "" skips it)'
    )
    parser.add_argument("--vocab", default="dog,car,man,siren,guitar", help="comma-separated vocabulary")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2, as CI)")
    parser.add_argument("--job-videos", type=int, default=4, help="videos in the 1 vs 2 process job (default 4)")
    parser.add_argument("--job-seconds", type=int, default=10, help="length of each job video (default 10)")
    parser.add_argument("--overlay-seconds", type=float, default=1.0, help="length of the 4K video (default 1)")
    parser.add_argument("--workdir", type=Path, help="where generated videos and outputs go")
    args = parse_or_run_child(parser, run_child)
    if args is None:
        return

    import torch

    from ovavss_cli.hub import DEFAULT_WEIGHTS

    weights = args.weights or [DEFAULT_WEIGHTS]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ovavss-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    vocab = [name.strip() for name in args.vocab.split(",")]
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    base = {"vocab": vocab, "threads": args.threads}

    speed_video = generate_video(workdir / f"speed_{args.speed_seconds}s.mp4", args.speed_seconds)
    print(f"speed: {speed_video.name} ({SIZE[0]}x{SIZE[1]}, {VIDEO_FPS} fps, sampled at 1 fps)")
    for spec in weights:
        for device in devices:
            for decode_ahead in (2, 0):
                job = {"kind": "speed", "weights": spec, "device": device, "video": str(speed_video)}
                result = measure(__file__, {**base, **job, "decode_ahead": decode_ahead})
                label = f"{spec:<20} {device:<5} {'prefetch' if decode_ahead else 'no prefetch':<11}"
                if "skipped" in result:
                    print(f"  {label} skipped: {result['skipped']}")
                    continue
                cuda = f", CUDA peak {result['cuda_peak_mib']:.0f} MiB" if "cuda_peak_mib" in result else ""
                print(
                    f"  {label} {result['frames_per_s']:.3f} sampled frames/s ({result['frames']} in "
                    f"{result['seconds']:.1f} s), peak RSS {result['peak_rss_mib']:.0f} MiB{cuda}"
                )

    memory_spec = args.memory_weights or weights[0]
    job_folder = workdir / f"job_{args.job_videos}x{args.job_seconds}s"
    job_folder.mkdir(exist_ok=True)
    for index in range(args.job_videos):
        shutil.copyfile(
            generate_video(workdir / f"job_{args.job_seconds}s.mp4", args.job_seconds), job_folder / f"v{index}.mp4"
        )
    print(f"job: ovavss predict over {args.job_videos} x {args.job_seconds}-s videos, {memory_spec}, cpu, --no-video")
    for processes in (1, 2):
        out = workdir / f"job_out_{processes}_{time.time_ns()}"
        result = predict_job(memory_spec, job_folder, out, processes, args.threads)
        label = f"{processes} process{'es' if processes > 1 else '  '} x {max(1, args.threads // processes)} thread(s)"
        if "skipped" in result:
            print(f"  {label}  skipped: {result['skipped']}")
            continue
        print(
            f"  {label}  {result['frames_per_s']:.3f} sampled frames/s ({result['frames']} in "
            f"{result['seconds']:.1f} s wall, start-up included)"
        )

    uhd = generate_video(workdir / f"uhd_{args.overlay_seconds:g}s.mp4", args.overlay_seconds, (3840, 2160))
    job = {**base, "kind": "overlay", "weights": memory_spec, "device": "cpu", "video": str(uhd)}
    result = measure(__file__, {**job, "out": str(workdir / f"overlay_{time.time_ns()}")})
    if "skipped" in result:
        print(f"overlay: skipped: {result['skipped']}")
    else:
        print(
            f"overlay: {result['width']}x{result['height']}, {result['video_frames']} frames: "
            f"{result['bounded_s_per_frame']:.3f} s a frame at <= {result['max_side']} px (what predict writes), "
            f"{result['full_s_per_frame']:.3f} s a frame at full size"
        )

    minutes = [int(m) for m in args.memory_minutes.split(",") if m.strip()]
    print(f"memory: full predict (masks, JSON, overlay.mp4) with {memory_spec} on cpu")
    peaks = {}
    for length in minutes:
        video = generate_video(workdir / f"memory_{length}min.mp4", 60 * length)
        out = workdir / f"out_{length}min_{time.time_ns()}"
        result = measure(
            __file__,
            {**base, "kind": "memory", "weights": memory_spec, "device": "cpu", "video": str(video), "out": str(out)},
        )
        if "skipped" in result:
            print(f"  {length:>3} min  skipped: {result['skipped']}")
            continue
        peaks[length] = result["peak_rss_mib"]
        took = f"{result['frames']} frames, {result['seconds']:.0f} s"
        print(f"  {length:>3} min  peak RSS {result['peak_rss_mib']:.0f} MiB ({took})")
    if len(peaks) >= 2:
        shortest, longest = min(peaks), max(peaks)
        ratio = peaks[longest] / peaks[shortest]
        verdict = "PASS" if ratio <= MEMORY_RATIO_LIMIT else "FAIL"
        print(f"  ratio {longest} min / {shortest} min = {ratio:.3f} (limit {MEMORY_RATIO_LIMIT}): {verdict}")


if __name__ == "__main__":
    main()
