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

Frame sampling and targets are ``data.train_targets``', batches ``engine.train_batches``', validation
``inference.validation``'s; this module is the task (model, data, loss, export).

The frozen VGGish never runs in the training step: every clip's embeddings are computed once into the
content-addressed :class:`AudioEmbeddingCache` and held in memory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..data.audio import REFERENCE_NUM_EXAMPLES, log_mel_examples
from ..data.avsbench import ClipMeta, load_avss
from ..data.split import load_split
from ..data.train_clips import AVSSTrainClips, TrainClip
from ..errors import OvavssError
from ..inference.validation import evaluate_clips
from ..models.api import model_checkpoint_config
from ..models.convert import CLIP_PREFIX, expected_shapes
from ..models.ovavss.audio_cache import AudioEmbeddingCache
from ..models.ovavss.config import OVAVSSConfig, preset_config, with_openai_clip
from ..models.ovavss.model import OVAVSS
from ..paths import cache_root
from .criterion import build_criterion
from .distributed import main_process_first
from .init_weights import (
    RANDOM_INIT_PRESETS,
    check_fits,
    read_init_state,
    read_vggish_state,
    require_released_vggish,
    say,
    summarise_keys,
)
from .run_config import TrainConfig, task_option_value
from .task import LossOutput
from .train_batches import OVAVSSBatch, ovavss_batch, target_to

#: The ``--task-option`` keys OV-AVSS takes: model-config fields a recipe may set without changing the architecture.
#: ``freeze_audio_encoder``: train with the audio encoder frozen (the reference freezes its pretrained VGGish; a
#: tiny preset trains its encoder unless a pretrained one is given with ``--vggish`` and frozen here).
#: ``window_size``: frames per decoder window (``decoder.num_frames``; the reference's 5), in training and in the
#: saved model's inference; 1 gives every frame its own queries, so what is painted can change frame by frame.
TASK_OPTIONS = ("freeze_audio_encoder", "window_size")


def apply_task_options(options: Mapping[str, Any], config: OVAVSSConfig) -> OVAVSSConfig:
    """``config`` with the :data:`TASK_OPTIONS` among ``options`` applied (a new config)."""
    unknown = sorted(set(options) - set(TASK_OPTIONS))
    if unknown:
        known = ", ".join(TASK_OPTIONS)
        raise OvavssError(f"--task-option: unknown for OV-AVSS: {', '.join(unknown)} (known: {known})")
    changes = {key: task_option_value(key, value, getattr(config, key)) for key, value in options.items()}
    window = changes.pop("window_size", config.window_size)
    if window < 1:
        raise OvavssError(f"--task-option window_size: must be >= 1, got {window}")
    return replace(config, decoder=replace(config.decoder, num_frames=window), **changes)


class OVAVSSTask:
    """``TrainTask`` for OV-AVSS (see :mod:`ovavss_cli.engine.task`)."""

    name = "ovavss"

    def __init__(self, config: TrainConfig):
        if config.split is None:
            raise OvavssError("--split is required: the AVSBench-OV split file ('ovavss make-split ROOT' writes one)")
        self.config = config
        self.recipe = config.recipe
        self.model_config = apply_task_options(config.task_options, preset_config(config.preset))
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
        require_released_vggish(config.name, loaded)
        pretrained = config.name not in RANDOM_INIT_PRESETS
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
        config = self.model_config
        return ovavss_batch(items, generators, config.window_size, config.size_divisibility, self.recipe.augment)

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
