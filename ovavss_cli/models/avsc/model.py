"""AVSC: audio-visual segmentation by exploring cross-modal mutual semantics (Liu et al., ACM MM 2023).

Three parts meet in the correlation step (``correlation.py``):

* an instance segmenter that proposes N masks per frame, each with a distribution over the AVSBench
  categories + "no object", and never sees the audio (finds every object that *could* sound);
* an audio classifier: frozen VGGish, then a small head scoring which categories sound in each second;
* the correlation: the best instance per category, weighted by its category's audio score, combined into
  the sounding-object mask.

Queries are per frame (image-level Mask2Former, as the paper's instance segmenter): AVSBench-object S4
training clips are annotated on their first frame only, and a frame's sounding objects are decided by that
second's audio. The visual stack and VGGish are the shared ``layers.segmenter.AudioVisualSegmenter`` (OV-AVSS's
keys), so Mask2Former ``kind="init"`` checkpoints and VGGish weights load into the same keys.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..layers.segmenter import AudioVisualSegmenter
from ..preprocess import as_frames, frame_audio_embeddings, normalize_and_pad, resize_shortest_edge
from ..run_options import check_fast_mode, precision_context
from . import predict
from .audio_head import AudioCategoryHead
from .config import AVSCConfig
from .correlation import AudioVisualCorrelation, CorrelationOutput
from .predict import FRAMES_PER_BATCH, to_frame_size


class AVSC(AudioVisualSegmenter):
    architecture = "avsc"  # what checkpoints record; ``ovavss predict --model`` checks it
    has_fast_mode = False  # names its objects without CLIP
    config: AVSCConfig

    def __init__(self, config: AVSCConfig):
        # backbone, audio_encoder, pixel_decoder and transformer_decoder (the plain Mask2Former ones, K + 1 classes)
        super().__init__(config)
        self.audio_head = AudioCategoryHead(config.audio_encoder.embed_dim, config.num_categories, config.audio_head)
        self.correlation = AudioVisualCorrelation(config.correlation)

    def fetched_state_prefixes(self) -> tuple[str, ...]:
        """Every AVSC tensor is in its checkpoints."""
        return ()

    def segment(self, images: torch.Tensor) -> dict:
        """The audio-independent instance segmenter, one query set per frame.

        images (N, 3, Hp, Wp) normalised, zero-padded frames -> {"pred_logits": (N, Q, K+1),
        "pred_masks": (N, Q, 1, Hp/4, Wp/4), "aux_outputs": [same] x num_layers}.
        """
        features = self.backbone(images)
        mask_features, multi_scale = self.pixel_decoder(features)
        return self.transformer_decoder(multi_scale, mask_features, images.shape[0])

    def attend(
        self, instances: dict, audio_probs: torch.Tensor, trainable: torch.Tensor | None = None
    ) -> CorrelationOutput:
        """The correlation step on :meth:`segment`'s final output; audio_probs (N, K) of the same frames."""
        return self.correlation(instances["pred_logits"], instances["pred_masks"][:, :, 0], audio_probs, trainable)

    def forward(
        self,
        images: torch.Tensor,
        log_mel: torch.Tensor,
        frame_audio: torch.Tensor,
        trainable_categories: torch.Tensor | None = None,
    ) -> dict:
        """What training optimises.

        images (N, 3, Hp, Wp): the frames to segment (e.g. only the annotated ones); log_mel (M, 1, 96, 64):
        the audio examples of the same clips (one per second); frame_audio (N,) int64: the example of each
        image; trainable_categories (N, K) bool or None: see ``AudioVisualCorrelation.forward`` ->
        :meth:`segment`'s dict plus "audio_logits" (M, K), "attended_masks" (N, Hp/4, Wp/4) sounding
        probabilities, "kept_queries" (N, K) and "kept_weights" (N, K).
        """
        audio_logits = self.audio_head(self.embed_audio(log_mel))  # (M, K)
        instances = self.segment(images)
        attended = self.attend(instances, audio_logits[frame_audio].float().sigmoid(), trainable_categories)
        return {
            **instances,
            "audio_logits": audio_logits,
            "attended_masks": attended.masks,
            "kept_queries": attended.kept_queries,
            "kept_weights": attended.weights,
        }

    # The inference API (``ovavss predict`` and ``eval --weights`` call these): see predict.py.
    @torch.no_grad()
    def sounding_maps(
        self,
        frames: predict.Frames,
        audio: predict.Waveform | None,
        sample_rate: int,
        *,
        frame_times: Sequence[float] | None = None,
        precision: str = "fp32",
    ) -> predict.SoundingMaps:
        """Sounding probabilities of a clip. frames (T, H, W, 3) uint8 RGB; audio: waveform in [-1, 1] (any rate,
        channels averaged) or None for silence; frame k <-> the k-th 0.96-s example unless ``frame_times``;
        ``precision``: the segmenter's autocast, as OV-AVSS's (``run_options.resolve_precision``)."""
        frames = as_frames(frames)
        num_frames, height, width = frames.shape[:3]
        config = self.config
        audio_probs = self.audio_head(frame_audio_embeddings(self, audio, sample_rate, num_frames, frame_times))
        audio_probs = audio_probs.float().sigmoid()  # (T, K)
        resized = resize_shortest_edge(frames, config.min_size_test, config.max_size_test)
        images, image_size = normalize_and_pad(resized, config.size_divisibility)  # (T, 3, Hp, Wp)
        autocast = precision_context(precision, self.device)
        parts: list[tuple[torch.Tensor, ...]] = []
        for start in range(0, num_frames, FRAMES_PER_BATCH):
            stop = start + FRAMES_PER_BATCH
            with autocast:
                instances = self.segment(images[start:stop].to(self.device))
            attended = self.attend(instances, audio_probs[start:stop])
            parts.append(
                (
                    to_frame_size(attended.masks, image_size, (height, width), "bilinear").clamp(0, 1).cpu(),
                    to_frame_size(attended.categories, image_size, (height, width), "nearest").long().cpu(),
                    attended.weights.cpu(),
                    attended.kept_queries.cpu(),
                )
            )
        probs, categories, weights, kept = (torch.cat(column) for column in zip(*parts, strict=True))
        return predict.SoundingMaps(probs, categories, weights, kept, audio_probs.cpu())

    def predict_clip(
        self,
        frames: predict.Frames,
        audio: predict.Waveform | None,
        sample_rate: int,
        vocab: Sequence[str],
        threshold: float = 0.3,
        *,
        frame_times: Sequence[float] | None = None,
        precision: str = "fp32",
        clip_queries: int | None = None,
    ) -> predict.AVSCPrediction:
        """Segment the sounding objects of a clip and paint them with ``vocab`` (see ``predict.py``'s docstring).

        Same run options as OV-AVSS's ``predict_clip``; AVSC names its objects without CLIP, so there is
        no fast mode and ``clip_queries`` must be None.
        """
        check_fast_mode(self, clip_queries)
        vocab = predict.check_names(vocab)
        maps = self.sounding_maps(frames, audio, sample_rate, frame_times=frame_times, precision=precision)
        return predict.paint_vocabulary(
            maps, self.config.categories, self.config.correlation.threshold, vocab, threshold
        )
