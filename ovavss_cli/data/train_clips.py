"""The training clips of both tasks as read from disk, before frame sampling, augmentation and targets
(``engine/ovavss_task.py``, ``engine/avsc_task.py``): decoded once, kept in a :class:`DecodedClipCache`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..errors import OvavssError
from .audio import log_mel_examples
from .avsbench import AVSSDataset, ClipMeta, stack_frames
from .avsobject import AVSObjectDataset, ObjectClip
from .classes import LABEL_NAMES
from .clip_cache import DECODED_CACHE_BYTES, DecodedClipCache
from .labelmap import keep_sounding_classes
from .split import OvSplit

# ---------------------------------------------------------------------------------------------- AVSBench-semantic


@dataclass
class TrainClip:
    """One training clip as decoded from disk, before frame sampling and augmentation."""

    uid: str
    frames: np.ndarray  # (F, H, W, 3) uint8
    labels: np.ndarray  # (F, H, W) uint8 class ids after the GT rules; 0 in frames without annotation
    annotated: np.ndarray  # (F,) bool: frames with ground truth
    # (E, A) float32 audio embeddings, one per VGGish example (E >= F); for a trained (not frozen) audio
    # encoder the (E, 1, 96, 64) log-mel examples instead, embedded in the training step
    audio: Tensor
    ignore_ids: tuple[int, ...]  # classes whose pixels are not supervised

    @property
    def nbytes(self) -> int:
        return self.frames.nbytes + self.labels.nbytes + self.audio.numel() * 4


class AVSSTrainClips(torch.utils.data.Dataset):
    """The split's training clips; ``dataset[i]`` decodes clip i (deterministic; cached in memory up to a budget)."""

    def __init__(
        self,
        dataset: AVSSDataset,
        clips: Sequence[ClipMeta],
        audio: Sequence[Tensor],
        split: OvSplit,
        filter_gt_to_sounding: bool,
        cache_bytes: int = DECODED_CACHE_BYTES,
    ):
        self.dataset = dataset
        self.clips = list(clips)
        self.audio = list(audio)
        self.split = split
        self.filter_gt_to_sounding = filter_gt_to_sounding
        self._cache: DecodedClipCache[TrainClip] = DecodedClipCache(cache_bytes)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> TrainClip:
        return self._cache.get(index, self._read)

    def _read(self, index: int) -> TrainClip:
        clip = self.clips[index]
        frames = self.dataset.read_frames(clip)
        labels = np.zeros(frames.shape[:3], dtype=np.uint8)
        annotated = np.zeros(frames.shape[0], dtype=bool)
        for frame in self.dataset.label_frames(clip):
            read = self.dataset.read_labels(clip, frame)
            if read.ids.shape != frames.shape[1:3]:
                raise OvavssError(
                    f"label map is {read.ids.shape[1]}x{read.ids.shape[0]} but the frames are "
                    f"{frames.shape[2]}x{frames.shape[1]}",
                    path=read.path,
                )
            ids = read.ids
            if self.filter_gt_to_sounding:
                ids = keep_sounding_classes(ids, clip.sounding_ids)
            labels[frame], annotated[frame] = ids, True
        if self.audio[index].shape[0] < frames.shape[0]:
            raise OvavssError(
                f"{frames.shape[0]} frames but audio embeddings for {self.audio[index].shape[0]}",
                path=self.dataset.clip_dir(clip),
            )
        return TrainClip(clip.uid, frames, labels, annotated, self.audio[index], self.split.ignored(clip.uid))


# ---------------------------------------------------------------------------------------------- AVSBench-object


def clip_categories(clip: ObjectClip, categories: Sequence[str]) -> np.ndarray | None:
    """(K,) bool: the clip's sounding categories among the model's, or None when unknown (no ids, or an id the
    model does not have)."""
    names = [LABEL_NAMES[class_id] for class_id in clip.class_ids]
    if not names or any(name not in categories for name in names):
        return None
    return np.isin(np.asarray(categories), names)


@dataclass
class ObjectTrainClip:
    """One training clip as read from disk, before augmentation."""

    name: str
    frames: np.ndarray  # (F, H, W, 3) uint8: the annotated frames
    masks: np.ndarray  # (F, H, W) bool sounding pixels
    frame_ids: np.ndarray  # (F,) int64: their positions in the clip, i.e. their audio examples
    log_mel: Tensor  # (T, 1, 96, 64): one VGGish example per second of the clip
    categories: np.ndarray | None  # (K,) bool, None = unknown

    @property
    def nbytes(self) -> int:
        return self.frames.nbytes + self.masks.nbytes + self.frame_ids.nbytes + self.log_mel.numel() * 4


class ObjectTrainClips(torch.utils.data.Dataset):
    """``dataset[i]`` reads training clip i (deterministic: augmentation happens in ``collate``); the first
    clips read stay decoded in memory up to ``data.clip_cache.DECODED_CACHE_BYTES`` (all of S4 train is about
    1.1 GB at 224x224)."""

    def __init__(self, dataset: AVSObjectDataset, clips: Sequence[ObjectClip], categories: Sequence[str]):
        self.dataset = dataset
        self.clips = list(clips)
        self.categories = tuple(categories)
        self._decoded: DecodedClipCache[ObjectTrainClip] = DecodedClipCache()

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> ObjectTrainClip:
        return self._decoded.get(index, self._read)

    def _read(self, index: int) -> ObjectTrainClip:
        clip, dataset = self.clips[index], self.dataset
        frame_ids = dataset.label_frames(clip)
        paths = dataset.frame_paths(clip)
        frames = stack_frames([paths[frame] for frame in frame_ids])
        masks = np.stack([dataset.read_mask(clip, frame) for frame in frame_ids])
        if masks.shape[1:] != frames.shape[1:3]:
            raise OvavssError(
                f"mask is {masks.shape[2]}x{masks.shape[1]} but the frames are {frames.shape[2]}x{frames.shape[1]}",
                path=dataset.mask_path(clip, frame_ids[0]),
            )
        waveform, rate = dataset.read_audio(clip)
        log_mel = log_mel_examples(waveform, rate, pad_to=len(paths))  # zero log-mel rows past the audio's end
        return ObjectTrainClip(
            clip.name, frames, masks, np.asarray(frame_ids), log_mel, clip_categories(clip, self.categories)
        )
