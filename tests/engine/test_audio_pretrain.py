"""The tiny-demo recipe's audio-encoder pretraining: per-second tags follow the schedule, and it learns."""

from __future__ import annotations

import torch

from ovavss_cli.data.avsbench import load_avss
from ovavss_cli.data.classes import class_id
from ovavss_cli.data.synthetic import ClipSpec, generate_avss
from ovavss_cli.engine.audio_pretrain import AudioPretrainConfig, pretrain_vggish, tagged_examples, tagging_accuracy
from ovavss_cli.models.ovavss.config import preset_config
from ovavss_cli.models.ovavss.vggish import VGGish

SPECS = [
    ClipSpec("aaaaaaaaaaa_1", "v1m", "train", ("dog", "violin"), schedule=(("dog",), (), ("violin",), ("dog", "violin"), ("dog",)), world="graded"),
    ClipSpec("bbbbbbbbbbb_2", "v1m", "train", ("background",), silent=("car",), world="graded"),
    ClipSpec("ccccccccccc_3", "v1m", "train", ("car",), world="graded"),
]  # fmt: skip


def test_tags_follow_the_schedule_and_pretraining_learns_them(tmp_path):
    info = generate_avss(tmp_path / "t", SPECS, size=(16, 16))
    examples, targets = tagged_examples(load_avss(info.root), list(info.clips))
    assert examples.shape == (15, 1, 96, 64) and targets.shape == (15, 71)
    dog, violin, car = (class_id(n) for n in ("dog", "violin", "car"))
    assert targets[:5, dog].tolist() == [1, 0, 0, 1, 1] and targets[:5, violin].tolist() == [0, 0, 1, 1, 0]
    assert targets[5:10].sum() == 0  # nothing sounds: no tag, although a car is drawn
    assert targets[10:, car].tolist() == [1] * 5 and targets.sum() == 10
    torch.manual_seed(0)
    encoder = VGGish(preset_config("ovavss-tiny").audio_encoder, frozen=False)  # the recipe's encoder
    losses = pretrain_vggish(encoder, examples, targets, AudioPretrainConfig(epochs=12, batch_size=4))
    assert losses[-1] < 0.5 * losses[0]
    assert tagging_accuracy(encoder, examples, targets) == 1.0  # dog-only, car-only seconds fall apart
