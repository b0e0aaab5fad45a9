"""``ovavss eval``: score a prediction folder, or run a model over a benchmark's test clips and score what it
predicts, for both benchmarks; the scoring itself is ``metrics``' (which never runs a model).

* **AVSBench-OV** (``metrics.evaluate``): any model's label maps (``predict_clip`` with the 70 AVSS names),
  saved in the ``--pred`` layout by ``dataset_predict`` as they are scored.
* **S4 / MS3** (``metrics.object_eval``): an AVSC model's sounding probabilities of the clip's frames and audio
  (frame k paired with the k-th 0.96-s audio example), at the frame size, resized to the GT's if it differs;
  they are scored as probabilities (as the official code scores sigmoid outputs). With ``--pred`` too, the
  binary masks (p > 0.5, 0/255, GT naming) are also saved in that new folder, the official ``save_mask``'s
  content.

**Under torchrun** (``torchrun --nproc_per_node N -m ovavss_cli.cli eval --weights ...``) the test clips
(S4 / MS3: whole official batches) are cut into N consecutive runs balanced by frames
(``sharding.contiguous_shards``), each rank predicts and tallies its run on its own device, and the
tallies (confusion matrices, per-frame sums: never averages) are gathered and merged in rank order, so
the JSON holds exactly the numbers of one process given the same per-process arithmetic (the same device
kind and CPU threads per process; ``OMP_NUM_THREADS``). Saved predictions go into one folder every rank
writes (a file system they share). Rank 0 shows the job's progress, prints and writes the JSON. The audio
probe runs each of its conditions the same way.

Options that only one benchmark uses are refused on the other with a one-line error, never ignored.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..atomic import refuse_existing_folder, refuse_force_without_output, refuse_overwrite
from ..data.avsbench import AVSSDataset, ClipMeta
from ..data.avsobject import AVSObjectDataset, ObjectClip, load_avsobject
from ..engine.distributed import ProcessInfo, broadcast_object
from ..errors import OvavssError
from ..metrics import object_eval, report
from ..metrics.evaluate import (
    EvalConfig,
    EvalResult,
    EvalTally,
    FrameMetric,
    evaluate_prediction_folder,
    load_test_frames,
    tally_predictions,
)
from .dataset_predict import gt_frame_predictions, label_map_saver
from .sharding import JobProgress, contiguous_shards, gather_results, sharded_processes, shared_output_folder

BENCHMARKS: tuple[str, ...] = ("avsbench-ov", *object_eval.BENCHMARKS)
#: ``--threshold`` of ``eval --weights`` on AVSBench-OV: the minimum score of a painted mask.
DEFAULT_THRESHOLD = 0.3


@dataclass(frozen=True)
class EvalOptions:
    """``ovavss eval``'s options (see cli.py for their help); None = not given on the command line."""

    data: str | Path  # the dataset root
    benchmark: str = "avsbench-ov"
    pred: str | Path | None = None
    weights: str | None = None
    device: str = "auto"
    precision: str = "auto"
    json_out: str | Path | None = None
    force: bool = False
    allow_missing: bool = False
    # avsbench-ov only
    split_file: str | Path | None = None
    class_set: str = "all"
    gt_source: str = "auto"
    filter_gt_to_sounding: bool = True
    threshold: float | None = None
    clip_queries: int | None = None
    # s4 / ms3 only
    batch_size: int | None = None


def _refuse_options_of_the_other_benchmark(options: EvalOptions) -> None:
    """One line naming every option the chosen benchmark does not use (they would be silently ignored)."""
    if options.benchmark not in BENCHMARKS:
        raise OvavssError(f"--benchmark must be one of {', '.join(BENCHMARKS)}, got {options.benchmark!r}")
    if options.benchmark == "avsbench-ov":
        given = {"--batch-size": options.batch_size is not None}
        where = "only for --benchmark s4 / ms3 (clips per official batch; AVSBench-OV scores frame by frame)"
    else:
        given = {
            "--split-file": options.split_file is not None, "--base": options.class_set == "base",
            "--novel": options.class_set == "novel", "--no-filter-gt": not options.filter_gt_to_sounding,
            "--gt-source": options.gt_source != "auto", "--clip-queries": options.clip_queries is not None,
            "--threshold": options.threshold is not None,
        }  # fmt: skip
        where = (
            "only for --benchmark avsbench-ov (S4 / MS3 score an AVSC model's probabilities: J at p > 0.5, F over "
            "the official thresholds)"
        )
    unused = [flag for flag, is_given in given.items() if is_given]
    if unused:
        raise OvavssError(f"{', '.join(unused)}: {where}")
    if options.weights is None and options.pred is not None:
        model_only = {
            "--threshold": options.threshold is not None, "--device": options.device != "auto",
            "--precision": options.precision != "auto", "--clip-queries": options.clip_queries is not None,
        }  # fmt: skip
        given = [flag for flag, is_given in model_only.items() if is_given]
        if given:
            raise OvavssError(f"{', '.join(given)}: only with --weights (a prediction folder is scored as it is)")
    if options.weights is not None and options.allow_missing:
        raise OvavssError("--allow-missing: only with --pred (with --weights the model predicts every test frame)")


def run_eval(options: EvalOptions) -> dict | None:
    """``ovavss eval``: check the options and refuse an existing ``--json`` first, score, write the JSON.

    With ``pred`` alone, that folder of predictions is scored. With ``weights`` (on AVSBench-OV also with
    neither: the default model), the model predicts the test clips and is scored by the same code
    (AVSBench-OV: into ``pred``, default a new ``./ovavss-eval-preds`` folder), sharded under torchrun.
    Returns the results document (``metrics.report.results_payload`` /
    ``metrics.object_eval.results_payload``) on rank 0, None on the other ranks.
    """
    _refuse_options_of_the_other_benchmark(options)
    refuse_force_without_output(options.force, {"--json": options.json_out})
    if options.json_out is not None:
        refuse_overwrite(options.json_out, options.force)
    evaluate = _eval_avsbench_ov if options.benchmark == "avsbench-ov" else _eval_avsbench_object
    with sharded_processes(options.device) as process:
        payload = evaluate(options, process)
        if not process.is_main:
            return None
    if options.json_out is not None:
        report.write_results_json(options.json_out, payload)
    return payload


def _model_run(options: EvalOptions, process: ProcessInfo, load: Callable[[str, torch.device], Any], weights: str):
    """The model ``load(weights, device)`` gives on this rank's device, and its run options (``precision``,
    ``clip_queries``), checked before the (slow) load."""
    from ..models.run_options import check_clip_queries, resolve_precision

    precision = resolve_precision(options.precision, process.device)
    check_clip_queries(options.clip_queries)
    return load(weights, process.device), {"precision": precision, "clip_queries": options.clip_queries}


def _one_process(process: ProcessInfo | None, model) -> ProcessInfo:
    return process if process is not None else ProcessInfo(0, 0, 1, model.device)


def _shard(clips: Sequence, sizes: Sequence[int], process: ProcessInfo) -> list:
    return [clips[index] for index in contiguous_shards(sizes, process.world_size)[process.rank]]


def _merged(parts: Sequence[tuple[Any, Sequence[FrameMetric]]]) -> tuple[Any, list[FrameMetric]]:
    """Every rank's (tally, frame metrics), merged in rank order."""
    tally = type(parts[0][0]).merged([part[0] for part in parts])
    extra = [type(metric).merged([part[1][i] for part in parts]) for i, metric in enumerate(parts[0][1])]
    return tally, extra


# --------------------------------------------------------------------------------------------
# AVSBench-OV


def _eval_avsbench_ov(options: EvalOptions, process: ProcessInfo) -> dict | None:
    config = EvalConfig(options.gt_source, options.filter_gt_to_sounding, options.allow_missing)
    if options.pred is not None and options.weights is None:
        if not process.is_main:  # a folder is scored by one process
            return None
        result = evaluate_prediction_folder(options.data, options.pred, split_file=options.split_file, config=config)
        return report.results_payload(result, options.class_set)
    from ..atomic import unique_folder
    from ..hub import DEFAULT_WEIGHTS
    from ..models.api import load_model

    pred = options.pred
    if pred is None:
        pred = broadcast_object(unique_folder(Path.cwd(), "ovavss-eval-preds") if process.is_main else None)
    refuse_existing_folder(pred)  # before the (slow) model load
    model, run = _model_run(options, process, load_model, options.weights or DEFAULT_WEIGHTS)
    threshold = DEFAULT_THRESHOLD if options.threshold is None else options.threshold
    result = evaluate_model_on_avsbench_ov(
        options.data, model, pred, process=process, split_file=options.split_file, config=config,
        threshold=threshold, **run,
    )  # fmt: skip
    payload = report.results_payload(result, options.class_set)
    payload["weights"] = {"id": model.weights_id, "sha256": model.weights_sha256, "threshold": threshold}
    payload["run"] = run
    payload["predictions"] = str(pred)
    return payload


def tally_model_on_avsbench_ov(
    model,
    dataset: AVSSDataset,
    clips: Sequence[ClipMeta],
    process: ProcessInfo,
    *,
    config: EvalConfig = EvalConfig(),
    threshold: float = DEFAULT_THRESHOLD,
    run: dict | None = None,
    audio_of: Callable[[ClipMeta], tuple[np.ndarray, int]] | None = None,
    save_to: Path | None = None,
    frame_metrics: Callable[[], Sequence[FrameMetric]] = tuple,
    title: str = "eval",
) -> tuple[EvalTally, list[FrameMetric]]:
    """The tally of ``model``'s label maps of ``clips`` (this rank's run of them), merged over the ranks.

    ``audio_of`` replaces each clip's sound; ``save_to``: a folder the maps are written to
    (``dataset_predict.label_map_saver``); ``frame_metrics()`` makes the extra accumulators each rank fills
    (returned merged); ``run``: predict_clip's run options.
    """
    sizes = [len(dataset.label_frames(clip)) for clip in clips]
    shard = _shard(clips, sizes, process)
    on_clip = label_map_saver(save_to) if save_to is not None else None
    with JobProgress(process, f"{title}: frames", sum(sizes), ("frames",)) as progress:

        def tally_shard() -> tuple[EvalTally, Sequence[FrameMetric]]:
            extra = frame_metrics()
            predictions = gt_frame_predictions(
                model, dataset, shard, threshold=threshold, audio_of=audio_of, on_clip=on_clip, run=run
            )
            return tally_predictions(dataset, predictions, config, extra, lambda: progress.advance("frames")), extra

        return _merged(gather_results(tally_shard))


def evaluate_model_on_avsbench_ov(
    root: str | Path,
    model,
    pred_dir: str | Path,
    *,
    process: ProcessInfo | None = None,
    split_file: str | Path | None = None,
    config: EvalConfig = EvalConfig(),
    threshold: float = DEFAULT_THRESHOLD,
    precision: str = "auto",
    clip_queries: int | None = None,
) -> EvalResult:
    """``ovavss eval --weights``: predict the test clips into the new folder ``pred_dir`` (it appears once
    complete) and score them like ``--pred``; this rank's share of them under torchrun (``process``)."""
    process = _one_process(process, model)
    refuse_existing_folder(pred_dir)
    dataset, split, _ = load_test_frames(root, split_file)
    run = {"precision": precision, "clip_queries": clip_queries}
    with shared_output_folder(pred_dir, process) as folder:
        tally, _ = tally_model_on_avsbench_ov(
            model, dataset, split.clips, process, config=config, threshold=threshold, run=run, save_to=folder
        )
    return tally.result(split, config)


# --------------------------------------------------------------------------------------------
# S4 / MS3


def load_object_model(weights: str, device: torch.device):
    """The AVSC model S4 / MS3 scoring runs (an OV-AVSS checkpoint is a one-line error)."""
    from ..models.api import load_model
    from ..models.avsc.model import AVSC

    model = load_model(weights, device=device)
    if not isinstance(model, AVSC):
        raise OvavssError(
            "holds an OV-AVSS model; --weights scoring on S4 / MS3 needs an AVSC model (write the model's "
            "masks as PNGs and pass --pred instead)",
            path=weights,
        )
    return model


def model_probabilities(
    model,
    dataset: AVSObjectDataset,
    clips: Sequence[ObjectClip],
    audio_of: Callable[[ObjectClip], tuple[np.ndarray, int]] | None = None,
    precision: str = "fp32",
) -> Iterator[tuple[ObjectClip, list[torch.Tensor]]]:
    """Per clip, an AVSC model's sounding probabilities of its annotated frames (at the frame size).

    ``audio_of(clip) -> (waveform, rate)`` replaces the clip's own audio (default ``dataset.read_audio``).
    """
    for clip in clips:
        waveform, rate = (audio_of or dataset.read_audio)(clip)
        probs = model.sounding_maps(dataset.read_frames(clip), waveform, rate, precision=precision).probs
        yield clip, [probs[frame] for frame in dataset.label_frames(clip)]


def save_binary_masks(
    predictions: Iterable[tuple[ObjectClip, Sequence[torch.Tensor]]],
    dataset: AVSObjectDataset,
    folder: Path,
) -> Iterator[tuple[ObjectClip, Sequence[torch.Tensor]]]:
    """Pass ``predictions`` through, writing each frame's binary mask (p > 0.5, 0/255) as
    ``folder/<name>/<name>_<k>.png`` (1-based, the GT naming; the caller makes ``folder`` appear once complete)."""
    for clip, probs in predictions:
        for frame, prob in zip(dataset.label_frames(clip), probs, strict=True):
            path = folder / clip.name / f"{clip.name}_{frame + 1}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray((np.asarray(prob) > 0.5).astype(np.uint8) * 255).save(path)
        yield clip, probs


def tally_model_on_avsbench_object(
    model,
    dataset: AVSObjectDataset,
    clips: Sequence[ObjectClip],
    process: ProcessInfo,
    *,
    batch_size: int = object_eval.DEFAULT_BATCH_SIZE,
    precision: str = "fp32",
    audio_of: Callable[[ObjectClip], tuple[np.ndarray, int]] | None = None,
    save_to: Path | None = None,
    frame_metrics: Callable[[], Sequence[FrameMetric]] = tuple,
    title: str = "eval",
) -> tuple[object_eval.ObjectTally, list[FrameMetric]]:
    """The tally of an AVSC ``model``'s probabilities of ``clips`` in official batches of ``batch_size``
    (this rank's run of whole batches), merged over the ranks; the other arguments as
    :func:`tally_model_on_avsbench_ov` (``save_to``: binary masks, :func:`save_binary_masks`)."""
    object_eval.check_batch_size(batch_size)
    batches = [clips[start : start + batch_size] for start in range(0, len(clips), batch_size)]
    sizes = [sum(len(dataset.label_frames(clip)) for clip in batch) for batch in batches]
    shard = [clip for batch in _shard(batches, sizes, process) for clip in batch]
    with JobProgress(process, f"{title}: clips", len(clips)) as progress:

        def tally_shard() -> tuple[object_eval.ObjectTally, Sequence[FrameMetric]]:
            extra = frame_metrics()
            predictions = model_probabilities(model, dataset, shard, audio_of, precision)
            if save_to is not None:
                predictions = save_binary_masks(predictions, dataset, save_to)
            with torch.no_grad():
                return object_eval.tally_clips(dataset, predictions, batch_size, extra, progress.advance), extra

        return _merged(gather_results(tally_shard))


def evaluate_model_on_avsbench_object(
    data: str | Path,
    benchmark: str,
    model,
    *,
    process: ProcessInfo | None = None,
    pred: str | Path | None = None,
    batch_size: int = object_eval.DEFAULT_BATCH_SIZE,
    split: str = "test",
    precision: str = "fp32",
) -> object_eval.ObjectEvalResult:
    """An AVSC ``model``'s scores on the ``split`` clips of the S4 / MS3 tree at ``data`` (this rank's share
    under torchrun: ``process``); ``pred``, if given, is a new folder its binary masks are saved to."""
    process = _one_process(process, model)
    if pred is not None:
        refuse_existing_folder(pred)
    dataset = load_avsobject(data, object_eval.check_benchmark(benchmark))
    clips = object_eval.evaluation_clips(dataset, split)
    with shared_output_folder(pred, process) if pred is not None else contextlib.nullcontext() as folder:
        tally, _ = tally_model_on_avsbench_object(
            model, dataset, clips, process, batch_size=batch_size, precision=precision, save_to=folder
        )
    scores, resolution, resized = tally.result(dataset)
    source = {"weights": model.weights_id, "sha256": model.weights_sha256, "saved_masks": pred and str(pred)}
    return object_eval.ObjectEvalResult(
        benchmark, split, scores, len(clips), batch_size, resolution, source, resized_predictions=resized
    )


def _eval_avsbench_object(options: EvalOptions, process: ProcessInfo) -> dict | None:
    batch_size = object_eval.DEFAULT_BATCH_SIZE if options.batch_size is None else options.batch_size
    if options.weights is None:
        if options.pred is None:
            raise OvavssError(
                f"--benchmark {options.benchmark}: give --pred (a PNG folder) or --weights (an AVSC model)"
            )
        if not process.is_main:  # a folder is scored by one process
            return None
        result = object_eval.evaluate_object(
            options.data, options.benchmark, pred=options.pred, batch_size=batch_size,
            allow_missing=options.allow_missing,
        )  # fmt: skip
        return object_eval.results_payload(result)
    model, run = _model_run(options, process, load_object_model, options.weights)
    result = evaluate_model_on_avsbench_object(
        options.data, options.benchmark, model, process=process, pred=options.pred, batch_size=batch_size,
        precision=run["precision"],
    )  # fmt: skip
    return object_eval.results_payload(result)
