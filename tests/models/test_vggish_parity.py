"""The audio path against the reference's golden fixture: log-mel examples and VGGish embeddings (fp32, CPU)."""

from __future__ import annotations

import pytest
import torch
from reference_weights import reference_entries, reference_state_dict

from ovavss_cli.data.audio import load_audio, log_mel_examples
from ovavss_cli.models.keymap import map_reference_key
from ovavss_cli.models.layers.vggish import VGGish, build_vggish

REFERENCE_PREFIX = "audio_encoder.audio_backbone."
OUR_PREFIX = "audio_encoder."


def assert_parity(ours: torch.Tensor, reference: torch.Tensor, tolerance: float = 1e-4) -> None:
    """max |ours - ref| <= tolerance, relative to |ref| where values exceed 1."""
    assert ours.shape == reference.shape
    error = ((ours - reference).abs() / reference.abs().clamp(min=1.0)).max().item()
    assert error <= tolerance, f"max error {error:.3g} > {tolerance}"


@pytest.fixture(scope="module")
def inputs(reference_fixture):
    return torch.load(reference_fixture / "inputs.pt", weights_only=True)


@pytest.fixture(scope="module")
def outputs(reference_fixture):
    return torch.load(reference_fixture / "outputs.pt", weights_only=True)


@pytest.fixture(scope="module")
def reference_vggish(reference_fixture) -> VGGish:
    """VGGish holding the fixture's weights, renamed through the checkpoint key map."""
    state = {}
    for key, value in reference_state_dict(reference_fixture, [REFERENCE_PREFIX]).items():
        ours = map_reference_key(key)
        assert ours is not None and ours.startswith(OUR_PREFIX)
        state[ours.removeprefix(OUR_PREFIX)] = value
    model = build_vggish()
    model.load_state_dict(state, strict=True)
    return model


def test_state_dict_matches_reference_keys_and_shapes(reference_fixture):
    reference = {
        map_reference_key(entry["key"]).removeprefix(OUR_PREFIX): tuple(entry["shape"])
        for entry in reference_entries(reference_fixture)
        if entry["key"].startswith(REFERENCE_PREFIX)
    }
    with torch.device("meta"):
        ours = {key: tuple(value.shape) for key, value in build_vggish().state_dict().items()}
    assert ours == reference


def test_log_mel_from_the_wav_file(reference_fixture, inputs):
    waveform, rate = load_audio(reference_fixture / "audio.wav")
    examples = log_mel_examples(waveform, rate, pad_to=10)
    assert_parity(examples, inputs["vggish_logmel_examples"], tolerance=1e-5)
    assert torch.all(examples[5:] == 0)  # 5-s clip: 5 real examples, 5 zero-padded slots


def test_log_mel_from_the_int16_samples(inputs):
    waveform = inputs["audio_int16"].double() / 32768.0  # how the reference scales soundfile's int16
    examples = log_mel_examples(waveform, inputs["sample_rate"], pad_to=10)
    assert_parity(examples, inputs["vggish_logmel_examples"], tolerance=1e-5)


def test_embeddings_from_reference_log_mel(reference_vggish, inputs, outputs):
    with torch.no_grad():
        embeddings = reference_vggish(inputs["vggish_logmel_examples"])
    assert_parity(embeddings, outputs["vggish_embeddings_all"])


def test_embeddings_end_to_end_and_frame_selection(reference_fixture, reference_vggish, inputs, outputs):
    waveform, rate = load_audio(reference_fixture / "audio.wav")
    with torch.no_grad():
        embeddings = reference_vggish(log_mel_examples(waveform, rate, pad_to=10))
    assert_parity(embeddings, outputs["vggish_embeddings_all"])
    # Frame k of an AVSBench clip hears VGGish example k (the reference reads k from the frame's file name).
    rows = [int(frame_id) for frame_id in inputs["frame_file_ids"]]
    assert_parity(embeddings[rows], outputs["vggish_embeddings_selected"])
