"""The tiny-demo recipe's audio pretraining: seeded examples with grade-bump targets, a loss that falls."""

from __future__ import annotations

import numpy as np
import torch

from ovavss_cli.data.classes import class_id
from ovavss_cli.data.synthetic import class_grade
from ovavss_cli.engine.audio_fit import AudioFitConfig, fit_audio_encoder, grade_targets, tag_examples
from ovavss_cli.models.layers.tiny import tiny_vggish
from ovavss_cli.models.layers.vggish import VGGish


def test_grade_targets_peak_at_each_sounding_class_grade():
    target = grade_targets(["dog", "violin"], sigma=1.0)
    peaks = {class_grade(class_id(name)) for name in ("dog", "violin")}
    assert set(np.flatnonzero(target == 1.0).tolist()) == peaks
    assert grade_targets([], sigma=1.0).max() == 0


def test_fit_audio_encoder_learns_the_grades_and_leaves_the_encoder_as_it_came():
    config = AudioFitConfig(clips=12, steps=60, batch_size=32, seed=3)
    examples, targets = tag_examples(config)
    again, _ = tag_examples(config)
    assert examples.shape == (120, 1, 96, 64) and targets.shape == (120, 70) and torch.equal(examples, again)
    torch.manual_seed(0)
    encoder = VGGish(tiny_vggish(), frozen=True)
    before = {key: value.clone() for key, value in encoder.state_dict().items()}
    losses = fit_audio_encoder(encoder, config)
    assert len(losses) == 60 and np.mean(losses[-10:]) < 0.5 * losses[0]
    assert any(not torch.equal(value, before[key]) for key, value in encoder.state_dict().items())
    assert encoder.frozen and not encoder.training and not any(p.requires_grad for p in encoder.parameters())
