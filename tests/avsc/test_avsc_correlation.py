"""The audio-visual semantic correlation step on hand-made instances: which instance is kept per category, how it
is weighted, how the weighted masks combine, and where gradients may flow."""

import math

import pytest
import torch

from ovavss_cli.models.avsc.correlation import AudioVisualCorrelation, CorrelationConfig, mask_scores

BIG = 30.0  # a mask logit whose sigmoid is 1 (or 0) to float precision


def instances():
    """One frame, three queries, two categories (+ no object), four pixels in a row.

    q0: p = (0.7, 0.1 | 0.2), mask 0.6 on pixels 0-1;  q1: p = (0.6, 0.3 | 0.1), mask 1 on pixels 2-3;
    q2: p = (0.1, 0.8 | 0.1), mask 1 on pixel 3.
    """
    probs = torch.tensor([[0.7, 0.1, 0.2], [0.6, 0.3, 0.1], [0.1, 0.8, 0.1]])
    logit_06 = math.log(0.6 / 0.4)
    masks = torch.tensor([[logit_06, logit_06, -BIG, -BIG], [-BIG, -BIG, BIG, BIG], [-BIG, -BIG, -BIG, BIG]])  # (Q, w)
    return probs.log()[None], masks[None, :, None, :]  # (1, Q, K+1), (1, Q, 1, 4)


AUDIO = torch.tensor([[0.9, 0.2]])


def correlate(audio=AUDIO, **config):
    class_logits, mask_logits = instances()
    return AudioVisualCorrelation(CorrelationConfig(**config))(class_logits, mask_logits, audio)


def test_mask_score_is_the_mean_probability_inside_the_mask():
    _, mask_logits = instances()
    scores = mask_scores(mask_logits.sigmoid())
    assert scores[0].tolist() == pytest.approx([0.6, 1.0, 1.0], abs=1e-5)
    assert mask_scores(torch.full((1, 1, 2, 2), -BIG).sigmoid()).item() == 0.0  # empty mask


def test_best_instance_per_category_by_class_probability():
    out = correlate(selection="class")
    assert out.kept_queries.tolist() == [[0, 2]]  # category 0: q0 (0.7 > 0.6); category 1: q2 (0.8)


def test_best_instance_per_category_by_class_times_mask_score():
    out = correlate(selection="class_mask")
    assert out.kept_queries.tolist() == [[1, 2]]  # category 0: q1 (0.6 x 1.0 > 0.7 x 0.6)


def test_weights_are_audio_times_confidence_and_max_combines():
    out = correlate(selection="class")
    w0, w1 = 0.9 * 0.7, 0.2 * 0.8
    assert out.weights[0].tolist() == pytest.approx([w0, w1])
    expected = [w0 * 0.6, w0 * 0.6, 0.0, w1]  # pixel 3: only q2 (category 1) is kept there
    assert out.masks[0, 0].tolist() == pytest.approx(expected, abs=1e-6)
    assert out.categories[0, 0].tolist() == [0, 0, 0, 1]


def test_sum_and_soft_or_combinations():
    w0, w1 = 0.9 * 0.6, 0.2 * 0.8  # class_mask keeps q1 for category 0: both kept masks cover pixel 3
    summed = correlate(combination="sum").masks[0, 0]
    assert summed.tolist() == pytest.approx([0.0, 0.0, w0, w0 + w1], abs=1e-6)
    soft_or = correlate(combination="soft_or").masks[0, 0]
    assert soft_or.tolist() == pytest.approx([0.0, 0.0, w0, 1 - (1 - w0) * (1 - w1)], abs=1e-6)
    maximum = correlate(combination="max").masks[0, 0]
    assert maximum.tolist() == pytest.approx([0.0, 0.0, w0, w0], abs=1e-6)
    assert correlate(combination="sum", audio=torch.ones(1, 2), confidence_weighting=False).masks.max() == 1.0


def test_without_audio_weighting_every_kept_instance_counts():
    silent = torch.zeros(1, 2)  # the audio says nothing sounds
    with_audio = correlate(audio=silent, selection="class")
    assert with_audio.masks.max() == 0.0
    control = correlate(audio=silent, selection="class", use_audio=False)
    assert control.weights[0].tolist() == pytest.approx([0.7, 0.8])
    assert control.masks[0, 0].tolist() == pytest.approx([0.42, 0.42, 0.0, 0.8], abs=1e-6)
    plain = correlate(audio=silent, selection="class", use_audio=False, confidence_weighting=False)
    assert plain.weights[0].tolist() == [1.0, 1.0]


def test_the_audio_decides_which_visible_object_is_the_sounding_one():
    only_first = correlate(audio=torch.tensor([[1.0, 0.0]]), selection="class").masks[0, 0]
    only_second = correlate(audio=torch.tensor([[0.0, 1.0]]), selection="class").masks[0, 0]
    assert (only_first > 0.3).tolist() == [True, True, False, False]
    assert (only_second > 0.5).tolist() == [False, False, False, True]


def test_silent_categories_reach_their_instances_only_through_the_audio_score():
    class_logits, mask_logits = instances()
    class_logits.requires_grad_(True)
    mask_logits.requires_grad_(True)
    audio = AUDIO.clone().requires_grad_(True)
    trainable = torch.tensor([[True, False]])  # category 0 sounds in this clip, category 1 does not
    module = AudioVisualCorrelation(CorrelationConfig(selection="class", combination="sum"))
    module(class_logits, mask_logits, audio, trainable).masks.sum().backward()
    assert mask_logits.grad[0, 2].abs().sum() == 0 and class_logits.grad[0, 2].abs().sum() == 0  # q2: category 1
    assert mask_logits.grad[0, 0].abs().sum() > 0 and class_logits.grad[0, 0].abs().sum() > 0  # q0: category 0
    assert audio.grad[0, 1] != 0  # ...but category 1's audio score is still trained

    class_logits.grad = mask_logits.grad = None
    module(class_logits, mask_logits, AUDIO).masks.sum().backward()  # no restriction (inference, or switched off)
    assert mask_logits.grad[0, 2].abs().sum() > 0


def test_bad_switches_are_rejected():
    with pytest.raises(ValueError, match="selection"):
        CorrelationConfig(selection="best")
    with pytest.raises(ValueError, match="combination"):
        CorrelationConfig(combination="mean")
