"""Kept for ``bench/avsc_curves.py``'s import only: loading is ``models.api.load_model`` for every family."""

from __future__ import annotations

import torch

from ..api import load_model
from .model import AVSC


def load_avsc(path_or_name: str, device: str | torch.device = "cpu") -> AVSC:
    """``load_model(..., architecture="avsc")``."""
    return load_model(path_or_name, device, architecture="avsc")
