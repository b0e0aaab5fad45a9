"""``ovavss probe-audio``: each condition's waveform really reaches the audio encoder, the misaligned assignment
shares no class and is stable, the report / JSON / chart, both model families, and one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from ovavss_cli import load_model
from ovavss_cli.data.audio import SILENCE_LOG_MEL, log_mel_examples
from ovavss_cli.data.audio_conditions import NOISE_RMS, misaligned_assignment, parse_conditions, white_noise
from ovavss_cli.data.avsbench import load_avss
from ovavss_cli.data.synthetic import ClipSpec, generate_avss, generate_ms3, generate_s4
from ovavss_cli.errors import OvavssError
from ovavss_cli.inference.audio_probe import probe_audio
from ovavss_cli.metrics.evaluate import load_test_split
from ovavss_cli.models.api import save_model
from ovavss_cli.models.avsc.config import preset_config
from ovavss_cli.models.avsc.model import AVSC


@pytest.fixture(scope="module")
def avss_root(tmp_path_factory):
    # 9 default clips: 3 test clips (v2 10 s, v1s 5 s, v1m 5 s) with disjoint sounding classes
    return generate_avss(tmp_path_factory.mktemp("probe") / "avss", clips=9, seed=5, silent_distractors=1).root


@pytest.fixture(scope="module")
def avsc_weights(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("avsc") / "avsc-tiny.safetensors"
    save_model(AVSC(preset_config("avsc-tiny")), path)
    return path


def one_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1, result.output
    return lines[0]


# ---------------------------------------------------------------------------------------------
# The conditions themselves


def test_misaligned_assignment_shares_no_class_is_stable_and_spreads_donors():
    rng = np.random.default_rng(1)
    class_sets = {f"clip{i:02d}": tuple(int(c) for c in rng.choice(12, size=2, replace=False)) for i in range(20)}
    donors = misaligned_assignment(class_sets, seed=3)
    assert set(donors) == set(class_sets)
    for clip, donor in donors.items():
        assert donor != clip and not set(class_sets[clip]) & set(class_sets[donor])
    # the same seed and clips give the same assignment whatever the order; another seed another one
    assert misaligned_assignment(dict(reversed(list(class_sets.items()))), seed=3) == donors
    assert misaligned_assignment(class_sets, seed=4) != donors
    # donors are taken least-used first: no clip lends its audio far more often than the others
    assert max(np.unique(list(donors.values()), return_counts=True)[1]) <= 3


def test_misaligned_assignment_errors_name_the_problem():
    with pytest.raises(OvavssError, match="no other of the 2 clips has sounding classes disjoint"):
        misaligned_assignment({"a": (1, 2), "b": (2,)}, seed=0)
    # a clip with nothing sounding may receive a donor but gives none
    assert misaligned_assignment({"a": (1,), "b": (), "c": (2,)}, seed=0)["b"] in {"a", "c"}
    with pytest.raises(OvavssError, match="unknown for 1 clips"):
        misaligned_assignment({"a": (1,), "b": None}, seed=0)


def test_white_noise_level_and_seeding():
    noise = white_noise(160_000, seed=0, key="clip-a")
    assert np.sqrt(np.mean(noise**2)) == pytest.approx(NOISE_RMS, rel=0.01)
    assert abs(noise.mean()) < 0.002 and np.abs(noise).max() <= 1.0
    assert np.array_equal(noise, white_noise(160_000, seed=0, key="clip-a"))  # seeded
    assert not np.array_equal(noise, white_noise(160_000, seed=0, key="clip-b"))  # per clip
    assert not np.array_equal(noise, white_noise(160_000, seed=1, key="clip-a"))  # per seed


def test_parse_conditions():
    assert parse_conditions("silence, original") == ("silence", "original")
    with pytest.raises(OvavssError, match="unknown condition 'mute'"):
        parse_conditions("original,mute")
    with pytest.raises(OvavssError, match="given twice"):
        parse_conditions("noise,noise")


# ---------------------------------------------------------------------------------------------
# What reaches the audio encoder


def test_each_condition_reaches_the_audio_encoder(avss_root, tiny_weights):
    model = load_model(str(tiny_weights))
    clips = load_test_split(load_avss(avss_root)).clips
    seen: dict[str, list[torch.Tensor]] = {}
    current = []

    def start(condition: str) -> None:
        current[:] = [condition]
        seen[condition] = []

    hook = model.audio_encoder.register_forward_pre_hook(lambda module, args: seen[current[0]].append(args[0].cpu()))
    try:
        report = probe_audio(model, avss_root, seed=7, threshold=0.0, on_condition=start)
    finally:
        hook.remove()
    assert [result.condition for result in report.conditions] == ["original", "silence", "noise", "misaligned"]
    assert all(len(inputs) == len(clips) == 3 for inputs in seen.values())  # one encoder call per clip

    dataset = load_avss(avss_root)
    for index, clip in enumerate(clips):
        waveform, rate = dataset.read_audio(clip)
        original = seen["original"][index]
        assert torch.allclose(original, log_mel_examples(waveform, rate, pad_to=10)[: len(original)], atol=1e-5)
        # silence: the encoder gets the log-mel of digital silence, every value log(0.01)
        assert torch.allclose(seen["silence"][index], torch.full_like(original, SILENCE_LOG_MEL))
        # noise: this clip's seeded white noise, the same length as its own audio
        noise = log_mel_examples(white_noise(len(waveform), 7, clip.uid), rate, pad_to=10)[: len(original)]
        assert torch.allclose(seen["noise"][index], noise, atol=1e-5)
        # misaligned: the donor's audio, cut or zero-padded to this clip's length
        donor_uid = report.misaligned[clip.uid]
        donor = next(other for other in clips if other.uid == donor_uid)
        assert not set(donor.sounding_ids) & set(clip.sounding_ids)
        donor_wave, _ = dataset.read_audio(donor)
        fitted = np.zeros(len(waveform))
        fitted[: min(len(waveform), len(donor_wave))] = donor_wave[: len(waveform)]
        expected = log_mel_examples(fitted, rate, pad_to=10)[: len(original)]
        assert torch.allclose(seen["misaligned"][index], expected, atol=1e-5)

    # the report: metrics per condition, drops vs original, fpr only where the GT is empty
    original = report.condition("original")
    assert original.metrics["fpr"] is None and all(drop in (0.0, None) for drop in original.drops.values())
    for name in ("silence", "noise", "misaligned"):
        result = report.condition(name)
        assert result.metrics["fpr"] == result.metrics["foreground_fraction"]
        iou, base = result.metrics["foreground_iou"], original.metrics["foreground_iou"]
        assert result.drops["foreground_iou"] == pytest.approx((base - iou) / base)
    # stable across runs
    again = probe_audio(model, avss_root, conditions="misaligned", seed=7, threshold=0.0)
    assert again.misaligned == report.misaligned
    assert again.condition("misaligned").metrics == report.condition("misaligned").metrics


# ---------------------------------------------------------------------------------------------
# The command


def test_probe_audio_command_writes_json_and_chart(cli, avss_root, tiny_weights, tmp_path):
    out, chart = tmp_path / "probe.json", tmp_path / "probe.png"
    result = cli("probe-audio", avss_root, "--weights", tiny_weights, "--audio-conditions", "original,silence",
                 "--json", out, "--chart", chart, "--device", "cpu", "--model", "ovavss")  # fmt: skip
    assert result.exit_code == 0, result.output
    payload = json.loads(out.read_text())
    assert payload["format"] == "ovavss-audio-probe/1" and payload["benchmark"] == "avsbench-ov"
    assert list(payload["conditions"]) == ["original", "silence"] and payload["misaligned"] is None
    assert payload["weights"]["architecture"] == "ovavss" and payload["clips"] == 3
    silence = payload["conditions"]["silence"]
    assert set(silence["metrics"]) == {"miou", "miou_base", "miou_novel", "avss_fscore", *_FOREGROUND_KEYS}
    assert set(silence["drops"]) == set(silence["metrics"])
    assert set(payload["metric_keys"]) == set(silence["metrics"])
    with Image.open(chart) as image:
        assert image.format == "PNG" and image.width > 200
    assert "silence fpr" in result.output
    # "original" is exactly what eval --weights reports: the same prediction and scoring code
    evaluated = tmp_path / "eval.json"
    assert cli("eval", "--data", avss_root, "--weights", tiny_weights, "--pred", tmp_path / "preds", "--json",
               evaluated, "--device", "cpu").exit_code == 0  # fmt: skip
    eval_payload = json.loads(evaluated.read_text())
    for key in ("miou", "miou_base", "miou_novel", "avss_fscore"):
        assert payload["conditions"]["original"]["metrics"][key] == eval_payload[key]
    # an existing output is kept without --force
    out.write_text("mine")
    again = cli("probe-audio", avss_root, "--weights", tiny_weights, "--json", out)
    assert "already exists" in one_line(again) and out.read_text() == "mine"


_FOREGROUND_KEYS = ("foreground_iou", "foreground_fraction", "fpr")


def test_probe_audio_avsc_on_s4(cli, avsc_weights, tmp_path):
    root = generate_s4(tmp_path / "s4", 6, seed=4).root  # test clips: the 3rd and the 6th
    out = tmp_path / "s4.json"
    result = cli("probe-audio", root, "--weights", avsc_weights, "--benchmark", "s4", "--json", out, "--seed", "2")
    assert result.exit_code == 0, result.output
    payload = json.loads(out.read_text())
    assert payload["weights"]["architecture"] == "avsc" and payload["batch_size"] == 4
    assert set(payload["conditions"]["noise"]["metrics"]) == {"mj", "mf", *_FOREGROUND_KEYS}
    names = sorted(payload["misaligned"])
    assert payload["misaligned"] == {names[0]: names[1], names[1]: names[0]}


# ---------------------------------------------------------------------------------------------
# Bad input: one line, exit 1, nothing written


def test_unknown_condition_is_one_line(cli, avss_root, tiny_weights, tmp_path):
    result = cli("probe-audio", avss_root, "--weights", tiny_weights, "--audio-conditions", "original,mute",
                 "--json", tmp_path / "p.json")  # fmt: skip
    assert "unknown condition 'mute'" in one_line(result)
    assert not (tmp_path / "p.json").exists()


def test_options_of_the_other_benchmark_are_refused(cli, avss_root, tiny_weights, tmp_path):
    batch = cli("probe-audio", avss_root, "--weights", tiny_weights, "--batch-size", "2")
    assert "--batch-size: only for --benchmark s4 / ms3" in one_line(batch)
    threshold = cli("probe-audio", avss_root, "--weights", tiny_weights, "--benchmark", "s4", "--threshold", "0.5")
    assert "--threshold: only for --benchmark avsbench-ov" in one_line(threshold)
    force = cli("probe-audio", avss_root, "--weights", tiny_weights, "--force")
    assert "--force: only with --json / --chart" in one_line(force)


def test_too_small_for_misaligned_is_one_line(cli, tiny_weights, tmp_path):
    specs = [
        ClipSpec("tr000000001_0_5000", "v1s", "train", ("dog",)),
        ClipSpec("te000000001_0_5000", "v1s", "test", ("dog",)),
        ClipSpec("te000000002_0_10000", "v2", "test", ("dog", "cat")),
    ]
    root = generate_avss(tmp_path / "small", specs).root
    result = cli("probe-audio", root, "--weights", tiny_weights, "--json", tmp_path / "p.json")
    line = one_line(result)
    assert str(root) in line and "no other of the 2 clips has sounding classes disjoint" in line
    assert not (tmp_path / "p.json").exists()


def test_ms3_without_class_ids_cannot_be_misaligned(cli, avsc_weights, tmp_path):
    root = generate_ms3(tmp_path / "ms3", 6, seed=1).root
    result = cli("probe-audio", root, "--weights", avsc_weights, "--benchmark", "ms3")
    assert "leave 'misaligned' out of --audio-conditions" in one_line(result)


def test_ovavss_weights_on_s4_is_one_line(cli, tiny_weights, tmp_path):
    root = generate_s4(tmp_path / "s4", 6, seed=4).root
    result = cli("probe-audio", root, "--weights", tiny_weights, "--benchmark", "s4")
    assert "needs an AVSC model" in one_line(result)
