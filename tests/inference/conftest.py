"""Shared fixtures of the inference tests."""

from __future__ import annotations

import pytest
import torch

from ovavss_cli.models.api import create_model, save_model


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory):
    """A tiny OV-AVSS checkpoint with seeded random weights (a real model file, not a test double)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    save_model(create_model("ovavss-tiny"), path)
    return path
