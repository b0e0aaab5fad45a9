"""OV-AVSS: universal sound-source localisation (class-agnostic masks of sounding objects) plus
open-vocabulary naming with a frozen CLIP (Guo et al., ACM MM 2024).

The attribute names below define the checkpoint keys (see ``models/keymap.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..interface import Detection
from ..layers.decoder import AudioConditionedMaskDecoder
from ..layers.pixel_decoder import AudioVisualPixelDecoder
from ..layers.segmenter import AudioVisualSegmenter
from ..preprocess import as_frames, frame_audio_embeddings, normalize_and_pad, resize_shortest_edge
from ..run_options import precision_context
from .config import OVAVSSConfig
from .open_vocab import OpenVocabClassifier, check_vocabulary
from .postprocess import PostprocessConfig, postprocess
from .predict import ClipPrediction, WindowPrediction, pad_window


class OVAVSS(AudioVisualSegmenter):
    architecture = "ovavss"  # what checkpoints record; ``ovavss predict --model`` checks it
    has_fast_mode = True  # --clip-queries: only the K best queries go to CLIP
    config: OVAVSSConfig
    pixel_decoder_class = AudioVisualPixelDecoder  # early audio-visual fusion
    mask_decoder_class = AudioConditionedMaskDecoder  # v2a, a2a and per-layer audio cross-attention

    def __init__(self, config: OVAVSSConfig):
        super().__init__(config)  # backbone, audio_encoder, pixel_decoder, transformer_decoder
        self.open_vocab = OpenVocabClassifier(config.open_vocab)

    def forward(self, images: torch.Tensor, audio: torch.Tensor) -> dict:
        """The class-agnostic sounding-object segmenter (what training optimises).

        images (B, T, 3, Hp, Wp): normalised, zero-padded frames (``preprocess.normalize_and_pad``);
        audio (B, T, A): one audio embedding per frame, or (B, T, 1, 96, 64) log-mel examples, embedded
        here (how a model whose audio encoder trains sees its audio) ->
        {"pred_logits": (B, Q, 2), "pred_masks": (B, Q, T, Hp/4, Wp/4), "aux_outputs": [...]}.
        """
        batch, frames = images.shape[:2]
        if audio.dim() == 5:
            audio = self.embed_audio(audio.flatten(0, 1)).view(batch, frames, -1)
        features = self.backbone(images.flatten(0, 1))  # {"res2".."res5": (B·T, C, H/s, W/s)}
        mask_features, multi_scale, fused_audio = self.pixel_decoder(features, audio.flatten(0, 1))
        return self.transformer_decoder(multi_scale, mask_features, fused_audio, batch)

    def fetched_state_prefixes(self) -> tuple[str, ...]:
        """CLIP comes from open_clip when the config names its weights (``open_vocab.pretrained``)."""
        return ("open_vocab.clip.",) if self.config.open_vocab.pretrained else ()

    @torch.no_grad()
    def predict_clip(
        self,
        frames: np.ndarray | torch.Tensor,
        audio: np.ndarray | torch.Tensor | None,
        sample_rate: int,
        vocab: Sequence[str],
        threshold: float = 0.3,
        *,
        frame_times: Sequence[float] | None = None,
        precision: str = "fp32",
        clip_queries: int | None = None,
        batch_windows: int = 1,
    ) -> ClipPrediction:
        """Segment the sounding objects of a clip and name them with ``vocab``.

        frames: (T, H, W, 3) uint8 RGB at the original size; audio: waveform in [-1, 1] covering the clip
        (any rate: resampled to 16 kHz; several channels: averaged), or None for silence.
        precision: "fp32" (parity), "fp16", "bf16" or "auto" (``run_options.resolve_precision``): the autocast of
        the segmenter and the CLIP towers. clip_queries: the fast mode (only the K queries most likely to
        be sounding go to CLIP; None = all, the reference). batch_windows: windows per segmenter forward
        (bench/gpu_check.py measures the largest that fits; the results do not depend on it beyond float
        rounding).
        """
        vocab = tuple(vocab)
        check_vocabulary(vocab)
        frames = as_frames(frames)
        num_frames, height, width = frames.shape[:3]
        config = self.config
        window = config.window_size
        device = self.device

        audio_embeddings = frame_audio_embeddings(self, audio, sample_rate, num_frames, frame_times)
        resized = resize_shortest_edge(frames, config.min_size_test, config.max_size_test)  # (T, h, w, 3) uint8
        images, image_size = normalize_and_pad(resized, config.size_divisibility)  # (T, 3, Hp, Wp)
        padded_size = tuple(images.shape[-2:])
        frames_chw = resized.permute(0, 3, 1, 2)  # (T, 3, h, w) uint8: what CLIP crops

        starts = list(range(0, num_frames, window))
        autocast = precision_context(precision, device)
        logits_out, masks_out, windows, label_maps, detections = [], [], [], [], []
        postprocess_config = PostprocessConfig(score_threshold=threshold)
        step = max(1, batch_windows)
        for first in range(0, len(starts), step):
            group = starts[first : first + step]
            group_images = torch.stack([pad_window(images[s : s + window], window) for s in group]).to(device)
            group_audio = torch.stack([pad_window(audio_embeddings[s : s + window], window) for s in group])
            with autocast:
                group_outputs = self(group_images, group_audio.to(device))
            for index, start in enumerate(group, start=first):
                row = slice(index - first, index - first + 1)
                outputs = {key: group_outputs[key][row] for key in ("pred_logits", "pred_masks")}
                logits_out.append(outputs["pred_logits"])
                masks_out.append(outputs["pred_masks"])
                real = min(window, num_frames - start)
                masks = outputs["pred_masks"][0, :, :real]  # (Q, real, Hp/4, Wp/4)
                window_frames, window_logits = frames_chw[start : start + real], outputs["pred_logits"][0]
                with autocast:
                    named = self.open_vocab(
                        window_frames, masks, padded_size, vocab, window_logits, clip_queries=clip_queries
                    )
                painted = postprocess(
                    named.class_probs, named.query_ids, masks, padded_size, image_size, (height, width),
                    postprocess_config,
                )  # fmt: skip
                windows.append(WindowPrediction(start, real, named, painted.kept))
                label_maps.append(painted.label_maps.cpu())
                detections += [Detection(index, k.query, k.label, k.score) for k in painted.kept]

        return ClipPrediction(
            vocab=vocab,
            label_maps=torch.cat(label_maps),
            pred_logits=torch.cat(logits_out),
            pred_masks=torch.cat(masks_out),
            query_ids=torch.cat([w.open_vocab.query_ids.cpu() for w in windows]),
            window_ids=torch.cat([torch.full((len(w.open_vocab.query_ids),), i) for i, w in enumerate(windows)]),
            class_probs=torch.cat([w.open_vocab.class_probs.cpu() for w in windows]),
            detections=detections,
            windows=windows,
            audio_embeddings=audio_embeddings,
        )
