"""OV-AVSS clip latency, parity mode vs the fast mode (``--clip-queries K``), and what the fast mode keeps.

On both golden fixtures captured from the official code (R50 + CLIP ViT-B/16, Swin-B + CLIP
ViT-L/14@336; their reference weights and inputs: one 5-frame clip in which all 500 (frame, query)
crops are valid), for K in ``--ks`` (default 5, 10, 20, then all), one ``predict_clip`` call each (resize,
VGGish, backbone, pixel decoder, decoder, CLIP on the mask crops, top-10, painting) with a warm text
cache, and:

* ``seconds``: that call's wall time; ``CLIP crops``: the (frame, query) crops sent to CLIP;
* ``top-10 kept``: the share of the parity mode's (K = all) top-10 (query, class) pairs that the K run's
  own top-10 holds. A query's class probabilities depend only on its own crops, so this is the share of
  the parity top-10 whose query is among the K best by the learned sounding score.

For R50 the parity top-10 is also compared with the reference's own (recovered from its per-query
scores), and the parity time with the reference's (161 s warm on a 2-core CPU, 194 s cold).
Each fixture runs in a fresh process (build, then the text embeddings of the 70 names, timed on their
own, then the calls); its peak RSS and the machine's load average are printed.

Swin-B's parity call encodes all 500 ViT-L crops, ~3.4 s each on a 2-core CPU (29 min measured, more on a
busy one). ``--budget S`` stops a fixture's process after S seconds: the K rows it finished are kept, and a
missing parity row is extrapolated (seconds = a + b x crops, fitted to the finished rows, at the capture's
500 valid crops) and marked so; the top-10 share then cannot be computed (it needs the parity call).

    python bench/clip_latency.py [--fixtures r50,swinb] [--ks 5,10,20] [--threads 2] [--budget S] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from common import FIXTURES, measure, parse_or_run_child, peak_rss_mib

REFERENCE_R50_SECONDS = {"cold": 194.4, "warm": 161.3}  # the R50 fixture README, one full reference call
TOP = 10


def run_child(job: dict) -> dict:
    """Build, text embeddings, then one call per K; the result so far is rewritten to ``job["partial"]``
    after each step, so a process stopped by the budget keeps what it finished."""
    import torch

    from ovavss_cli.models.reference_fixture import reference_inputs, reference_model, top_pairs
    from ovavss_cli.models.run_options import parse_clip_queries

    os.environ["OVAVSS_CACHE_DIR"] = tempfile.mkdtemp(prefix="ovavss-bench-")  # cold text cache
    torch.set_num_threads(job["threads"])
    fixture = Path(job["fixture"])
    start = time.perf_counter()
    model = reference_model(fixture, job["device"])
    inputs = reference_inputs(fixture)
    result = {"build_s": time.perf_counter() - start, "runs": {}}
    expected = torch.load(fixture / "outputs.pt", weights_only=True)
    result["parity_crops"] = int(expected["clip_valid_flag"].sum())  # every valid (frame, query) of the capture
    if "ovcm_query_scores" in expected:  # the R50 capture holds the reference's per-query scores; Swin-B's not
        result["reference_top"] = sorted(top_pairs(expected["ovcm_valid_query_ids"], expected["ovcm_query_scores"]))

    def synchronize() -> None:
        if model.device.type == "cuda":
            torch.cuda.synchronize()

    def record() -> None:
        result["peak_rss_gib"] = peak_rss_mib() / 1024
        if model.device.type == "cuda":
            result["cuda_peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
        Path(job["partial"]).write_text(json.dumps(result))

    start = time.perf_counter()
    model.open_vocab.text_embeddings(inputs.class_names)  # fills the text cache: the calls below are warm
    synchronize()
    result["text_s"] = time.perf_counter() - start
    record()
    for k in job["ks"]:
        start = time.perf_counter()
        pred = model.predict_clip(
            inputs.frames, inputs.audio, inputs.sample_rate, inputs.class_names, threshold=0.0,
            clip_queries=parse_clip_queries(k),
        )  # fmt: skip
        synchronize()
        result["runs"][k] = {
            "seconds": time.perf_counter() - start,
            "crops": sum(len(w.open_vocab.crop_ids) for w in pred.windows),
            "top": sorted(top_pairs(pred.query_ids, pred.class_probs, TOP)),
        }
        record()
    return result


def extrapolated_parity(runs: dict, crops: int) -> dict | None:
    """A parity row from the finished fast rows: seconds = a + b x crops (least squares; at least two rows)."""
    points = [(run["crops"], run["seconds"]) for run in runs.values()]
    if len({x for x, _ in points}) < 2:
        return None
    mean_x, mean_y = sum(x for x, _ in points) / len(points), sum(y for _, y in points) / len(points)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / sum((x - mean_x) ** 2 for x, _ in points)
    return {"seconds": mean_y + slope * (crops - mean_x), "crops": crops, "top": None, "extrapolated": True}


def fixture_result(job: dict, budget: float | None) -> dict:
    """The child's result; when it was stopped (budget) or failed, what its partial file holds."""
    result = measure(__file__, job, timeout=budget)
    if "skipped" not in result:
        return result
    partial = Path(job["partial"])
    if not partial.is_file():
        return result
    kept = json.loads(partial.read_text())
    kept["stopped"] = result["skipped"]
    if "all" not in kept["runs"] and (parity := extrapolated_parity(kept["runs"], kept["parity_crops"])):
        kept["runs"]["all"] = parity
    return kept


def main() -> None:
    from ovavss_cli.models.reference_fixture import kept_share

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fixtures", default="r50,swinb", help=f"comma-separated: {', '.join(FIXTURES)}")
    parser.add_argument("--ks", default="5,10,20", help="comma-separated K values (parity, K = all, runs last)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2, as CI)")
    parser.add_argument("--budget", type=float, help="seconds per fixture process, then keep what it finished")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parse_or_run_child(parser, run_child)
    if args is None:
        return

    import torch
    from rich.console import Console
    from rich.table import Table

    ks = [k.strip() for k in args.ks.split(",") if k.strip() != "all"] + ["all"]
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    table = Table(title=f"OV-AVSS clip latency vs fast mode (one 5-frame clip, {args.threads} CPU threads)")
    for column in ("fixture", "device", "K", "CLIP crops", "seconds", "vs parity", f"top-{TOP} kept"):
        table.add_column(column, justify="left" if column in ("fixture", "device") else "right")
    results, notes, scratch = {}, [], Path(tempfile.mkdtemp(prefix="ovavss-clip-latency-"))
    for name in args.fixtures.split(","):
        for device in devices:
            job = {"fixture": str(FIXTURES[name]), "device": device, "ks": ks, "threads": args.threads,
                   "partial": str(scratch / f"{name}-{device}.json")}  # fmt: skip
            print(f"{name} on {device}: K = {', '.join(ks)} ...", flush=True)
            load_before = os.getloadavg()[0]
            result = fixture_result(job, args.budget)
            result["load_average"] = [load_before, os.getloadavg()[0]]  # a shared machine slows every figure
            results[f"{name}/{device}"] = result
            if "runs" not in result:
                notes.append(f"{name} {device}: skipped ({result['skipped']})")
                continue
            parity = result["runs"].get("all")
            for k in (k for k in ks if k in result["runs"]):
                run = result["runs"][k]
                seconds = f"{run['seconds']:.1f}" + (" (extrapolated)" if run.get("extrapolated") else "")
                faster = f"{parity['seconds'] / run['seconds']:.1f}x faster" if parity and k != "all" else "-"
                kept = f"{kept_share(run['top'], parity['top']):.0%}" if parity and parity["top"] else "n/a"
                table.add_row(name, device, k, str(run["crops"]), seconds, faster, kept)
            line = (
                f"{name} {device}: build {result['build_s']:.0f} s, text embeddings (70 names, cold) "
                f"{result['text_s']:.0f} s, peak RSS {result['peak_rss_gib']:.2f} GiB, "
                f"1-min load average {result['load_average'][0]:.1f} before / {result['load_average'][1]:.1f} after"
            )
            if "cuda_peak_gib" in result:
                line += f", CUDA peak {result['cuda_peak_gib']:.2f} GiB"
            if "stopped" in result:
                line += f"; stopped ({result['stopped']}): rows not listed were not reached"
            if "reference_top" in result and parity and parity["top"]:
                same = kept_share(parity["top"], result["reference_top"]) == 1.0
                line += f"; parity top-{TOP} {'=' if same else '!='} the reference's"
                if device == "cpu":
                    line += f"; parity {parity['seconds'] / REFERENCE_R50_SECONDS['warm']:.2f}x the reference's 161 s"
            notes.append(line)
    Console(width=None if os.isatty(1) else 160).print(table)
    for line in notes:
        print(line)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
