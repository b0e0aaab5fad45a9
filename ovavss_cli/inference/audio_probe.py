"""Does the model listen? Score it on a benchmark's test clips with their sound kept, muted, drowned or swapped.

``ovavss probe-audio`` runs a loaded model over the test clips once per audio condition
(:mod:`ovavss_cli.data.audio_conditions`: ``original``, ``silence``, ``noise``, ``misaligned``), the
condition applied to each clip's waveform before the model's audio front end, and scores every run with
the benchmark's own evaluation code (``metrics.evaluate`` for AVSBench-OV, ``metrics.object_eval`` for
S4 / MS3) against the clips' original ground truth, plus two class-agnostic numbers
(``metrics.foreground``):

* ``foreground_iou``: pooled IoU of the union of painted pixels with the sounding pixels of the original GT;
* ``foreground_fraction``: the mean share of pixels painted per frame; under a negative condition
  (silence, noise, misaligned audio) the ground truth is empty, so this is the false-positive rate
  ``fpr`` of AVSBench-Robust (arXiv 2502.00358).

Each metric also gets its relative drop vs ``original``, (original - condition) / original (TeSO, ECCV
2024, reports mIoU and F this way under muted audio and white noise). A model that ignores its audio
scores the same under every condition (drops ~0, fpr ~ its original foreground fraction); a model that
listens loses its masks without sound (mIoU drop ~1, fpr ~0).

Each condition is one run of eval's own model loop (``evaluate.tally_model_on_avsbench_ov`` /
``tally_model_on_avsbench_object``), so under torchrun it is sharded like ``eval --weights`` and gives the
numbers of one process.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from rich.table import Table

from ..atomic import atomic_write_text, refuse_force_without_output, refuse_overwrite
from ..console import console
from ..data.audio_conditions import (
    AUDIO_CONDITIONS,
    NEGATIVE_CONDITIONS,
    NOISE_RMS,
    fit_length,
    misaligned_assignment,
    parse_conditions,
    white_noise,
)
from ..engine.distributed import ProcessInfo
from ..errors import OvavssError
from ..version import __version__
from .sharding import sharded_processes

BENCHMARKS: tuple[str, ...] = ("avsbench-ov", "s4", "ms3")
FORMAT = "ovavss-audio-probe/1"
#: The defaults of probe_audio and of the command: avsbench-ov painted-mask score; s4 / ms3 clips per batch.
DEFAULT_THRESHOLD, DEFAULT_BATCH_SIZE = 0.3, 4
#: The benchmark's own metrics the probe reports (JSON key -> what it is), then the class-agnostic ones.
BENCHMARK_METRICS: dict[str, dict[str, str]] = {
    "avsbench-ov": {
        "miou": "mIoU, all classes (metric A)",
        "miou_base": "mIoU, base classes",
        "miou_novel": "mIoU, novel classes",
        "avss_fscore": "AVSS F-score (metric B)",
    },
    "s4": {"mj": "mJ (official, per batch)", "mf": "mF (official, per batch)"},
    "ms3": {"mj": "mJ (official, per batch)", "mf": "mF (official, per batch)"},
}
FOREGROUND_METRICS: dict[str, str] = {
    "foreground_iou": "class-agnostic IoU with the original GT's sounding pixels (pooled over frames)",
    "foreground_fraction": "mean share of pixels painted per frame",
    "fpr": "false-positive rate = foreground_fraction under a negative condition (GT empty)",
}


@dataclass(frozen=True)
class ConditionResult:
    """One audio condition's scores (fractions in [0, 1], None where undefined) and drops vs ``original``."""

    condition: str
    metrics: dict[str, float | None]
    drops: dict[str, float | None] = field(default_factory=dict)  # (original - this) / original


@dataclass(frozen=True)
class ProbeReport:
    """What ``ovavss probe-audio`` found, and everything needed to reproduce it."""

    benchmark: str
    data: str
    weights: dict  # {"id", "sha256", "architecture"}
    seed: int
    threshold: float | None  # avsbench-ov: minimum score of a painted mask; s4 / ms3: None (p > 0.5)
    clips: int
    frames: int
    conditions: list[ConditionResult]
    misaligned: dict[str, str] | None  # recipient clip -> the clip whose audio it got
    split_file: str | None = None
    batch_size: int | None = None  # s4 / ms3: clips per official batch

    def condition(self, name: str) -> ConditionResult:
        return next(result for result in self.conditions if result.condition == name)

    def to_json(self) -> dict:
        return {
            "format": FORMAT,
            "ovavss_version": __version__,
            **{key: value for key, value in asdict(self).items() if key != "conditions"},
            "noise_rms": NOISE_RMS,
            "metric_keys": {**BENCHMARK_METRICS[self.benchmark], **FOREGROUND_METRICS},
            "conditions": {
                result.condition: {"metrics": result.metrics, "drops": result.drops} for result in self.conditions
            },
        }


# --------------------------------------------------------------------------------------------
# Audio of a clip under a condition


def _number(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


class _ConditionAudio:
    """``audio_of(clip)`` for one condition: the clip's waveform at 16 kHz, replaced as the condition says."""

    def __init__(self, condition: str, read_audio, key_of, clip_by_key: dict, donors: dict[str, str] | None, seed: int):
        self.condition, self.read_audio, self.key_of = condition, read_audio, key_of
        self.clip_by_key, self.donors, self.seed = clip_by_key, donors, seed

    def __call__(self, clip) -> tuple[np.ndarray, int]:
        waveform, rate = self.read_audio(clip)
        if self.condition == "silence":
            return np.zeros_like(waveform), rate
        if self.condition == "noise":
            return white_noise(len(waveform), self.seed, self.key_of(clip)), rate
        if self.condition == "misaligned":
            donor, donor_rate = self.read_audio(self.clip_by_key[self.donors[self.key_of(clip)]])
            if donor_rate != rate:  # both come from load_audio at 16 kHz; guard against a future change
                raise OvavssError(f"donor audio at {donor_rate} Hz, clip audio at {rate} Hz")
            return fit_length(donor, len(waveform)), rate
        return waveform, rate


# --------------------------------------------------------------------------------------------
# One run per condition, scored by the benchmark's evaluation code


def _foreground_metrics(condition: str, iou, fraction) -> dict[str, float | None]:
    return {
        "foreground_iou": _number(iou.iou),
        "foreground_fraction": _number(fraction.mean),
        "fpr": _number(fraction.mean) if condition in NEGATIVE_CONDITIONS else None,
    }


def _probe_avsbench_ov(model, data, conditions, split_file, seed, threshold, progress_label, process):
    from ..metrics.evaluate import EvalConfig, load_test_frames
    from ..metrics.foreground import ForegroundFraction, ForegroundIoU
    from ..metrics.report import results_payload
    from .evaluate import tally_model_on_avsbench_ov

    dataset, split, frames = load_test_frames(data, split_file)
    clip_by_key = {clip.uid: clip for clip in split.clips}
    donors = None
    if "misaligned" in conditions:
        donors = misaligned_assignment({clip.uid: clip.sounding_ids for clip in split.clips}, seed, where=dataset.root)
    results = {}
    for condition in conditions:
        progress_label(condition)
        audio_of = _ConditionAudio(condition, dataset.read_audio, lambda clip: clip.uid, clip_by_key, donors, seed)
        tally, (iou, fraction) = tally_model_on_avsbench_ov(
            model, dataset, split.clips, process, config=EvalConfig(), threshold=threshold, audio_of=audio_of,
            frame_metrics=lambda: (ForegroundIoU(), ForegroundFraction()), title=condition,
        )  # fmt: skip
        payload = results_payload(tally.result(split, EvalConfig()))
        metrics = {key: payload[key] for key in BENCHMARK_METRICS["avsbench-ov"]}
        results[condition] = {**metrics, **_foreground_metrics(condition, iou, fraction)}
    split_name = split.split_file.name if split.split_file else None
    return results, donors, len(split.clips), len(frames), split_name


def _probe_avsbench_object(model, data, benchmark, conditions, seed, batch_size, progress_label, process):
    from ..data.avsobject import load_avsobject
    from ..metrics.foreground import ForegroundFraction, ForegroundIoU
    from ..metrics.object_eval import evaluation_clips
    from .evaluate import tally_model_on_avsbench_object

    dataset = load_avsobject(data, benchmark)
    clips = evaluation_clips(dataset, "test")
    clip_by_key = {clip.name: clip for clip in clips}
    donors = None
    if "misaligned" in conditions:
        # An AVSBench-object clip without class ids (MS3 without an AVSS root) has unknown, not no, classes.
        donors = misaligned_assignment({clip.name: clip.class_ids or None for clip in clips}, seed, where=dataset.root)
    results = {}
    frames = sum(len(dataset.label_frames(clip)) for clip in clips)
    for condition in conditions:
        progress_label(condition)
        audio_of = _ConditionAudio(condition, dataset.read_audio, lambda clip: clip.name, clip_by_key, donors, seed)
        tally, (iou, fraction) = tally_model_on_avsbench_object(
            model, dataset, clips, process, batch_size=batch_size, audio_of=audio_of,
            frame_metrics=lambda: (ForegroundIoU(), ForegroundFraction()), title=condition,
        )  # fmt: skip
        scores, _, _ = tally.result(dataset)
        metrics = {"mj": _number(scores.official_miou), "mf": _number(scores.official_fscore)}
        results[condition] = {**metrics, **_foreground_metrics(condition, iou, fraction)}
    return results, donors, len(clips), frames, None


def relative_drop(original: float | None, value: float | None) -> float | None:
    """(original - value) / original; None when either is undefined or the original is 0."""
    if original is None or value is None or original == 0:
        return None
    return (original - value) / original


def probe_audio(
    model,
    data: str | Path,
    *,
    benchmark: str = "avsbench-ov",
    conditions: Sequence[str] | str = AUDIO_CONDITIONS,
    split_file: str | Path | None = None,
    seed: int = 0,
    threshold: float = DEFAULT_THRESHOLD,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_condition: Callable[[str], None] | None = None,
    process: ProcessInfo | None = None,
) -> ProbeReport:
    """Run ``model`` over the test clips of ``data`` once per audio condition and score every run.

    ``benchmark`` "avsbench-ov" (any model with ``predict_clip``; ``split_file`` as ``eval``) or "s4" /
    "ms3" (AVSC models, ``batch_size`` clips per official batch). ``on_condition(name)`` is called as each
    condition starts (for progress). Drops are computed when ``original`` is among the conditions.
    ``process``: this rank of a torchrun job (each condition sharded as ``eval --weights``; every rank
    returns the whole report).
    """
    conditions = parse_conditions(conditions)
    if benchmark not in BENCHMARKS:
        raise OvavssError(f"--benchmark must be one of {', '.join(BENCHMARKS)}, got {benchmark!r}")
    progress_label = on_condition or (lambda condition: None)
    process = process if process is not None else ProcessInfo(0, 0, 1, model.device)
    if benchmark == "avsbench-ov":
        run = _probe_avsbench_ov(model, data, conditions, split_file, seed, threshold, progress_label, process)
    else:
        if split_file is not None:
            raise OvavssError("--split-file: only for --benchmark avsbench-ov (S4 / MS3 use their metadata's test)")
        run = _probe_avsbench_object(model, data, benchmark, conditions, seed, batch_size, progress_label, process)
    results, donors, clips, frames, split_name = run
    original = results.get("original")
    condition_results = [
        ConditionResult(
            condition,
            metrics,
            {key: relative_drop(original[key], value) for key, value in metrics.items()} if original else {},
        )
        for condition, metrics in results.items()
    ]
    return ProbeReport(
        benchmark=benchmark,
        data=str(data),
        weights={
            "id": model.weights_id,
            "sha256": model.weights_sha256,
            "architecture": getattr(model, "architecture", None),
        },
        seed=seed,
        threshold=threshold if benchmark == "avsbench-ov" else None,
        clips=clips,
        frames=frames,
        conditions=condition_results,
        misaligned=donors,
        split_file=split_name,
        batch_size=batch_size if benchmark != "avsbench-ov" else None,
    )


# --------------------------------------------------------------------------------------------
# Presenting the report


def write_probe_json(report: ProbeReport, path: str | Path) -> None:
    """The report as JSON (keys documented in the README's "Audio-reliance probe"), written atomically."""
    atomic_write_text(path, json.dumps(report.to_json(), indent=2) + "\n")


def write_probe_chart(report: ProbeReport, path: str | Path) -> None:
    """Grouped bars (one group per condition, one bar per metric) as a PNG, written atomically."""
    from ..viz.probe_chart import write_grouped_bars

    names = list(BENCHMARK_METRICS[report.benchmark]) + ["foreground_iou", "foreground_fraction"]
    values = [[result.metrics.get(name) for name in names] for result in report.conditions]
    title = f"audio probe: {report.weights['id']} on {report.benchmark} ({report.clips} test clips)"
    write_grouped_bars(path, [result.condition for result in report.conditions], names, values, title)


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def probe_table(report: ProbeReport) -> Table:
    """Rows = metrics, columns = conditions; each cell the value in % and, off ``original``, its relative drop."""
    table = Table(
        title=f"Audio probe: {report.weights['id']} on {report.benchmark} "
        f"({report.clips} clips, {report.frames} frames)",
        caption="values in %; drop = (original - condition) / original; fpr: GT empty under the negative conditions",
    )
    table.add_column("metric")
    for result in report.conditions:
        table.add_column(result.condition, justify="right")
    for name in [*BENCHMARK_METRICS[report.benchmark], *FOREGROUND_METRICS]:
        cells = []
        for result in report.conditions:
            drop = result.drops.get(name) if result.condition != "original" else None
            cells.append(_percent(result.metrics.get(name)) + ("" if drop is None else f" (drop {100 * drop:.0f}%)"))
        table.add_row(name, *cells)
    return table


def summary_line(report: ProbeReport) -> str:
    """One line per run: foreground IoU with the sound, and the false-positive rates without it."""
    parts = []
    for result in report.conditions:
        key = "fpr" if result.condition in NEGATIVE_CONDITIONS else "foreground_iou"
        parts.append(f"{result.condition} {key} {_percent(result.metrics[key])}")
    return " | ".join(parts) + f"  (%, {report.clips} clips, {report.frames} frames)"


# --------------------------------------------------------------------------------------------
# ovavss probe-audio


def run_probe_audio(
    data: str | Path,
    *,
    weights: str,
    model_name: str | None = None,
    benchmark: str = "avsbench-ov",
    split_file: str | Path | None = None,
    conditions: str = ",".join(AUDIO_CONDITIONS),
    device: str = "auto",
    threshold: float | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    json_out: str | Path | None = None,
    chart_out: str | Path | None = None,
    force: bool = False,
) -> ProbeReport | None:
    """``ovavss probe-audio``: check the options and outputs first, load the model, probe, write, print
    (under torchrun: every rank probes its share, rank 0 writes and prints; None on the others).
    ``threshold`` (avsbench-ov, default 0.3) and ``batch_size`` (s4 / ms3, default 4): None = not given; given
    for the other benchmark, a one-line error."""
    parsed = parse_conditions(conditions)
    if benchmark not in BENCHMARKS:
        raise OvavssError(f"--benchmark must be one of {', '.join(BENCHMARKS)}, got {benchmark!r}")
    if benchmark == "avsbench-ov" and batch_size is not None:
        raise OvavssError("--batch-size: only for --benchmark s4 / ms3 (AVSBench-OV scores frame by frame)")
    if benchmark != "avsbench-ov" and threshold is not None:
        raise OvavssError("--threshold: only for --benchmark avsbench-ov (S4 / MS3 score probabilities at p > 0.5)")
    threshold = DEFAULT_THRESHOLD if threshold is None else threshold
    batch_size = DEFAULT_BATCH_SIZE if batch_size is None else batch_size
    refuse_force_without_output(force, {"--json": json_out, "--chart": chart_out})
    for out in (json_out, chart_out):
        if out is not None:
            refuse_overwrite(out, force)
    from ..models.api import load_model
    from .evaluate import load_object_model

    load = load_model if benchmark == "avsbench-ov" else load_object_model
    with sharded_processes(device) as process:
        model = load(weights, process.device)
        if model_name is not None and model_name != model.architecture:
            raise OvavssError(f"--model {model_name}: the weights hold a {model.architecture} model", path=weights)

        def announce(condition: str) -> None:
            if process.is_main:
                console.print(f"[bold]{condition}[/]: running {model.weights_id} over the test clips")

        report = probe_audio(
            model, data, benchmark=benchmark, conditions=parsed, split_file=split_file, seed=seed,
            threshold=threshold, batch_size=batch_size, on_condition=announce, process=process,
        )  # fmt: skip
        if not process.is_main:
            return None
    if json_out is not None:
        write_probe_json(report, json_out)
    if chart_out is not None:
        write_probe_chart(report, chart_out)
    console.print(probe_table(report))
    return report
