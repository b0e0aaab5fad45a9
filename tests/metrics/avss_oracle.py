"""Independent oracles for the OV-AVSS evaluation, written from ovavss-spec.md §9 step by step.

They follow the reference's own path (RGB image resized by PIL, colour matched by argmax over the
palette, ``nn.Upsample`` on float predictions, ``torch.histc`` per frame, float32 metric B, float64
confusion matrix), not ours, so a test comparing the two checks the whole pipeline.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ovavss_cli.data.classes import AVSS_PALETTE, BASE_IDS, NOVEL_IDS


def reference_gt(path: Path) -> np.ndarray:
    """labels_rgb -> RGB -> PIL nearest 224x224 -> argmax over exact palette matches (unknown -> 0)."""
    image = Image.open(path).convert("RGB").resize((224, 224), Image.NEAREST)
    rgb = np.asarray(image).astype(np.int32)
    matches = np.stack([np.all(rgb == colour, axis=-1) for colour in AVSS_PALETTE.astype(np.int32)], axis=-1)
    return np.argmax(matches.astype(np.float32), axis=-1)


def reference_filter(ids: np.ndarray, sounding_ids: tuple[int, ...]) -> np.ndarray:
    """The "filter error annotations" step: GT ids not in [0] + a_obj ids become 0."""
    ids = ids.copy()
    ids[~np.isin(ids, [0, *sounding_ids])] = 0
    return ids


def reference_prediction(ids: np.ndarray) -> np.ndarray:
    """A full-resolution map brought to 224x224 the way the reference's nn.Upsample does."""
    up = torch.nn.Upsample(size=(224, 224), mode="nearest")
    return up(torch.from_numpy(ids).float()[None, None])[0, 0].int().numpy()


def reference_frame_scores(gt: torch.Tensor, pred: torch.Tensor):
    """Per-frame metric B with torch.histc and float32 arithmetic: (iou, fscore, union > 0), each (N, 71)."""
    target = gt.float()
    predict = pred.float() * (target > 0).float()
    inter = predict * (predict == target).float()
    ious, fscores, counts = [], [], []
    for i in range(gt.shape[0]):
        a_inter = torch.histc(inter[i], bins=71, min=1, max=71)
        a_pred = torch.histc(predict[i], bins=71, min=1, max=71)
        a_lab = torch.histc(target[i], bins=71, min=1, max=71)
        a_union = a_pred + a_lab - a_inter
        ious.append(a_inter / (2.220446049250313e-16 + a_union))
        prec, rec = a_inter / a_pred, a_inter / a_lab
        f = (1 + 0.3) * prec * rec / (0.3 * prec + rec)
        fscores.append(torch.nan_to_num(f, nan=0.0))
        counts.append(a_union > 0)
    return torch.stack(ious).numpy(), torch.stack(fscores).numpy(), torch.stack(counts).numpy()


def reference_scores(gts: list[np.ndarray], preds: list[np.ndarray]) -> dict[str, float]:
    """Metric A (float64 confusion, nanmean) and metric B (71-bin means) over all frames."""
    hist = np.zeros((71, 71))
    for gt, pred in zip(gts, preds, strict=True):
        hist += np.bincount(71 * gt.ravel().astype(int) + pred.ravel(), minlength=71**2).reshape(71, 71)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.diag(hist) / (hist.sum(axis=1) + hist.sum(axis=0) - np.diag(hist))
        base, novel = np.nanmean(iou[list(BASE_IDS)]), np.nanmean(iou[list(NOVEL_IDS)])
        harmonic = 2.0 / (1.0 / base + 1.0 / novel)
    iou_b, f_b, count_b = reference_frame_scores(torch.from_numpy(np.stack(gts)), torch.from_numpy(np.stack(preds)))
    frames = count_b.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        bin_iou = np.nan_to_num(iou_b.sum(axis=0) / frames)
        bin_f = np.nan_to_num(f_b.sum(axis=0) / frames)
    return {
        "miou": float(np.nanmean(iou)),
        "miou_base": float(base),
        "miou_novel": float(novel),
        "miou_harmonic": 0.0 if np.isnan(harmonic) else float(harmonic),
        "avss_miou": float(bin_iou.mean()),
        "avss_fscore": float(bin_f.mean()),
    }
