"""Shared helpers of the benchmarks: peak memory and one measurement per child process."""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REFERENCE_FIXTURE = REPO.parent / "shared" / "fixtures" / "ovavss-reference"


def peak_rss_mib() -> float:
    """This process's peak resident set size in MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def measure(script: str | Path, job: dict) -> dict:
    """Run ``script --child JOB`` in a fresh interpreter, so its peak RSS is its own; the child prints
    one JSON object on its last line. ``{"skipped": reason}`` when it fails."""
    process = subprocess.run(
        [sys.executable, str(script), "--child", json.dumps(job)], capture_output=True, text=True, check=False
    )
    lines = process.stdout.strip().splitlines()
    if process.returncode != 0 or not lines:
        reason = (process.stderr.strip().splitlines() or ["no output"])[-1]
        return {"skipped": reason}
    return json.loads(lines[-1])


def parse_or_run_child(parser, run_child) -> object | None:
    """Parse the command line; in a ``--child JOB`` process, run ``run_child(job)``, print its JSON and
    return None (the caller then just returns). Otherwise return the parsed arguments."""
    parser.add_argument("--child", help="internal: run one measurement (JSON job)")
    args = parser.parse_args()
    if args.child is None:
        return args
    print(json.dumps(run_child(json.loads(args.child))))
    return None


def validation_curve(records: list[dict]) -> list[tuple[int, float, dict]]:
    """A training log (``train_log.jsonl`` records) -> (step, mean training loss since the previous
    validation, validation metrics) per validation."""
    points, losses = [], []
    for record in records:
        if "loss" in record:
            losses.append(record["loss"])
        elif "val" in record:
            points.append((record["step"], statistics.fmean(losses) if losses else float("nan"), record["val"]))
            losses = []
    return points
