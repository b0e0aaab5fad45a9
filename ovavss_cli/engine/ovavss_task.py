"""The OV-AVSS training task: AVSBench-semantic clips -> class-agnostic sounding-object targets -> set loss.

What a training sample is (ovavss-spec.md §1.2, §7; the reference's ``AVSBenchDatasetMapper``):

* **Frames.** T = 5 frames per sample (the decoder's window). v1s / v1m clips have 5: all are used. v2 clips
  have 10: a random sorted 5-subset, drawn as the reference does (a reference frame, here among the annotated
  ones, plus 4 others). The audio embedding of frame k is VGGish example k of the clip's audio (the frame's
  number, not its position in the subset); the decoder's temporal audio position is the position 0..4.
* **Objects.** One instance per sounding class present in the sample's annotated frames: AVSS has semantic
  maps, not the per-object annotations of the reference's (unreleased) YTVIS json, so a class is an object.
  Labels are all 0 ("sounding object"); masks are (N, T, Hpad, Wpad), zero where the class is absent.
* **GT rules** (:class:`~.run_config.TrainRecipe`): pixels of classes not in the clip's ``a_obj`` are background,
  as the evaluation treats them; under the ``ignore-novel`` split rule the pixels of the clip's ignored novel
  classes are neither object nor background (``ClipTarget.ignore``). Clips whose ``a_obj`` names no sounding
  class are dropped, as detectron2's ``FILTER_EMPTY_ANNOTATIONS`` drops videos without annotations; a sample
  that has no object in its frames is still trained on (every query -> "no object").
* **Supervised frames.** A v1s training clip is annotated on frame 0 only: its other frames are masked out of
  matching and losses per sample (``ClipTarget.frame_valid``), so v1s clips batch with any other clip.
* **Augmentation.** One short side and one flip per clip (``augment_clip``), from the clip's own generator, in
  ``collate``; frames are then normalised and padded, and a batch is padded to its largest clip.

The frozen VGGish never runs in the training step: every clip's embeddings are computed once into the
content-addressed :class:`AudioEmbeddingCache` and held in memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..console import make_progress
from ..data.audio import REFERENCE_NUM_EXAMPLES, log_mel_examples
from ..data.avsbench import AVSSDataset, ClipMeta, load_avss
from ..data.classes import CLASS_NAMES
from ..data.labelmap import keep_sounding_classes
from ..data.split import OvSplit, load_split
from ..data.train_clips import AVSSTrainClips, TrainClip
from ..errors import OvavssError
from ..metrics.evaluate import EvalSplit, FramePrediction, score_predictions
from ..metrics.foreground import ForegroundIoU
from ..models.api import model_checkpoint_config
from ..models.convert import CLIP_PREFIX, VGGISH_PREFIX, expected_shapes
from ..models.ovavss.audio_cache import AudioEmbeddingCache
from ..models.ovavss.config import OVAVSSConfig, preset_config, with_openai_clip
from ..models.ovavss.model import OVAVSS
from ..models.ovavss.postprocess import masks_at_frame_size
from ..models.ovavss.predict import ClipPrediction
from ..models.preprocess import normalize_and_pad, shortest_edge_size
from ..paths import cache_root
from .augment import AugmentConfig, augment_clip
from .criterion import build_criterion
from .distributed import main_process_first
from .init_weights import (
    RANDOM_INIT_PRESETS,
    VGGISH_HELP,
    check_fits,
    read_init_state,
    read_vggish_state,
    say,
    summarise_keys,
)
from .matcher import ClipTarget
from .run_config import TrainConfig
from .task import LossOutput

#: A query belongs to the class-agnostic prediction when its "sounding object" probability exceeds this.
SOUNDING_THRESHOLD = 0.5


# ---------------------------------------------------------------------------------------------------- data


@dataclass
class OVAVSSBatch:
    images: Tensor  # (B, T, 3, Hp, Wp) normalised frames, zero-padded after normalisation
    audio: Tensor  # (B, T, A) audio embedding of each sampled frame, or (B, T, 1, 96, 64) log-mel examples
    targets: list[ClipTarget]  # per clip, masks at (Hp, Wp)
    uids: list[str]


def sample_frames(annotated: np.ndarray, window: int, generator: torch.Generator) -> list[int]:
    """Sorted frame indices of one sample: all frames when the clip has ``window``; else a reference frame drawn
    among the annotated ones plus ``window - 1`` others drawn uniformly (for fully annotated clips: a uniformly
    random subset, the reference's distribution). Draws from ``generator`` only when there is a choice."""
    num_frames = annotated.shape[0]
    if num_frames == window:
        return list(range(window))
    candidates = np.flatnonzero(annotated)
    reference = int(candidates[int(torch.randint(len(candidates), (1,), generator=generator))])
    others = [i for i in range(num_frames) if i != reference]
    picked = torch.randperm(len(others), generator=generator)[: window - 1].tolist()
    return sorted([reference, *(others[i] for i in picked)])


@dataclass
class ClipSample:
    """One augmented sample before batching."""

    images: Tensor  # (T, 3, Hp, Wp)
    audio: Tensor  # (T, A)
    target: ClipTarget  # masks (N, T, h, w) at the augmented, unpadded size


def make_sample(
    clip: TrainClip, window: int, size_divisibility: int, augment: AugmentConfig, generator: torch.Generator
) -> ClipSample:
    """Sample frames, augment, and build the class-agnostic target of one clip (all draws from ``generator``)."""
    chosen = sample_frames(clip.annotated, window, generator)
    if len(chosen) != window:
        raise OvavssError(f"clip {clip.uid} has {clip.frames.shape[0]} frames; training needs at least {window}")
    frame_valid = torch.from_numpy(clip.annotated[chosen])
    frames, (labels,), _ = augment_clip(
        clip.frames[chosen], [torch.from_numpy(clip.labels[chosen])], generator=generator, config=augment
    )
    ignore = None
    if clip.ignore_ids:
        ignore = torch.isin(labels, torch.tensor(clip.ignore_ids, dtype=labels.dtype)) & frame_valid[:, None, None]
    present = labels[frame_valid].unique().tolist()
    object_ids = [i for i in present if i != 0 and i not in clip.ignore_ids]
    masks = torch.stack([labels == i for i in object_ids]) if object_ids else torch.zeros(0, *labels.shape, dtype=bool)
    masks &= frame_valid[None, :, None, None]  # frames without annotation carry no GT
    images, _ = normalize_and_pad(frames, size_divisibility)
    target = ClipTarget(torch.zeros(len(object_ids), dtype=torch.int64), masks, frame_valid, ignore)
    return ClipSample(images, clip.audio[chosen], target)


def _pad_to(x: Tensor, height: int, width: int) -> Tensor:
    """Zero-pad the last two dimensions (bottom / right) to (height, width)."""
    return F.pad(x, (0, width - x.shape[-1], 0, height - x.shape[-2]))


def batch_samples(samples: Sequence[ClipSample], uids: Sequence[str]) -> OVAVSSBatch:
    """Pad every sample to the largest padded size of the batch (as detectron2's ImageList) and stack."""
    height = max(sample.images.shape[-2] for sample in samples)
    width = max(sample.images.shape[-1] for sample in samples)
    targets = []
    for sample in samples:
        target = sample.target
        ignore = None if target.ignore is None else _pad_to(target.ignore, height, width)
        targets.append(ClipTarget(target.labels, _pad_to(target.masks, height, width), target.frame_valid, ignore))
    images = torch.stack([_pad_to(sample.images, height, width) for sample in samples])
    return OVAVSSBatch(images, torch.stack([sample.audio for sample in samples]), targets, list(uids))


def target_to(target: ClipTarget, device: torch.device) -> ClipTarget:
    ignore = None if target.ignore is None else target.ignore.to(device, non_blocking=True)
    return ClipTarget(
        target.labels.to(device), target.masks.to(device, non_blocking=True), target.frame_valid.to(device), ignore
    )


# ---------------------------------------------------------------------------------------------------- evaluation


def sounding_masks(prediction: ClipPrediction, config: OVAVSSConfig, frame_size: tuple[int, int]) -> Tensor:
    """(T, H, W) bool: the union of the masks of the queries whose "sounding object" probability is above
    :data:`SOUNDING_THRESHOLD`, at the original frame size (the class-agnostic prediction, no CLIP involved)."""
    image_size = shortest_edge_size(*frame_size, config.min_size_test, config.max_size_test)
    divisor = config.size_divisibility
    padded_size = tuple(-(-side // divisor) * divisor for side in image_size)
    union = []
    for logits, masks, window in zip(prediction.pred_logits, prediction.pred_masks, prediction.windows, strict=True):
        keep = logits.float().softmax(-1)[:, 0] > SOUNDING_THRESHOLD  # (Q,)
        kept = masks[keep, : window.num_frames]  # (K, real, h, w)
        if kept.shape[0] == 0:
            union.append(torch.zeros(window.num_frames, *frame_size, dtype=torch.bool))
        else:
            union.append(masks_at_frame_size(kept, padded_size, image_size, frame_size).any(0).cpu())
    return torch.cat(union)


def predict_clips(model: OVAVSS, dataset: AVSSDataset, clips: Sequence[ClipMeta]) -> Iterator[ClipPrediction]:
    """The model's predictions for whole clips (all frames, the clip's audio), naming with the 70 AVSS classes."""
    for clip in clips:
        waveform, rate = dataset.read_audio(clip)
        yield model.predict_clip(dataset.read_frames(clip), waveform, rate, CLASS_NAMES)


def evaluate_clips(model: OVAVSS, dataset: AVSSDataset, clips: Sequence[ClipMeta], split: OvSplit) -> dict[str, float]:
    """The ``eval`` metrics (GZSL mIoU all / base / novel / harmonic, AVSS F) and the class-agnostic IoU
    (:mod:`~ovavss_cli.metrics.foreground`) of ``model`` on ``clips``."""
    frame_predictions: list[FramePrediction] = []
    foreground = ForegroundIoU()
    was_training = model.training
    model.eval()
    with make_progress(transient=True) as progress:
        task = progress.add_task("validating", total=len(clips))
        for clip, prediction in zip(clips, predict_clips(model, dataset, clips), strict=True):
            frames = dataset.label_frames(clip)
            masks = sounding_masks(prediction, model.config, tuple(prediction.label_maps.shape[1:]))
            gt = [keep_sounding_classes(dataset.read_labels(clip, f).ids, clip.sounding_ids) > 0 for f in frames]
            foreground.update(masks[frames], np.stack(gt))
            frame_predictions += [FramePrediction(clip, f, prediction.label_maps[f].numpy()) for f in frames]
            progress.advance(task)
    model.train(was_training)
    eval_split = EvalSplit(clips=list(clips), base_ids=split.base_ids, novel_ids=split.novel_ids)
    scores = score_predictions(dataset, frame_predictions, split=eval_split, total=len(frame_predictions)).scores
    return {
        "fg_iou": foreground.iou,
        "fg_mean_frame_iou": foreground.mean_frame_iou,
        "miou": scores.gzsl.miou,
        "miou_base": scores.gzsl.miou_base,
        "miou_novel": scores.gzsl.miou_novel,
        "miou_harmonic": scores.gzsl.miou_harmonic,
        "fscore": scores.avss.fscore,
    }


# ---------------------------------------------------------------------------------------------------- the task


class OVAVSSTask:
    """``TrainTask`` for OV-AVSS (see :mod:`ovavss_cli.engine.task`)."""

    name = "ovavss"

    def __init__(self, config: TrainConfig):
        if config.task_options:
            raise OvavssError(f"--task-option: OV-AVSS takes none (got {', '.join(sorted(config.task_options))})")
        if config.split is None:
            raise OvavssError("--split is required: the AVSBench-OV split file ('ovavss make-split ROOT' writes one)")
        self.config = config
        self.recipe = config.recipe
        self.model_config = preset_config(config.preset)
        self.dataset = load_avss(config.data)
        self.split = load_split(config.split)
        self.train_clips = self._clips("train")
        self.val_clips = self._clips("val")
        if config.val_clips:
            self.val_clips = self.val_clips[: config.val_clips]
        dropped = 0
        if not self.recipe.keep_empty_clips:
            kept = [clip for clip in self.train_clips if set(clip.sounding_ids) - set(self.split.ignored(clip.uid))]
            dropped, self.train_clips = len(self.train_clips) - len(kept), kept
        if not self.train_clips:
            raise OvavssError("no training clip with a sounding object in splits.train", path=config.split)
        self.dropped_empty = dropped
        self.criterion = build_criterion(self.recipe.criterion)
        self.model: OVAVSS | None = None

    def _clips(self, split_name: str) -> list[ClipMeta]:
        known = {clip.uid: clip for clip in self.dataset.clips}
        uids = self.split.uids(split_name)
        missing = [uid for uid in uids if uid not in known]
        if missing:
            raise OvavssError(
                f"{len(missing)} {split_name} clips are not in {self.dataset.root / 'metadata.csv'}, "
                f"e.g. {missing[0]!r} (a split made for another dataset?)",
                path=self.config.split,
            )
        return [known[uid] for uid in uids]

    # -------------------------------------------------------------------------------------------- model

    def build_model(self) -> OVAVSS:
        """The preset's model with ``--init`` and ``--vggish`` applied; reports what was loaded and left as is.

        Files are checked against the model's shapes before the model (and CLIP with it) is built.
        """
        config = self.model_config
        sources: list[tuple[Path, dict[str, Tensor]]] = []
        if self.config.init is not None:
            path = Path(self.config.init)
            sources.append((path, read_init_state(path, config.name, self.config.run_dir, self.config.init_mode)))
        if self.config.vggish is not None:
            path = Path(self.config.vggish)
            sources.append((path, read_vggish_state(path)))
        loaded = {key: value for _, state in sources for key, value in state.items()}
        pretrained = config.name not in RANDOM_INIT_PRESETS
        if pretrained and not any(key.startswith(VGGISH_PREFIX) for key in loaded):
            raise OvavssError(f"{config.name} trains with the released VGGish frozen: {VGGISH_HELP}")
        shapes = expected_shapes(config)
        for path, state in sources:
            check_fits(shapes, state, path)
        if pretrained and not any(key.startswith(CLIP_PREFIX) for key in loaded):
            config = with_openai_clip(config)  # CLIP is not trained: OpenAI's weights, as the reference
        try:
            model = OVAVSS(config)
        except OvavssError as error:
            raise OvavssError(
                f"{error}; download the OpenAI CLIP once with network access (it lands in the Hugging Face cache)"
            ) from None
        model.load_state_dict(loaded, strict=False)
        fetched = model.fetched_state_prefixes()
        left = [key for key in model.state_dict() if key not in loaded and not (fetched and key.startswith(fetched))]
        say(f"weights loaded: {summarise_keys(list(loaded))}")
        say(f"weights at initialisation: {summarise_keys(left)}")
        self.model = model
        return model

    def export(self, model: OVAVSS) -> tuple[dict[str, Tensor], dict]:
        """A ``kind="model"`` state (CLIP left out when its config fetches OpenAI's weights) and its config."""
        fetched = model.fetched_state_prefixes()
        state = {k: v for k, v in model.state_dict().items() if not (fetched and k.startswith(fetched))}
        return state, model_checkpoint_config(model.config)

    # -------------------------------------------------------------------------------------------- data

    def train_dataset(self) -> AVSSTrainClips:
        """The training clips with their audio embeddings (computed once into the on-disk cache by rank 0)."""
        if self.model is None:
            raise RuntimeError("build_model() must come before train_dataset(): the audio cache needs VGGish")
        pad_to = max(REFERENCE_NUM_EXAMPLES, *(self.dataset.num_frames(clip) for clip in self.train_clips))
        if self.model.config.freeze_audio_encoder:
            cache = AudioEmbeddingCache(cache_root() / "audio-embeddings", self.model.audio_encoder, pad_to=pad_to)
            paths = [self.dataset.audio_path(clip) for clip in self.train_clips]
            with main_process_first() as is_main:
                if is_main:
                    cache.precompute(paths)
            audio = [cache.embed(path) for path in paths]
        else:  # the audio encoder trains: keep the log-mel examples, the model embeds them in each step
            audio = [log_mel_examples(*self.dataset.read_audio(clip), pad_to=pad_to) for clip in self.train_clips]
        if self.dropped_empty:
            say(f"{self.dropped_empty} training clips without a sounding object left out")
        return AVSSTrainClips(self.dataset, self.train_clips, audio, self.split, self.recipe.filter_gt_to_sounding)

    def collate(self, items: Sequence[TrainClip], generators: Sequence[torch.Generator]) -> OVAVSSBatch:
        window, divisor = self.model_config.window_size, self.model_config.size_divisibility
        samples = [
            make_sample(item, window, divisor, self.recipe.augment, generator)
            for item, generator in zip(items, generators, strict=True)
        ]
        return batch_samples(samples, [item.uid for item in items])

    # -------------------------------------------------------------------------------------------- step

    def loss(self, model: nn.Module, batch: OVAVSSBatch, generators: Sequence[torch.Generator]) -> LossOutput:
        device = next(model.parameters()).device
        outputs = model(batch.images.to(device, non_blocking=True), batch.audio.to(device, non_blocking=True))
        targets = [target_to(target, device) for target in batch.targets]
        result = self.criterion(outputs, targets, list(generators))
        # The final output's terms (the aux outputs' are in the total): a few numbers per step for the log.
        terms = {name: result.terms[name].item() for name in ("loss_ce", "loss_mask", "loss_dice")}
        return LossOutput(result.total, terms)

    def validate(self, model: OVAVSS) -> dict[str, float]:
        if not self.val_clips:
            return {}
        return evaluate_clips(model, self.dataset, self.val_clips, self.split)
