"""The AVSC training task: AVSBench-object (S4 / MS3) clips -> per-frame targets -> AVSC's objective.

What a training sample is:

* **Frames.** Only a clip's annotated frames are segmented (AVSC's queries are per frame): S4 training clips
  have their first frame annotated, every other clip all 5. The audio of *every* second is embedded: the audio
  category loss pools the clip's seconds, and each segmented frame is weighted by its own second's scores.
* **Categories.** S4: the category folder (``classes.S4_CATEGORY_TO_CLASS``). MS3: the AVSBench-semantic v1m
  ``a_obj`` of the clip (task option ``avss_root``); without it MS3 categories are unknown, which only an
  audio-free baseline could train on, so it is refused. A clip whose categories are unknown or outside the
  model's (e.g. MS3 ``background`` rows) trains without the audio term and with every category allowed.
* **GT.** The released binary masks (> 0); instance targets per frame from ``engine.avsc_criterion``.
* **Augmentation.** The recipe's (one short side and one flip per clip, from the clip's generator), then
  normalisation and zero padding; a batch is padded to its largest frame.

The instance targets are ``data.train_targets``', batches ``engine.train_batches``', validation
``inference.validation``'s; this module is the task (options, model, data, loss, export).

Task options (``--task-option KEY=VALUE``): ``benchmark`` (s4 | ms3; default: the one the data root holds),
``avss_root``, and the switches of the model's correlation step and of the loss (:data:`SWITCHES`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..console import console
from ..data.avsobject import find_object_roots, load_avsobject
from ..data.train_clips import ObjectTrainClip, ObjectTrainClips, clip_categories
from ..errors import OvavssError
from ..inference.validation import evaluate_object_clips
from ..models.api import model_checkpoint_config
from ..models.avsc.config import ARCHITECTURE, AVSCConfig, preset_config
from ..models.avsc.model import AVSC
from .avsc_criterion import AVSCCriterion, AVSCLossConfig
from .init_weights import read_avsc_init, read_vggish_state, require_released_vggish, summarise_keys
from .run_config import TrainConfig, task_option_value
from .task import LossOutput
from .train_batches import AVSCBatch, avsc_batch

#: ``--task-option`` switches -> (section, field): ``correlation`` is the model's step, ``loss`` the objective.
SWITCHES: dict[str, tuple[str, str]] = {
    "audio_weighting": ("correlation", "use_audio"),
    "selection": ("correlation", "selection"),
    "combination": ("correlation", "combination"),
    "confidence_weighting": ("correlation", "confidence_weighting"),
    "silent_objective": ("loss", "silent_objective"),
    "silent_aware_gradient": ("loss", "silent_aware_gradient"),
    "attended_bce_weight": ("loss", "attended_bce_weight"),
    "attended_dice_weight": ("loss", "attended_dice_weight"),
    "audio_weight": ("loss", "audio_weight"),
    "split_multi_source": ("loss", "split_multi_source"),
    "min_component_pixels": ("loss", "min_component_pixels"),
}
DATA_OPTIONS: tuple[str, ...] = ("benchmark", "avss_root")
#: The per-step numbers logged (the final decoder output's instance terms; the aux ones are in the total).
LOGGED_TERMS = ("loss_ce", "loss_mask", "loss_dice", "loss_attended_bce", "loss_attended_dice", "loss_audio")


def apply_switches(
    options: Mapping[str, Any], model: AVSCConfig, loss: AVSCLossConfig
) -> tuple[AVSCConfig, AVSCLossConfig]:
    """The model and loss configs with the ``SWITCHES`` among ``options`` applied."""
    unknown = sorted(set(options) - set(SWITCHES) - set(DATA_OPTIONS))
    if unknown:
        known = ", ".join([*DATA_OPTIONS, *SWITCHES])
        raise OvavssError(f"--task-option: unknown for AVSC: {', '.join(unknown)} (known: {known})")
    sections: dict[str, Any] = {"correlation": model.correlation, "loss": loss}
    changes: dict[str, dict[str, Any]] = {"correlation": {}, "loss": {}}
    for key, value in options.items():
        if key in SWITCHES:
            section, name = SWITCHES[key]
            changes[section][name] = task_option_value(key, value, getattr(sections[section], name))
    try:
        correlation = dataclasses.replace(model.correlation, **changes["correlation"])
        loss = dataclasses.replace(loss, **changes["loss"])
    except ValueError as error:
        raise OvavssError(f"--task-option: {error}") from None
    return dataclasses.replace(model, correlation=correlation), loss


class AVSCTask:
    """``TrainTask`` for AVSC (see :mod:`ovavss_cli.engine.task`); ``config`` is the run's ``TrainConfig``."""

    name = ARCHITECTURE

    def __init__(self, config: TrainConfig):
        if config.split is not None:
            raise OvavssError("--split is for OV-AVSS; AVSC trains on the AVSBench-object metadata's train split")
        options = dict(config.task_options)
        self.config = config
        self.recipe = config.recipe
        base_loss = AVSCLossConfig(instance=self.recipe.criterion)
        self.model_config, self.loss_config = apply_switches(options, preset_config(config.preset), base_loss)
        self.benchmark = self._benchmark(config.data, options.get("benchmark"))
        self.dataset = load_avsobject(config.data, self.benchmark, options.get("avss_root"))
        categories = self.model_config.categories
        self.train_clips = self.dataset.split("train")
        if not self.train_clips:
            raise OvavssError("no clip has split 'train'", path=self.dataset.metadata_path)
        unknown = sum(clip_categories(clip, categories) is None for clip in self.train_clips)
        if unknown == len(self.train_clips):
            hint = " (pass --task-option avss_root=AVSBENCH_SEMANTIC_ROOT)" if self.benchmark == "ms3" else ""
            raise OvavssError(f"no training clip has known sounding categories{hint}", path=self.dataset.metadata_path)
        if unknown:
            console.print(f"{unknown} training clips have unknown categories: trained without the audio term")
        self.val_clips = self.dataset.split("val")[: config.val_clips or None]
        self.criterion = AVSCCriterion(self.loss_config, self.model_config.num_categories)
        console.print(self.describe())

    def describe(self) -> str:
        """The AVSC-specific settings in one line (the recipe's OV-AVSS data rules do not apply to AVSC)."""
        correlation, loss = self.model_config.correlation, self.loss_config
        return (
            f"AVSC on {self.benchmark.upper()}: audio weighting {'on' if correlation.use_audio else 'OFF'} "
            f"(best instance by {correlation.selection}, {correlation.combination} combination, confidence weighting "
            f"{'on' if correlation.confidence_weighting else 'off'}); silent objective {loss.silent_objective}, "
            f"silent-aware gradient {'on' if loss.silent_aware_gradient else 'off'}; attended "
            f"{loss.attended_bce_weight:g} BCE + {loss.attended_dice_weight:g} dice, audio {loss.audio_weight:g}; "
            "every training clip is used"
        )

    @staticmethod
    def _benchmark(root: str, requested: Any) -> str:
        found = find_object_roots(root)
        if requested is not None:
            if requested not in ("s4", "ms3"):
                raise OvavssError(f"--task-option benchmark: s4 or ms3, got {requested!r}")
            return requested
        if len(found) != 1:
            what = "both S4 and MS3" if found else "no S4 / MS3 metadata"
            raise OvavssError(f"holds {what}: pass --task-option benchmark=s4 or benchmark=ms3", path=root)
        return next(iter(found))

    # -------------------------------------------------------------------------------------------- model

    def build_model(self) -> AVSC:
        """The preset's model with ``--init`` and ``--vggish`` applied; reports what was loaded."""
        model = AVSC(self.model_config)
        loaded: dict[str, Tensor] = {}
        if self.config.init is not None:
            loaded, left_out = read_avsc_init(Path(self.config.init), model, self.config.run_dir, self.config.init_mode)
            if left_out:
                console.print(f"--init: not part of AVSC, left out: {summarise_keys(left_out)}")
        if self.config.vggish is not None:
            loaded.update(read_vggish_state(Path(self.config.vggish)))
        require_released_vggish(self.model_config.name, loaded)
        result = model.load_state_dict(loaded, strict=False)
        if result.unexpected_keys:
            raise OvavssError(f"weights do not fit {self.model_config.name}: e.g. {result.unexpected_keys[0]}")
        console.print(
            f"weights loaded: {summarise_keys(list(loaded))}; at initialisation: {summarise_keys(result.missing_keys)}"
        )
        return model

    def export(self, model: AVSC) -> tuple[dict[str, Tensor], dict]:
        return model.state_dict(), model_checkpoint_config(model.config)

    # -------------------------------------------------------------------------------------------- data

    def train_dataset(self) -> ObjectTrainClips:
        return ObjectTrainClips(self.dataset, self.train_clips, self.model_config.categories)

    def collate(self, items: Sequence[ObjectTrainClip], generators: Sequence[torch.Generator]) -> AVSCBatch:
        return avsc_batch(
            items,
            generators,
            self.recipe.augment,
            self.model_config.size_divisibility,
            self.loss_config,
            self.model_config.num_categories,
        )

    # -------------------------------------------------------------------------------------------- step

    def loss(self, model: nn.Module, batch: AVSCBatch, generators: Sequence[torch.Generator]) -> LossOutput:
        """Forward and loss; the frames of a clip share its loss generator (consumed in a fixed order)."""
        device = next(model.parameters()).device
        targets = batch.targets.to(device)
        trainable = targets.trainable_categories() if self.loss_config.silent_aware_gradient else None
        outputs = model(batch.images.to(device), batch.log_mel.to(device), batch.frame_audio.to(device), trainable)
        frame_generators = [generators[clip] for clip in batch.targets.frame_clip.tolist()]
        result = self.criterion(outputs, targets, frame_generators)
        return LossOutput(result.total, {name: result.terms[name].item() for name in LOGGED_TERMS})

    def validate(self, model: AVSC) -> dict[str, float]:
        """Official (batch 4) and clean mJ / mF on the val clips."""
        return evaluate_object_clips(model, self.dataset, self.val_clips) if self.val_clips else {}
