"""Open-vocabulary classification (the reference's OVCM): name class-agnostic masks with a frozen CLIP.

For every (frame, query) whose mask has at least one pixel, a square box around the mask is cut out of the
frame with ``roi_align``, the region is multiplied by the soft mask (black background) and encoded by CLIP.
Its cosine similarity to prompt-ensembled text embeddings of the vocabulary, times a fixed 100, gives
per-crop logits; a query's class probabilities are the softmax of its logits averaged over its valid frames.

Reference: ``ov_avss/modeling/clip_adapter/adapter.py`` (``ClipAdapter``) and
``ov_avss/ov_avss.py`` (``open_vocabulary_inference``). Differences, none of which changes the
reference's own outputs (fp32):

- crops are encoded in chunks (``crop_batch_size``) and the soft masks are upsampled one frame at a time,
  instead of materialising every crop and the (Q, T, Hpad, Wpad) probabilities at once;
- the reference's bicubic resize of each crop to the CLIP resolution is dropped: ``roi_align`` already
  outputs that size, and a same-size bicubic ``F.interpolate`` is bit-identical to its input;
- its text cache pairs new names with the wrong vectors when a vocabulary mixes cached and new names;
  here every name is encoded and cached on its own (:mod:`.text_cache`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import open_clip
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import roi_align

from ...errors import OvavssError
from ..run_options import check_clip_queries
from .text_cache import TextEmbeddingCache, is_text_tower_tensor, text_embedding_key, text_tower_fingerprint

#: The 14 "vild" prompt templates, verbatim (including the inconsistent trailing periods).
VILD_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "This is a photo of a {}",
    "There is a {} in the scene",
    "There is the {} in the scene",
    "a photo of a {} in the scene",
    "a photo of a small {}.",
    "a photo of a medium {}.",
    "a photo of a large {}.",
    "This is a photo of a small {}.",
    "This is a photo of a medium {}.",
    "This is a photo of a large {}.",
    "There is a small {} in the scene.",
    "There is a medium {} in the scene.",
    "There is a large {} in the scene.",
)

TEMPLATE_SETS: dict[str, tuple[str, ...]] = {"vild": VILD_TEMPLATES}

CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)

CROP_FILLS = ("black", "clip-mean")
SQUARE_ANCHORS = ("top-left", "center")

# Prompts per text-encoder call: 32-128 were fastest for ViT-B/16 on a 2-core CPU (one call per
# template, or 256 at once, were slower); it also bounds activation memory for large vocabularies.
_TEXT_BATCH_SIZE = 64


@dataclass
class OpenVocabConfig:
    """Open-vocabulary classifier settings; the defaults are the reference R50 model's.

    ``clip_model`` is an open_clip architecture name (``ViT-L-14-336-quickgelu`` with ``image_size=336``
    for the Swin-B model). ``pretrained`` is an open_clip tag such as ``"openai"``, only for checkpoints
    that carry no CLIP tensors (it needs the weights in the Hugging Face cache or the network).
    ``clip_architecture`` replaces whole entries of open_clip's model config (``embed_dim``, ``vision_cfg``,
    ``text_cfg``, ...), e.g. a tiny CLIP for tests; ``image_size`` always sets the crop and tower resolution.

    ``crop_fill`` is what surrounds the mask inside a crop: ``"black"`` (reference) or ``"clip-mean"``
    (CLIP's mean colour, which the paper's figure shows). ``square_anchor`` places the square crop box:
    ``"top-left"`` (reference quirk, :func:`square_box_top_left`) or ``"center"`` (:func:`square_box_center`).

    The fast mode is a run option, not part of the config: ``forward(..., clip_queries=K)``.

    ``min_sounding_score``, off by default, sends only queries whose learned sounding score exceeds it:
    the reference ignores that score at inference, so any non-empty mask of a silent object can be
    named and painted (spec §13.4 suggests exposing it as a filter).
    """

    clip_model: str = "ViT-B-16-quickgelu"
    pretrained: str | None = None
    image_size: int = 224
    clip_architecture: dict[str, Any] = field(default_factory=dict)
    templates: str = "vild"
    logit_scale: float = 100.0
    crop_fill: str = "black"
    square_anchor: str = "top-left"
    crop_batch_size: int = 16
    min_sounding_score: float | None = None

    def __post_init__(self) -> None:
        checks = (
            (self.templates in TEMPLATE_SETS, f"templates must be one of {sorted(TEMPLATE_SETS)}"),
            (self.crop_fill in CROP_FILLS, f"crop_fill must be one of {CROP_FILLS}"),
            (self.square_anchor in SQUARE_ANCHORS, f"square_anchor must be one of {SQUARE_ANCHORS}"),
            (self.image_size >= 1 and self.crop_batch_size >= 1, "image_size and crop_batch_size must be >= 1"),
            (
                self.min_sounding_score is None or 0 <= self.min_sounding_score < 1,
                "min_sounding_score must be in [0, 1)",
            ),
        )
        for ok, message in checks:
            if not ok:
                raise OvavssError(f"open-vocabulary config: {message}")


@dataclass
class MaskCrops:
    """Where each (frame, query) crop lies, and the soft mask inside it; N crops in (frame, query) order."""

    valid: Tensor  # (T, Q) bool: the binary mask has a pixel (and, in fast mode, the query was selected)
    crop_ids: Tensor  # (N, 2) int64: [frame, query] of each crop, row-major like nonzero(valid)
    tight_boxes: Tensor  # (N, 4) float32 xyxy in padded pixels, detectron2 BitMasks convention
    boxes: Tensor  # (N, 4) float32 xyxy square crop boxes, may extend past the image
    mask_crops: Tensor  # (N, 1, R, R) float32 mask probabilities inside each box


@dataclass
class OpenVocabOutput:
    """Per-crop and per-query CLIP scores for one clip."""

    valid: Tensor  # (T, Q) bool: pairs that were encoded by CLIP
    crop_ids: Tensor  # (N, 2) int64 [frame, query]
    crop_logits: Tensor  # (N, V) float32: logit_scale · cos(crop, class)
    query_ids: Tensor  # (M,) int64: queries with at least one crop, ascending
    class_probs: Tensor  # (M, V) float32: softmax over the vocabulary of the frame-averaged logits


def mask_bounding_boxes(masks: Tensor) -> Tensor:
    """(N, H, W) bool -> (N, 4) float32 xyxy boxes [x0, y0, x_max + 1, y_max + 1] (detectron2 BitMasks).

    An empty mask gets the box [0, 0, 0, 0], as in detectron2.
    """
    cols = masks.any(dim=1)  # (N, W)
    rows = masks.any(dim=2)  # (N, H)
    x0 = cols.int().argmax(dim=1)  # first True (argmax returns the first maximum)
    y0 = rows.int().argmax(dim=1)
    x1 = cols.shape[1] - cols.flip(1).int().argmax(dim=1)
    y1 = rows.shape[1] - rows.flip(1).int().argmax(dim=1)
    boxes = torch.stack([x0, y0, x1, y1], dim=1).float()
    return boxes * masks.flatten(1).any(dim=1, keepdim=True)


def square_box_top_left(boxes: Tensor) -> Tensor:
    """Reference quirk: the square of side max(w, h) keeps the box's top-left corner (not its centre)."""
    side = torch.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    return torch.stack([boxes[:, 0], boxes[:, 1], boxes[:, 0] + side, boxes[:, 1] + side], dim=1)


def square_box_center(boxes: Tensor) -> Tensor:
    """Clean variant: the square of side max(w, h) centred on the box."""
    side = torch.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    return torch.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], dim=1)


_SQUARE_BOX = {"top-left": square_box_top_left, "center": square_box_center}


def _roi_align(images: Tensor, image_ids: Tensor, boxes: Tensor, size: int) -> Tensor:
    """roi_align exactly as the reference calls it (scale 1, adaptive sampling, aligned=False)."""
    rois = torch.cat([image_ids[:, None].to(boxes), boxes], dim=1)
    return roi_align(images, rois, output_size=(size, size), spatial_scale=1.0, sampling_ratio=-1, aligned=False)


def locate_mask_crops(
    mask_logits: Tensor,
    padded_size: tuple[int, int],
    crop_size: int,
    square_anchor: str = "top-left",
    candidates: Tensor | None = None,
) -> MaskCrops:
    """Validity, boxes and soft-mask crops for every (frame, query) pair.

    ``mask_logits`` (Q, T, h, w) are decoder masks; they are upsampled bilinearly to ``padded_size`` one
    frame at a time (the full (Q, T, Hpad, Wpad) tensor is what made the reference peak at 8.5 GiB).
    ``candidates`` (Q,) bool restricts the queries (fast mode); None means all.
    """
    num_queries, num_frames = mask_logits.shape[:2]
    if candidates is None:
        candidates = torch.ones(num_queries, dtype=torch.bool, device=mask_logits.device)
    square_box = _SQUARE_BOX[square_anchor]
    valid, crop_ids, tight_boxes, boxes, mask_crops = [], [], [], [], []
    for frame in range(num_frames):
        probs = F.interpolate(
            mask_logits[:, frame : frame + 1].float(), size=padded_size, mode="bilinear", align_corners=False
        ).sigmoid()  # (Q, 1, Hpad, Wpad)
        binary = probs[:, 0] > 0.5
        frame_valid = binary.flatten(1).any(dim=1) & candidates
        queries = frame_valid.nonzero()[:, 0]
        frame_tight = mask_bounding_boxes(binary[queries])
        frame_boxes = square_box(frame_tight)
        valid.append(frame_valid)
        crop_ids.append(torch.stack([torch.full_like(queries, frame), queries], dim=1))
        tight_boxes.append(frame_tight)
        boxes.append(frame_boxes)
        mask_crops.append(_roi_align(probs, queries, frame_boxes, crop_size))
    return MaskCrops(
        valid=torch.stack(valid),
        crop_ids=torch.cat(crop_ids),
        tight_boxes=torch.cat(tight_boxes),
        boxes=torch.cat(boxes),
        mask_crops=torch.cat(mask_crops),
    )


def crop_masked_regions(
    frames: Tensor, frame_ids: Tensor, boxes: Tensor, mask_crops: Tensor, fill: Tensor | None = None
) -> Tensor:
    """Cut boxes out of frames and blend them with their soft masks: region·m + fill·(1 − m).

    frames (T, 3, H, W) float 0..255, unpadded; frame_ids (n,); boxes (n, 4); mask_crops (n, 1, R, R);
    fill (3,) 0..255 or None for black. Returns (n, 3, R, R) float 0..255. Box parts beyond one pixel
    outside the frame read as 0, as in the reference.
    """
    regions = _roi_align(frames, frame_ids, boxes, mask_crops.shape[-1])
    blended = regions * mask_crops
    if fill is not None:
        blended = blended + (1 - mask_crops) * fill.view(1, 3, 1, 1)
    return blended


def query_class_probs(crop_logits: Tensor, crop_query_ids: Tensor) -> tuple[Tensor, Tensor]:
    """(N, V) per-crop logits + (N,) query of each crop -> (M,) queries, (M, V) softmax of their mean logits."""
    query_ids, inverse, counts = torch.unique(crop_query_ids, sorted=True, return_inverse=True, return_counts=True)
    sums = crop_logits.new_zeros(len(query_ids), crop_logits.shape[1]).index_add_(0, inverse, crop_logits)
    return query_ids, (sums / counts[:, None]).softmax(dim=-1)


def sounding_query_mask(pred_logits: Tensor, max_queries: int | None, min_score: float | None = None) -> Tensor:
    """(Q, 2) decoder class logits -> (Q,) bool: the ``max_queries`` queries most likely to be sounding
    (all when None), keeping only those whose sounding probability exceeds ``min_score`` (when given)."""
    sounding = pred_logits.float().softmax(dim=-1)[:, 0]
    selected = torch.zeros_like(sounding, dtype=torch.bool)
    selected[sounding.topk(min(max_queries or len(sounding), len(sounding))).indices] = True
    if min_score is not None:
        selected &= sounding > min_score
    return selected


def check_vocabulary(vocab: Sequence[str]) -> None:
    """Raise OvavssError for an empty vocabulary, blank or duplicate names."""
    if len(vocab) == 0:
        raise OvavssError("vocabulary: no class names given")
    blank = [name for name in vocab if not isinstance(name, str) or not name.strip()]
    if blank:
        raise OvavssError(f"vocabulary: blank class name {blank[0]!r}")
    seen: set[str] = set()
    for name in vocab:
        if name in seen:
            raise OvavssError(f"vocabulary: class name {name!r} appears twice")
        seen.add(name)


def build_clip(config: OpenVocabConfig) -> nn.Module:
    """The frozen open_clip CLIP named by the config (random weights unless ``config.pretrained``)."""
    overrides = dict(config.clip_architecture)
    if "vision_cfg" in overrides:  # a replaced vision_cfg would drop force_image_size: keep image_size in charge
        overrides["vision_cfg"] = {**overrides["vision_cfg"], "image_size": config.image_size}
    try:
        # open_clip warns "initialized randomly" when pretrained is None (our checkpoint then supplies the
        # weights); the command line hides that warning (console.hide_open_clip_random_init_warning), the
        # library leaves logging alone.
        clip = open_clip.create_model(
            config.clip_model,
            pretrained=config.pretrained,
            force_image_size=config.image_size,
            device=torch.get_default_device(),  # honours `with torch.device("meta")` (shape-only builds)
            **overrides,
        )
    except RuntimeError as error:
        what = f"CLIP '{config.clip_model}'" + (f" with weights '{config.pretrained}'" if config.pretrained else "")
        raise OvavssError(f"{what} could not be built (offline without a cached copy?): {error}") from error
    clip.requires_grad_(False)
    return clip.eval()


class OpenVocabClassifier(nn.Module):
    """Names class-agnostic masks with a frozen CLIP; its only state_dict entries are ``clip.*``."""

    def __init__(self, config: OpenVocabConfig | None = None, text_cache: TextEmbeddingCache | None = None):
        super().__init__()
        self.config = config or OpenVocabConfig()
        self.clip = build_clip(self.config)
        self.tokenizer = open_clip.get_tokenizer(self.config.clip_model)
        self.templates = TEMPLATE_SETS[self.config.templates]
        self.text_cache = text_cache if text_cache is not None else TextEmbeddingCache()
        self.register_buffer("clip_mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("clip_std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)
        self._fingerprint: tuple[tuple, str] | None = None

    def train(self, mode: bool = True) -> OpenVocabClassifier:
        super().train(mode)
        self.clip.eval()  # frozen: never in training mode
        return self

    @property
    def device(self) -> torch.device:
        return self.clip_mean.device

    # ----------------------------------------------------------------------------------------------- text

    def text_weights_fingerprint(self) -> str:
        """Fingerprint of the text tower, recomputed only when a tensor was replaced or modified in place."""
        tensors = [t for name, t in self.clip.state_dict(keep_vars=True).items() if is_text_tower_tensor(name)]
        # data_ptr changes when a tensor is replaced (.to, .half), _version when it is written in place
        # (load_state_dict copies into the existing tensors).
        state = tuple((t.data_ptr(), t._version, t.dtype) for t in tensors)
        if self._fingerprint is None or self._fingerprint[0] != state:
            self._fingerprint = (state, text_tower_fingerprint(self.clip))
        return self._fingerprint[1]

    def prompt_tokens(self, names: Sequence[str]) -> Tensor:
        """(num_templates, N, context) int64 token ids of every template filled with every name."""
        context = self.tokenizer.context_length
        for name in names:
            longest = max(len(self.tokenizer.encode(template.format(name))) for template in self.templates)
            if longest + 2 > context:  # + start and end tokens; open_clip would silently truncate
                raise OvavssError(f"vocabulary: class name {name!r} is too long for CLIP's {context}-token prompts")
        return torch.stack([self.tokenizer([template.format(name) for name in names]) for template in self.templates])

    def encode_names(self, names: Sequence[str], template_ids: Tensor | None = None) -> Tensor:
        """(N, D) float32: per template L2-normalised CLIP text embeddings, averaged, L2-normalised again.

        ``template_ids`` averages over those templates only (CLIP fitting samples a few per step).
        """
        tokens = self.prompt_tokens(names).to(self.device)  # (P, N, C)
        if template_ids is not None:
            tokens = tokens[template_ids.to(self.device)]
        prompts = tokens.flatten(0, 1)  # (P·N, C): few large batches are much faster than one per template
        embeddings = [
            F.normalize(self.clip.encode_text(chunk).float(), dim=-1) for chunk in prompts.split(_TEXT_BATCH_SIZE)
        ]
        per_template = torch.cat(embeddings).view(*tokens.shape[:2], -1)  # (P, N, D)
        return F.normalize(per_template.mean(dim=0), dim=-1)

    @torch.inference_mode()
    def text_embeddings(self, vocab: Sequence[str]) -> Tensor:
        """(V, D) float32 text embeddings of the vocabulary, from the cache where possible.

        Always computed in fp32 (autocast off), so a cached vector does not depend on the precision mode.
        """
        check_vocabulary(vocab)
        fingerprint = self.text_weights_fingerprint()
        keys = [text_embedding_key(self.config.clip_model, fingerprint, self.templates, name) for name in vocab]
        found = {key: self.text_cache.get(key) for key in keys}
        missing = [index for index, key in enumerate(keys) if found[key] is None]
        if missing:
            with torch.autocast(self.device.type, enabled=False):
                encoded = self.encode_names([vocab[index] for index in missing])
            description = {"clip_model": self.config.clip_model, "templates": self.config.templates}
            for index, embedding in zip(missing, encoded, strict=True):
                self.text_cache.put(keys[index], embedding, {**description, "name": vocab[index]})
                found[keys[index]] = embedding
        return torch.stack([found[key].to(self.device, torch.float32) for key in keys])

    # ---------------------------------------------------------------------------------------------- image

    def encode_crops(self, regions: Tensor) -> Tensor:
        """(n, 3, R, R) masked regions in 0..255 -> (n, D) float32 L2-normalised CLIP image embeddings."""
        pixels = (regions / 255.0 - self.clip_mean) / self.clip_std
        return F.normalize(self.clip.encode_image(pixels).float(), dim=-1)

    @torch.inference_mode()
    def forward(
        self,
        frames: Tensor,
        mask_logits: Tensor,
        padded_size: tuple[int, int],
        vocab: Sequence[str],
        pred_logits: Tensor | None = None,
        clip_queries: int | None = None,
    ) -> OpenVocabOutput:
        """Score one clip's masks against a vocabulary.

        frames (T, 3, H, W): the unpadded model-input frames, RGB 0..255 (uint8 or float).
        mask_logits (Q, T, h, w): decoder masks for the padded input of ``padded_size`` (Hpad, Wpad).
        pred_logits (Q, 2): decoder class logits; needed only by the fast mode and ``min_sounding_score``.
        clip_queries: the fast mode, off (None) by default: only that many queries, the ones with the
        highest learned sounding score ``softmax(pred_logits)[:, 0]``, are sent to CLIP (the reference
        sends all of them); ``bench/clip_latency.py`` measures what it costs.
        """
        check_clip_queries(clip_queries)
        text = self.text_embeddings(vocab)  # (V, D)
        candidates = None
        if clip_queries is not None or self.config.min_sounding_score is not None:
            if pred_logits is None:
                raise ValueError("clip_queries / min_sounding_score need pred_logits")
            candidates = sounding_query_mask(pred_logits.to(self.device), clip_queries, self.config.min_sounding_score)
        crops = locate_mask_crops(
            mask_logits.to(self.device), padded_size, self.config.image_size, self.config.square_anchor, candidates
        )
        frames = frames.to(self.device, torch.float32)
        fill = 255.0 * self.clip_mean.view(3) if self.config.crop_fill == "clip-mean" else None
        num_crops = len(crops.crop_ids)
        crop_logits = []
        for start in range(0, num_crops, self.config.crop_batch_size):
            chunk = slice(start, start + self.config.crop_batch_size)
            regions = crop_masked_regions(
                frames, crops.crop_ids[chunk, 0], crops.boxes[chunk], crops.mask_crops[chunk], fill
            )  # (n, 3, R, R)
            features = self.encode_crops(regions)  # (n, D) float32, under the caller's autocast
            with torch.autocast(self.device.type, enabled=False):  # similarities in fp32 even under autocast
                crop_logits.append(self.config.logit_scale * features @ text.T)
        crop_logits = torch.cat(crop_logits) if crop_logits else text.new_zeros(0, len(vocab))
        query_ids, class_probs = query_class_probs(crop_logits, crops.crop_ids[:, 1])
        return OpenVocabOutput(crops.valid, crops.crop_ids, crop_logits, query_ids, class_probs)
