"""The one interface every model family implements, and how a family is declared.

``VideoPredictor``, ``eval --weights``, ``probe-audio`` and training export use a model only through
:class:`SegmentationModel`; ``models.api`` builds, loads and saves any family declared by a
:class:`ModelFamily`. A third family is one folder that implements the protocol, plus one entry in
``models.api.FAMILIES``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class Detection:
    """One painted (window, query, name) triple of a ``predict_clip`` result."""

    window: int
    query: int
    label: int  # 1-based vocabulary index (the value painted in the label maps)
    score: float  # how sure the model is of this name here (family-specific, in [0, 1])


class ClipResult(Protocol):
    """What ``predict_clip`` returns, as far as the package relies on it."""

    vocab: tuple[str, ...]
    label_maps: Tensor  # (T, H, W) int64 at the original frame size: 0 = background, i = vocab[i - 1]
    detections: list[Detection]  # what was painted


@runtime_checkable
class SegmentationModel(Protocol):
    """An audio-visual segmentation model (an ``nn.Module``) as the package uses it."""

    architecture: ClassVar[str]  # what checkpoints record (``config["architecture"]``)
    has_fast_mode: ClassVar[bool]  # predict_clip takes ``clip_queries`` (it has a per-query CLIP stage to cut)
    config: Any  # the family's config dataclass (has ``name``, the preset it came from)
    weights_id: str | None  # set by ``models.api.load_model``: registry name / path / hf:// id
    weights_sha256: str | None

    @property
    def device(self) -> torch.device: ...

    @property
    def window_size(self) -> int:
        """Frames per ``predict_clip`` call from the video predictor."""
        ...

    def fetched_state_prefixes(self) -> tuple[str, ...]:
        """State-dict prefixes the model fetches itself (e.g. open_clip's CLIP), so checkpoints may omit them."""
        ...

    def predict_clip(
        self,
        frames: np.ndarray | Tensor,
        audio: np.ndarray | Tensor | None,
        sample_rate: int,
        vocab: Sequence[str],
        threshold: float = 0.3,
        *,
        frame_times: Sequence[float] | None = None,
        precision: str = "fp32",
        clip_queries: int | None = None,
    ) -> ClipResult:
        """Segment and name the sounding objects of a clip: frames (T, H, W, 3) uint8 RGB, audio a waveform
        in [-1, 1] (any rate, channels averaged) or None for silence. ``precision`` and ``clip_queries`` are
        run options (``models.run_options``), passed per call and never stored in the model."""
        ...

    # the parts of nn.Module the package relies on
    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Tensor]: ...

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any: ...

    def to(self, *args: Any, **kwargs: Any) -> Any: ...

    def eval(self) -> Any: ...


def keep_config_dict(data: dict[str, Any]) -> dict[str, Any]:
    return data


@dataclass(frozen=True)
class ModelFamily:
    """A model family: its architecture tag, model class, config dataclass and named presets."""

    architecture: str
    model_class: Callable[[Any], SegmentationModel]
    config_class: type
    presets: Mapping[str, Callable[[], Any]]
    # Rewrites the config dict of an older checkpoint into the current form (before from_dict reads it).
    upgrade_config: Callable[[dict[str, Any]], dict[str, Any]] = field(default=keep_config_dict)
