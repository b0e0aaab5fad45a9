"""``ovavss eval``: score a prediction folder, or run a model over a benchmark's test clips and score what it
predicts, for both benchmarks; the scoring itself is ``metrics``' (which never runs a model).

* **AVSBench-OV** (``metrics.evaluate``): any model's label maps (``predict_clip`` with the 70 AVSS names),
  saved in the ``--pred`` layout by ``dataset_predict`` as they are scored.
* **S4 / MS3** (``metrics.object_eval``): an AVSC model's sounding probabilities of the clip's frames and audio
  (frame k paired with the k-th 0.96-s audio example), at the frame size, resized to the GT's if it differs;
  they are scored as probabilities (as the official code scores sigmoid outputs). With ``--pred`` too, the
  binary masks (p > 0.5, 0/255, GT naming) are also saved in that new folder, the official ``save_mask``'s
  content.

Options that only one benchmark uses are refused on the other with a one-line error, never ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..atomic import atomic_dir, refuse_existing_folder, refuse_overwrite
from ..data.avsobject import AVSObjectDataset, ObjectClip, load_avsobject
from ..errors import OvavssError
from ..metrics import object_eval, report
from ..metrics.evaluate import EvalConfig, EvalResult, evaluate_prediction_folder, load_test_frames, score_predictions
from .dataset_predict import predict_clips

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
    if options.threshold is not None and options.weights is None and options.pred is not None:
        raise OvavssError("--threshold: only with --weights (a prediction folder is scored as it is)")


def run_eval(options: EvalOptions) -> dict:
    """``ovavss eval``: check the options and refuse an existing ``--json`` first, score, write the JSON.

    With ``pred`` alone, that folder of predictions is scored. With ``weights`` (on AVSBench-OV also with
    neither: the default model), the model predicts the test clips and is scored by the same code
    (AVSBench-OV: into ``pred``, default a new ``./ovavss-eval-preds`` folder). Returns the results document
    (``metrics.report.results_payload`` / ``metrics.object_eval.results_payload``).
    """
    _refuse_options_of_the_other_benchmark(options)
    if options.json_out is not None:
        refuse_overwrite(options.json_out, options.force)
    if options.benchmark == "avsbench-ov":
        payload = _eval_avsbench_ov(options)
    else:
        payload = _eval_avsbench_object(options)
    if options.json_out is not None:
        report.write_results_json(options.json_out, payload)
    return payload


def _model_run(options: EvalOptions, load: Callable[[str, torch.device], object], weights: str):
    """The model ``load(weights, device)`` gives and its run options (``precision``, ``clip_queries``),
    checked before the (slow) load."""
    from ..device import resolve_device
    from ..models.run_options import check_clip_queries, resolve_precision

    device = resolve_device(options.device)
    precision = resolve_precision(options.precision, device)
    check_clip_queries(options.clip_queries)
    return load(weights, device), {"precision": precision, "clip_queries": options.clip_queries}


# --------------------------------------------------------------------------------------------
# AVSBench-OV


def _eval_avsbench_ov(options: EvalOptions) -> dict:
    config = EvalConfig(options.gt_source, options.filter_gt_to_sounding, options.allow_missing)
    if options.pred is not None and options.weights is None:
        result = evaluate_prediction_folder(options.data, options.pred, split_file=options.split_file, config=config)
        return report.results_payload(result, options.class_set)
    from .. import load_model
    from ..hub import DEFAULT_WEIGHTS
    from .outputs import unique_folder

    pred = Path(options.pred) if options.pred is not None else unique_folder(Path.cwd(), "ovavss-eval-preds")
    refuse_existing_folder(pred)  # before the (slow) model load
    model, run = _model_run(options, load_model, options.weights or DEFAULT_WEIGHTS)
    threshold = DEFAULT_THRESHOLD if options.threshold is None else options.threshold
    result = evaluate_model_on_avsbench_ov(
        options.data, model, pred, split_file=options.split_file, config=config, threshold=threshold, **run
    )
    payload = report.results_payload(result, options.class_set)
    payload["weights"] = {"id": model.weights_id, "sha256": model.weights_sha256, "threshold": threshold}
    payload["run"] = run
    payload["predictions"] = str(pred)
    return payload


def evaluate_model_on_avsbench_ov(
    root: str | Path,
    model,
    pred_dir: str | Path,
    *,
    split_file: str | Path | None = None,
    config: EvalConfig = EvalConfig(),
    threshold: float = DEFAULT_THRESHOLD,
    precision: str = "auto",
    clip_queries: int | None = None,
) -> EvalResult:
    """``ovavss eval --weights``: predict the test clips into ``pred_dir`` and score them like ``--pred``."""
    dataset, split, frames = load_test_frames(root, split_file)
    predictions = predict_clips(
        model, dataset, split.clips, pred_dir, threshold=threshold, precision=precision, clip_queries=clip_queries
    )
    return score_predictions(dataset, predictions, total=len(frames), config=config, split=split)


# --------------------------------------------------------------------------------------------
# S4 / MS3


def load_object_model(weights: str, device: torch.device):
    """The AVSC model S4 / MS3 scoring runs (an OV-AVSS checkpoint is a one-line error)."""
    from .. import load_model
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
    pred_dir: Path,
) -> Iterator[tuple[ObjectClip, Sequence[torch.Tensor]]]:
    """Pass ``predictions`` through, writing each frame's binary mask (p > 0.5, 0/255) as
    ``pred_dir/<name>/<name>_<k>.png`` (1-based, the GT naming); the folder appears once complete."""
    with atomic_dir(pred_dir) as tmp:
        for clip, probs in predictions:
            for frame, prob in zip(dataset.label_frames(clip), probs, strict=True):
                path = tmp / clip.name / f"{clip.name}_{frame + 1}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray((np.asarray(prob) > 0.5).astype(np.uint8) * 255).save(path)
            yield clip, probs


def evaluate_model_on_avsbench_object(
    data: str | Path,
    benchmark: str,
    model,
    *,
    pred: str | Path | None = None,
    batch_size: int = object_eval.DEFAULT_BATCH_SIZE,
    split: str = "test",
    precision: str = "fp32",
) -> object_eval.ObjectEvalResult:
    """An AVSC ``model``'s scores on the ``split`` clips of the S4 / MS3 tree at ``data``; ``pred``, if given,
    is a new folder its binary masks are saved to."""
    if pred is not None:
        refuse_existing_folder(pred)
    dataset = load_avsobject(data, object_eval.check_benchmark(benchmark))
    clips = object_eval.evaluation_clips(dataset, split)
    predictions = model_probabilities(model, dataset, clips, precision=precision)
    if pred is not None:
        predictions = save_binary_masks(predictions, dataset, Path(pred))
    with torch.no_grad():
        scores, resolution, resized = object_eval.score_clips(dataset, predictions, batch_size, len(clips))
    source = {"weights": model.weights_id, "sha256": model.weights_sha256, "saved_masks": pred and str(pred)}
    return object_eval.ObjectEvalResult(
        benchmark, split, scores, len(clips), batch_size, resolution, source, resized_predictions=resized
    )


def _eval_avsbench_object(options: EvalOptions) -> dict:
    batch_size = object_eval.DEFAULT_BATCH_SIZE if options.batch_size is None else options.batch_size
    if options.weights is None:
        if options.pred is None:
            raise OvavssError(
                f"--benchmark {options.benchmark}: give --pred (a PNG folder) or --weights (an AVSC model)"
            )
        result = object_eval.evaluate_object(
            options.data, options.benchmark, pred=options.pred, batch_size=batch_size,
            allow_missing=options.allow_missing,
        )  # fmt: skip
        return object_eval.results_payload(result)
    model, run = _model_run(options, load_object_model, options.weights)
    result = evaluate_model_on_avsbench_object(
        options.data, options.benchmark, model, pred=options.pred, batch_size=batch_size, precision=run["precision"]
    )
    return object_eval.results_payload(result)
