"""``bench/gpu_check.py``'s cheapest part, as its ``--dry-run`` runs it: predict speed of the bundled tiny-demo
model on the CPU, in parity and fast mode, at a window batch of 1 and at the largest that fits."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))  # the benchmarks are scripts, not a package

import gpu_check  # noqa: E402


def test_dry_run_predict_part_measures_both_modes_and_window_batches(tmp_path, capsys):
    plan = gpu_check.DRY_PLAN
    partial = tmp_path / "rows.json"  # what a child stopped by the time budget would still report
    job = {"kind": "predict", "device": "cpu", "threads": 1, "weights": "tiny-demo", "frames": 10,
           "size": [48, 64], "fast_k": plan.fast_k, "max_batch": plan.max_window_batch,
           "partial": str(partial)}  # fmt: skip
    rows = gpu_check.run_child(job)["rows"]
    assert json.loads(partial.read_text()) == rows
    checks = [row["check"] for row in rows]
    assert checks == [
        "parity, window batch 1: sampled frames/s",
        "parity, window batch 2 (largest that fits): sampled frames/s",
        f"fast K={plan.fast_k}, window batch 1: sampled frames/s",
        f"fast K={plan.fast_k}, window batch 2 (largest that fits): sampled frames/s",
    ]
    assert all(row["value"] > 0 and row["ok"] is None and "fp32" in row["note"] for row in rows)
    crops = [int(row["note"].split(" CLIP crops")[0]) for row in rows]
    assert crops[0] == crops[1] and crops[2] == crops[3]  # the window batch changes speed, not the crops
    assert crops[2] <= plan.fast_k * 10 and crops[2] <= crops[0]  # fast mode: at most K queries a frame
    gpu_check.print_table(rows, "dry run")
    assert "largest that fits" in capsys.readouterr().out
