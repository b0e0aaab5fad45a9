"""The one-command GPU check (issue 13, item 6): what must hold the first time ovavss runs on a GPU.

    python bench/gpu_check.py [--json gpu_check.json]      # on a machine with a CUDA GPU, <= 8 min
    python bench/gpu_check.py --dry-run                    # CPU, tiny sizes, gloo: every path but CUDA's

Parts (``--parts``, run in this order, each in its own child process, within what is left of ``--budget``):

* ``fixtures``: both golden fixtures captured from the official code (R50 + CLIP ViT-B/16, Swin-B + CLIP
  ViT-L/14@336; ``reference_fixture.reference_model``) through ``predict_clip`` on the GPU.
  fp32 (TF32 off: strict fp32) against the capture within 1e-4 max abs: decoder logits and masks, the
  captured crops' CLIP logits (all 500 for R50, the 12 captured for Swin-B), per-query class probabilities
  and the top-10 (query, class) pairs (R50; the Swin-B capture has no per-query scores), and the text
  embeddings within 1e-5. fp16 and bf16 (autocast) against fp32 within the fixture's ``PRECISION_BOUNDS``
  (about 4-5x what CPU autocast measured; R50's are asserted by the CPU precision test): masks against the
  capture, class probabilities against the capture's for R50 and against our fp32 run for Swin-B. ``fp32-tf32`` (torch's default: cuDNN convolutions in
  TF32) is reported against the same 1e-4, for information.
* ``torchrun``: ``torchrun --nproc_per_node 1`` of a process that joins an NCCL group, checks an
  all-reduce and trains the tiny preset a few steps (a world of 1: DistributedDataParallel itself is not
  wrapped; ``tests/engine/test_train_ddp.py`` runs two gloo processes).
* ``predict``: sampled frames/s of ``predict_clip`` (``tiny-demo``, and the R50 preset with random weights:
  every crop valid, parity's worst case) in parity and fast mode (``--clip-queries 10``), at a window batch
  of 1 and at the largest that fits (doubling until out of memory or the clip's windows), the default
  precision (``auto``: fp16 on CUDA), on a seeded random 640x360 clip of 80 frames (16 windows).
* ``train``: it/s and peak GPU memory of the R50 preset (random init) at batch 1, 2, 4, 8, with and without
  ``--amp`` (``bench/train_speed.py``'s measurement).

The fixtures part also times the fast mode (fp32, K = 5, 10, 20) and reports the share of the parity
top-10 it keeps (what ``bench/clip_latency.py`` measures on a CPU, where Swin-B's parity call takes ~30 min).

Prints one table (part, check, value, bound, verdict) and writes everything to ``--json``. The exit code is
1 when a check fails. ``--dry-run`` uses the CPU, fast mode on the fixtures (2 queries: 10 crops), the tiny
preset in place of R50 for speed and training, small clips and batches, and gloo.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from common import FIXTURES, PRESET_PREFIX, load_weights_spec, measure, parse_or_run_child

PARTS = ("fixtures", "torchrun", "predict", "train")  # run in this order: the most needed first
FP32_ATOL = 1e-4  # issue 13: segmenter outputs, crop logits within 1e-4 max abs of the capture ...
TEXT_ATOL = 1e-5  # ... text embeddings within 1e-5
GPU_BUDGET_S = 480  # issue 13: the whole check in at most 8 minutes on one GPU
PREDICT_SIZE = (360, 640)  # (H, W) of the speed clip's frames


@dataclass(frozen=True)
class Plan:
    """What one run measures: the GPU plan, or the dry run's tiny CPU one."""

    device: str
    backend: str
    precisions: tuple[str, ...]
    fixture_clip_queries: int | None  # None: parity, every crop to CLIP
    fixture_fast_ks: tuple[int, ...]  # fast-mode runs (fp32) against that run's top-10
    predict_models: tuple[str, ...]
    predict_frames: int
    predict_size: tuple[int, int]
    fast_k: int
    max_window_batch: int
    train_preset: str
    train_batches: tuple[int, ...]
    train_steps: int
    train_warmup: int
    smoke_steps: int
    timeouts: dict  # part (or fixture) -> seconds at most


GPU_PLAN = Plan(
    device="cuda",
    backend="nccl",
    precisions=("fp32", "fp16", "bf16", "fp32-tf32"),
    fixture_clip_queries=None,
    fixture_fast_ks=(5, 10, 20),
    predict_models=("tiny-demo", f"{PRESET_PREFIX}ovavss-r50"),
    predict_frames=80,  # 16 windows of 5
    predict_size=PREDICT_SIZE,
    fast_k=10,
    max_window_batch=16,
    train_preset="r50",
    train_batches=(1, 2, 4, 8),
    train_steps=5,
    train_warmup=2,
    smoke_steps=3,
    timeouts={"r50": 100, "swinb": 150, "predict": 100, "train": 240, "torchrun": 90},
)
DRY_PLAN = Plan(
    device="cpu",
    backend="gloo",
    precisions=("fp32", "fp16", "bf16"),
    fixture_clip_queries=2,
    fixture_fast_ks=(1,),
    predict_models=("tiny-demo", f"{PRESET_PREFIX}ovavss-tiny"),
    predict_frames=10,
    predict_size=(96, 160),
    fast_k=2,
    max_window_batch=2,
    train_preset="tiny",
    train_batches=(1, 2),
    train_steps=2,
    train_warmup=1,
    smoke_steps=2,
    timeouts={"r50": 900, "swinb": 1800, "predict": 600, "train": 900, "torchrun": 600},
)


class Rows(list):
    """A child's report rows, rewritten to ``path`` after each addition: a child stopped by the time budget
    still reports what it finished."""

    def __init__(self, path: str | Path):
        super().__init__()
        self.path = Path(path)

    def append(self, row: dict) -> None:
        super().append(row)
        self.path.write_text(json.dumps(list(self)))

    def __iadd__(self, rows):
        for row in rows:
            self.append(row)
        return self


def check(part: str, name: str, value, bound, ok: bool | None, note: str = "") -> dict:
    """One row of the report; ``ok`` None: information, no verdict."""
    return {"part": part, "check": name, "value": value, "bound": bound, "ok": ok, "note": note}


# ---------------------------------------------------------------------------------------------------------
# fixtures


def strict_fp32(enabled: bool) -> None:
    """TF32 off (strict fp32, the parity setting) or torch's defaults (matmul fp32, cuDNN TF32)."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = not enabled


def max_abs(ours, theirs) -> float:
    return (ours.detach().double().cpu() - theirs.detach().double().cpu()).abs().max().item()


def fp32_checks(name: str, label: str, model, pred, inputs, expected) -> list[dict]:
    """A run against the capture, within the fp32 bounds (``label``: which run, e.g. fp32)."""
    import torch

    from ovavss_cli.models.reference_fixture import top_pairs

    part = f"{name} {label}"

    def bounded(what: str, value: float, bound: float, note: str = "") -> dict:
        return check(part, what, value, bound, value <= bound, note)

    rows = [
        bounded("pred_logits max |diff|", max_abs(pred.pred_logits, expected["pred_logits"]), FP32_ATOL),
        bounded("pred_masks max |diff|", max_abs(pred.pred_masks, expected["pred_masks"]), FP32_ATOL),
    ]
    # The captured crops' logits: all 500 (R50) or the 12 encoded ones (Swin-B), matched by (frame, query).
    captured_ids = expected.get("clip_subset_ids", expected["clip_valid_ids"])
    named = pred.windows[0].open_vocab
    ours = {tuple(pair): i for i, pair in enumerate(named.crop_ids.cpu().tolist())}
    pairs = [(i, ours[tuple(pair)]) for i, pair in enumerate(captured_ids.tolist()) if tuple(pair) in ours]
    compared = f"{len(pairs)} of {len(captured_ids)} captured crops"
    if pairs:
        theirs_rows, our_rows = (torch.tensor([p[k] for p in pairs], dtype=torch.long) for k in (0, 1))
        crop_diff = max_abs(named.crop_logits.cpu()[our_rows], expected["clip_sim_logits"][theirs_rows])
        rows.append(bounded("CLIP crop logits max |diff|", crop_diff, FP32_ATOL, compared))
    else:  # a fast-mode run (the dry run) that reached none of the captured crops
        rows.append(check(part, "CLIP crop logits max |diff|", "not compared", FP32_ATOL, None, compared))
    if "ovcm_query_scores" in expected:  # the R50 capture: per-query class probabilities and its top-10
        reference_ids, scores = expected["ovcm_valid_query_ids"], expected["ovcm_query_scores"]
        index = torch.tensor([int((reference_ids == q).nonzero()) for q in pred.query_ids], dtype=torch.long)
        diff = max_abs(pred.class_probs, scores[index])
        rows.append(bounded("class probabilities max |diff|", diff, FP32_ATOL, f"{len(index)} queries"))
        same = top_pairs(pred.query_ids, pred.class_probs) == top_pairs(reference_ids[index], scores[index])
        rows.append(check(part, "top-10 (query, class) = the reference's", same, True, same,
                          "on the run's queries" if len(index) < len(reference_ids) else ""))  # fmt: skip
    text = model.open_vocab.text_embeddings(inputs.class_names)  # cached by the run: no new encoding
    rows.append(bounded("text embeddings max |diff|", max_abs(text, expected["clip_text_embeddings"]), TEXT_ATOL))
    return rows


def run_fixture(job: dict) -> dict:
    import torch

    from ovavss_cli.models.reference_fixture import (
        PRECISION_BOUNDS,
        kept_share,
        precision_agreement,
        reference_inputs,
        reference_model,
        top_pairs,
        within_precision_bounds,
    )

    name, fixture = job["name"], Path(job["fixture"])
    start = time.perf_counter()
    model = reference_model(fixture, job["device"])
    inputs = reference_inputs(fixture)
    expected = torch.load(fixture / "outputs.pt", weights_only=True)
    rows = Rows(job["partial"])
    rows.append(
        check(name, "build (regenerate the capture's weights)", round(time.perf_counter() - start, 1), None, None)
    )

    def timed_run(precision: str, clip_queries: int | None):
        if model.device.type == "cuda":
            strict_fp32(precision != "fp32-tf32")
        start = time.perf_counter()
        pred = model.predict_clip(
            inputs.frames, inputs.audio, inputs.sample_rate, inputs.class_names, threshold=0.0,
            precision=precision.removesuffix("-tf32"), clip_queries=clip_queries,
        )  # fmt: skip
        if model.device.type == "cuda":
            torch.cuda.synchronize()
        return pred, time.perf_counter() - start, sum(len(w.open_vocab.crop_ids) for w in pred.windows)

    runs, seconds = {}, {}
    for precision in job["precisions"]:
        runs[precision], seconds[precision], crops = timed_run(precision, job["clip_queries"])
        cold = " (first call: text embeddings too, unless on disk)" if len(runs) == 1 else ""
        rows.append(check(name, f"{precision} predict_clip seconds", round(seconds[precision], 2), None, None,
                          f"{crops} CLIP crops{cold}"))  # fmt: skip
    parity_top = top_pairs(runs["fp32"].query_ids, runs["fp32"].class_probs)
    for k in job["fast_ks"]:  # the fast mode's trade-off (bench/clip_latency.py on a CPU)
        pred, took, crops = timed_run("fp32", k)
        share = kept_share(top_pairs(pred.query_ids, pred.class_probs), parity_top)
        rows.append(check(f"{name} fast K={k}", "fp32: share of the parity top-10 kept", share, None, None,
                          f"{crops} CLIP crops, {took:.2f} s vs {seconds['fp32']:.2f} s"))  # fmt: skip
    rows += fp32_checks(name, "fp32", model, runs["fp32"], inputs, expected)
    if "fp32-tf32" in runs:  # information: what torch's defaults give
        for row in fp32_checks(name, "fp32-tf32", model, runs["fp32-tf32"], inputs, expected):
            rows.append({**row, "ok": None, "note": (row["note"] + "; information, no verdict").lstrip("; ")})
    fp32 = runs["fp32"]
    if "ovcm_query_scores" in expected:
        reference_ids, reference_probs, against = (
            expected["ovcm_valid_query_ids"],
            expected["ovcm_query_scores"],
            "capture",
        )
    else:
        reference_ids, reference_probs, against = fp32.query_ids, fp32.class_probs, "our fp32 run"
    for precision in (p for p in job["precisions"] if p in PRECISION_BOUNDS[name]):
        pred = runs[precision]
        agreement = precision_agreement(
            pred.pred_masks, pred.query_ids, pred.class_probs, expected["pred_masks"], reference_ids, reference_probs
        )
        bounds = PRECISION_BOUNDS[name][precision]
        ok = within_precision_bounds(agreement, name, precision)
        rows.append(check(f"{name} {precision}", "vs fp32: mask prob / mask agreement / class prob / argmax",
                          [round(agreement[k], 6) if k != "argmax_equal" else agreement[k] for k in agreement],
                          [bounds["mask_prob"], bounds["mask_agreement"], bounds["class_prob"], True], ok,
                          f"masks vs the capture, class probabilities vs the {against}"))  # fmt: skip
    if model.device.type == "cuda":
        rows.append(check(name, "CUDA peak GiB", round(torch.cuda.max_memory_allocated() / 2**30, 2), None, None))
    return {"rows": rows}


# ---------------------------------------------------------------------------------------------------------
# predict speed


def largest_window_batch(model, frames, audio, rate, vocab, limit: int) -> int:
    """The largest window batch (1, 2, 4, ... up to ``limit``) whose segmenter pass fits in memory."""
    import torch

    window, fits = model.window_size, 1
    batch = 2
    while batch <= limit:
        try:
            model.predict_clip(
                frames[: batch * window], audio, rate, vocab, batch_windows=batch, precision="auto", clip_queries=1
            )
        except torch.OutOfMemoryError:
            break
        finally:
            if model.device.type == "cuda":
                torch.cuda.empty_cache()
        fits, batch = batch, batch * 2
    return fits


def run_predict(job: dict) -> dict:
    import numpy as np
    import torch

    from ovavss_cli.device import resolve_device
    from ovavss_cli.models.run_options import resolve_precision

    torch.set_num_threads(job["threads"])
    device = resolve_device(job["device"])
    model = load_weights_spec(job["weights"], device)
    generator = np.random.default_rng(0)
    height, width = job["size"]
    frames = generator.integers(0, 256, (job["frames"], height, width, 3), dtype=np.uint8)
    rate = 16000
    audio = (0.3 * generator.standard_normal(rate * job["frames"])).clip(-1, 1)
    vocab = ["dog", "car", "man", "siren", "guitar"]
    model.predict_clip(frames[: model.window_size], audio, rate, vocab, precision="auto")  # warm-up: text, kernels
    windows = math.ceil(job["frames"] / model.window_size)
    precision = resolve_precision("auto", device)
    batches = sorted({1, largest_window_batch(model, frames, audio, rate, vocab, min(job["max_batch"], windows))})
    part, rows = f"predict {job['weights']}", Rows(job["partial"])
    for mode, clip_queries in (("parity", None), (f"fast K={job['fast_k']}", job["fast_k"])):
        for batch in batches:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            start = time.perf_counter()
            pred = model.predict_clip(
                frames, audio, rate, vocab, batch_windows=batch, precision="auto", clip_queries=clip_queries
            )
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds = time.perf_counter() - start
            crops = sum(len(w.open_vocab.crop_ids) for w in pred.windows)
            note = f"{crops} CLIP crops, {seconds:.1f} s for {job['frames']} frames, {precision}"
            if device.type == "cuda":
                note += f", CUDA peak {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB"
            largest = " (largest that fits)" if batch == batches[-1] and batch > 1 else ""
            rows.append(check(part, f"{mode}, window batch {batch}{largest}: sampled frames/s",
                              round(job["frames"] / seconds, 3), None, None, note))  # fmt: skip
    return {"rows": rows}


# ---------------------------------------------------------------------------------------------------------
# train speed and the torchrun smoke run


def run_train(job: dict) -> dict:
    import torch
    from train_speed import run_child as train_speed_child

    rows = Rows(job["partial"])
    for batch_size in job["batches"]:
        for amp in (False, True):
            if job["device"].startswith("cuda"):
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            name = f"{job['preset']} batch {batch_size}, amp {'on' if amp else 'off'}: it/s"
            try:
                result = train_speed_child({**job, "batch_size": batch_size, "amp": amp})
            except torch.OutOfMemoryError:
                rows.append(check("train", name, "out of memory", None, None))
                continue
            memory = result.get("cuda_peak_mib", result["peak_rss_mib"])
            where = "CUDA peak" if "cuda_peak_mib" in result else "peak RSS (process so far)"
            rows.append(check("train", name, round(result["it_per_s"], 3), None, None,
                              f"{where} {memory / 1024:.2f} GiB"))  # fmt: skip
    return {"rows": rows}


def run_smoke(job: dict) -> dict:
    """Under ``torchrun --nproc_per_node 1``: join the process group, all-reduce, train a few steps."""
    import torch
    import torch.distributed as dist
    from train_speed import prepare_data

    from ovavss_cli.engine.run_config import TrainConfig
    from ovavss_cli.engine.run_log import LOG_FILE, read_log
    from ovavss_cli.engine.train import run_training

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    device = torch.device("cuda", int(os.environ["LOCAL_RANK"])) if job["backend"] == "nccl" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(job["backend"])
    try:
        value = torch.full((1,), float(rank + 1), device=device)
        dist.all_reduce(value)
        expected = world * (world + 1) / 2
        data, split = prepare_data(Path(job["workdir"]))
        run_dir = Path(tempfile.mkdtemp(prefix="smoke-", dir=job["workdir"])) / "run"
        config = TrainConfig(
            data=str(data), split=str(split), preset="tiny", out=str(run_dir), device=str(device),
            max_steps=job["steps"], checkpoint_every=job["steps"], threads=job["threads"],
        )  # fmt: skip
        run_training(config)
        losses = [record["loss"] for record in read_log(run_dir / LOG_FILE) if "loss" in record]
    finally:
        dist.destroy_process_group()
    part = f"torchrun {job['backend']}"
    finite = len(losses) == job["steps"] and all(math.isfinite(loss) for loss in losses)
    return {"rows": [
        check(part, f"all_reduce over a world of {world}", value.item(), expected, value.item() == expected),
        check(part, "tiny preset: steps trained, losses finite", len(losses), job["steps"], finite,
              "losses " + ", ".join(f"{loss:.3f}" for loss in losses)),
    ]}  # fmt: skip


CHILDREN = {"fixture": run_fixture, "predict": run_predict, "train": run_train, "smoke": run_smoke}


def run_child(job: dict) -> dict:
    return CHILDREN[job["kind"]](job)


# ---------------------------------------------------------------------------------------------------------
# parent


def part_jobs(
    plan: Plan, parts: list[str], fixtures: list[str], workdir: Path, threads: int
) -> list[tuple[str, dict, list[str] | None]]:
    """(timeout key, job, launcher) of every child to run, in order."""
    base = {"device": plan.device, "threads": threads, "workdir": str(workdir)}
    jobs = []  # each child keeps its rows so far in its own "partial" file (numbered below)
    if "fixtures" in parts:
        for name in fixtures:
            job = {**base, "kind": "fixture", "name": name, "fixture": str(FIXTURES[name]),
                   "precisions": list(plan.precisions), "clip_queries": plan.fixture_clip_queries,
                   "fast_ks": list(plan.fixture_fast_ks)}  # fmt: skip
            jobs.append((name, job, None))
    if "torchrun" in parts:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1"]
        jobs.append(
            ("torchrun", {**base, "kind": "smoke", "backend": plan.backend, "steps": plan.smoke_steps}, launcher)
        )
    if "predict" in parts:
        for weights in plan.predict_models:
            job = {**base, "kind": "predict", "weights": weights, "frames": plan.predict_frames,
                   "size": list(plan.predict_size), "fast_k": plan.fast_k,
                   "max_batch": plan.max_window_batch}  # fmt: skip
            jobs.append(("predict", job, None))
    if "train" in parts:
        job = {**base, "kind": "train", "preset": plan.train_preset, "batches": list(plan.train_batches),
               "steps": plan.train_steps, "warmup": plan.train_warmup}  # fmt: skip
        jobs.append(("train", job, None))
    for index, (_, job, _) in enumerate(jobs):
        job["partial"] = str(workdir / f"rows-{index}.json")
    return jobs


def print_table(rows: list[dict], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in ("part", "check", "value", "bound", "verdict", "note"):
        table.add_column(column)
    verdicts = {True: "[green]PASS[/]", False: "[red]FAIL[/]", None: ""}
    for row in rows:
        cells = [row["part"], row["check"], str(row["value"]), "" if row["bound"] is None else str(row["bound"])]
        table.add_row(*cells, verdicts[row["ok"]], row["note"])
    Console(width=None if sys.stdout.isatty() else 200).print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes, gloo: every path but CUDA-only calls")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated: {', '.join(PARTS)}")
    parser.add_argument("--fixtures", default=",".join(FIXTURES), help="the fixtures part's captures (r50, swinb)")
    parser.add_argument("--budget", type=float, help=f"seconds in all (default {GPU_BUDGET_S}; dry run: none)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--json", type=Path, default=Path("gpu_check.json"), help="results (default gpu_check.json)")
    parser.add_argument("--workdir", type=Path, help="generated training data and runs (default: a temporary folder)")
    args = parse_or_run_child(parser, run_child)
    if args is None:
        return

    import torch

    parts = [part.strip() for part in args.parts.split(",")]
    fixtures = [name.strip() for name in args.fixtures.split(",")]
    for option, given, known in (("--parts", parts, PARTS), ("--fixtures", fixtures, tuple(FIXTURES))):
        if unknown := sorted(set(given) - set(known)):
            parser.error(f"{option}: unknown {', '.join(unknown)} (known: {', '.join(known)})")
    if not args.dry_run and not torch.cuda.is_available():
        parser.error("no CUDA device visible: run on a GPU machine, or --dry-run to exercise the check on the CPU")
    plan = DRY_PLAN if args.dry_run else GPU_PLAN
    budget = args.budget or (math.inf if args.dry_run else GPU_BUDGET_S)
    missing = [str(FIXTURES[name]) for name in fixtures if not (FIXTURES[name] / "outputs.pt").is_file()]
    if "fixtures" in parts and missing:
        parser.error(f"golden fixture not found: {missing[0]}")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ovavss-gpu-check-"))
    workdir.mkdir(parents=True, exist_ok=True)
    device = "cpu (dry run)" if args.dry_run else torch.cuda.get_device_name(0)
    started, rows = time.perf_counter(), []
    if {"train", "torchrun"} & set(parts):  # made here, once, so no child's time limit pays for it
        from train_speed import prepare_data

        prepare_data(workdir)
        rows.append(
            check("data", "generated training tree (seconds)", round(time.perf_counter() - started), None, None)
        )
    for key, job, launcher in part_jobs(plan, parts, fixtures, workdir, args.threads):
        left = budget - (time.perf_counter() - started)
        label = job.get("name") or job.get("weights") or job["kind"]
        if left < 10:
            rows.append(check(job["kind"], label, "not run", None, False, "the time budget ran out"))
            continue
        print(f"{job['kind']} {label} (at most {min(left, plan.timeouts[key]):.0f} s) ...", flush=True)
        partial = Path(job["partial"])
        partial.unlink(missing_ok=True)  # a reused --workdir holds an earlier run's rows
        result = measure(__file__, job, timeout=min(left, plan.timeouts[key]), launcher=launcher)
        if "skipped" in result:
            rows += json.loads(partial.read_text()) if partial.is_file() else []
            rows.append(check(job["kind"], label, "failed", None, False, result["skipped"]))
        else:
            rows += result["rows"]
    seconds = time.perf_counter() - started
    title = f"ovavss GPU check on {device}: {seconds:.0f} s, torch {torch.__version__}"
    print_table(rows, title)
    report = {"device": device, "torch": torch.__version__, "seconds": seconds, "plan": asdict(plan), "rows": rows}
    from ovavss_cli.atomic import atomic_write_text

    atomic_write_text(args.json, json.dumps(report, indent=1))
    print(f"written: {args.json}")
    sys.exit(1 if any(row["ok"] is False for row in rows) else 0)


if __name__ == "__main__":
    main()
