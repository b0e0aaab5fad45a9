"""Run options of inference, shared by both model families and passed per call (never stored in a model).

* ``precision``: the autocast of the segmenter and the CLIP towers; ``fp32`` is the parity path.
* ``clip_queries``: OV-AVSS's fast mode, the number of queries per window sent to CLIP (None = all).

Light on purpose (torch only): the command line validates its options with it before loading a model.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import OvavssError

PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}
PRECISION_CHOICES = ("auto", *PRECISIONS)


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` is fp32 on the CPU (the parity path) and fp16 on CUDA (what the official evaluation runs)."""
    if precision == "auto":
        return "fp16" if torch.device(device).type == "cuda" else "fp32"
    if precision not in PRECISIONS:
        raise OvavssError(f"--precision: must be one of {', '.join(PRECISION_CHOICES)}, got '{precision}'")
    return precision


def precision_context(precision: str, device: torch.device) -> torch.autocast:
    """Autocast for inference: fp32 (the parity path), or fp16 / bf16 mixed precision.

    The reference evaluates under CUDA fp16 autocast with the pixel decoder forced to fp32; our pixel
    decoder and CLIP similarities keep fp32 under autocast the same way.
    """
    device = torch.device(device)
    dtype = PRECISIONS[resolve_precision(precision, device)]
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def check_clip_queries(clip_queries: int | None) -> None:
    if clip_queries is not None and (isinstance(clip_queries, bool) or clip_queries < 1):
        raise OvavssError(f"--clip-queries: must be 'all' or a whole number >= 1, got {clip_queries}")


def check_fast_mode(model: Any, clip_queries: int | None) -> None:
    """Refuse ``clip_queries`` for a model (or model class) without a CLIP stage to cut."""
    if clip_queries is not None and not model.has_fast_mode:
        raise OvavssError(
            f"--clip-queries: {model.architecture.upper()} has no CLIP stage (the fast mode is OV-AVSS only)"
        )


def parse_clip_queries(text: str | int | None) -> int | None:
    """``--clip-queries``: "all" (or None) -> None (every query, the reference), "K" -> K >= 1."""
    if text is None or (isinstance(text, str) and text.strip().lower() == "all"):
        return None
    try:
        value = int(text)
    except ValueError:
        raise OvavssError(f"--clip-queries: must be 'all' or a whole number >= 1, got '{text}'") from None
    check_clip_queries(value)
    return value
