"""OV-AVSS clip latency and peak memory, parity mode vs fast mode (issue: speed and memory).

One 5-frame clip through ``predict_clip`` (resize, VGGish, backbone, pixel decoder, decoder, CLIP on
the mask crops, painting), for the R50 preset by default, on CPU (and CUDA when present):

* ``parity``: the reference's path, every non-empty (frame, query) crop goes to CLIP;
* ``fast``:   only the K best queries by the learned sounding score go to CLIP (``--fast-k``, 10).

With the golden fixture beside the repository (``../shared/fixtures/ovavss-reference``), the model
gets the fixture's reference weights and inputs, so the work matches the reference's own timing
(all 500 crops valid; 224x320 frames resized to 360x514). Without it, random weights and frames.
Each mode runs in a fresh process: a cold call (empty text-embedding cache) then ``--repeats`` warm
calls; peak RSS is that process's. Reference on a 2-core CPU: 194 s cold, 161 s warm, 8.5 GiB peak.
Targets: parity <= 0.75x the reference's time and <= 3 GiB; fast mode (K = 10) >= 10x faster.

    python bench/clip_latency.py [--preset ovavss-r50] [--modes parity,fast] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from common import REFERENCE_FIXTURE, REPO, measure, parse_or_run_child, peak_rss_mib

REFERENCE_SECONDS = {"cold": 194.4, "warm": 161.3}
REFERENCE_PEAK_GIB = 8.53


def build(job: dict):
    """The model and one clip: the fixture's weights and inputs when present, else random ones."""
    import torch

    from ovavss_cli.device import resolve_device
    from ovavss_cli.models.api import create_model
    from ovavss_cli.models.keymap import map_reference_key

    torch.manual_seed(0)
    model = create_model(job["preset"], device="cpu")
    fixture = Path(job["fixture"])
    if job["preset"] == "ovavss-r50" and (fixture / "outputs.pt").is_file():
        sys.path.insert(0, str(REPO / "tests"))
        from reference_weights import reference_state_dict

        state = {map_reference_key(k): v for k, v in reference_state_dict(fixture).items()}
        model.load_state_dict({k: v for k, v in state.items() if k is not None})  # None: dropped constants
        inputs = torch.load(fixture / "inputs.pt", weights_only=True)
        frames = inputs["frames_rgb_uint8"].permute(0, 2, 3, 1).contiguous()
        audio, rate, vocab = inputs["audio_int16"].double() / 32768.0, int(inputs["sample_rate"]), inputs["class_names"]
        source = "fixture"
    else:
        from ovavss_cli.data.classes import CLASS_NAMES

        frames = torch.randint(0, 256, (5, 224, 320, 3), dtype=torch.uint8)
        audio, rate, vocab, source = torch.randn(80000).clamp(-1, 1) * 0.3, 16000, list(CLASS_NAMES), "random"
    return model.to(resolve_device(job["device"])).eval(), frames, audio, rate, list(vocab), source


def run_child(job: dict) -> dict:
    import os

    import torch

    os.environ["OVAVSS_CACHE_DIR"] = tempfile.mkdtemp(prefix="ovavss-bench-")  # cold text cache
    torch.set_num_threads(job["threads"])
    model, frames, audio, rate, vocab, source = build(job)
    timings = []
    for _ in range(1 + job["repeats"]):
        start = time.perf_counter()
        pred = model.predict_clip(frames, audio, rate, vocab, clip_queries=job["fast_k"] if job["mode"] == "fast" else None)
        if model.device.type == "cuda":
            torch.cuda.synchronize()
        timings.append(time.perf_counter() - start)
    result = {
        "source": source,
        "crops": sum(len(w.open_vocab.crop_ids) for w in pred.windows),
        "cold_s": timings[0],
        "warm_s": min(timings[1:]) if len(timings) > 1 else None,
        "peak_rss_gib": peak_rss_mib() / 1024,
    }
    if model.device.type == "cuda":
        result["cuda_peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="ovavss-r50")
    parser.add_argument("--modes", default="parity,fast", help="comma-separated: parity, fast")
    parser.add_argument("--fast-k", type=int, default=10, help="queries sent to CLIP in fast mode (default 10)")
    parser.add_argument("--repeats", type=int, default=1, help="warm calls after the cold one (default 1)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2, as CI)")
    parser.add_argument("--fixture", default=str(REFERENCE_FIXTURE), help="golden fixture folder")
    args = parse_or_run_child(parser, run_child)
    if args is None:
        return

    import torch

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    reference = f"{REFERENCE_SECONDS['cold']:.0f} s cold / {REFERENCE_SECONDS['warm']:.0f} s warm"
    print(
        f"{args.preset}, one 5-frame clip, {args.threads} CPU threads; reference: {reference}, {REFERENCE_PEAK_GIB} GiB"
    )
    for device in devices:
        for mode in args.modes.split(","):
            job = {"preset": args.preset, "mode": mode, "fast_k": args.fast_k, "repeats": args.repeats,
                   "threads": args.threads, "device": device, "fixture": args.fixture}  # fmt: skip
            result = measure(__file__, job)
            if "skipped" in result:
                print(f"{device:>4} {mode:>6}: skipped ({result['skipped']})")
                continue
            warm = result["warm_s"] or result["cold_s"]
            line = (
                f"{device:>4} {mode:>6}: {result['crops']:>3} CLIP crops, cold {result['cold_s']:.1f} s, "
                f"warm {warm:.1f} s ({warm / REFERENCE_SECONDS['warm']:.2f}x the reference, "
                f"{REFERENCE_SECONDS['warm'] / warm:.1f}x faster), peak RSS {result['peak_rss_gib']:.2f} GiB "
                f"[{result['source']} weights/inputs]"
            )
            if "cuda_peak_gib" in result:
                line += f", CUDA peak {result['cuda_peak_gib']:.2f} GiB"
            print(line)


if __name__ == "__main__":
    main()
