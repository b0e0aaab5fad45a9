"""``--init model_final_3c8ec9.pkl``: which OV-AVSS tensors a Mask2Former COCO initialisation fills.

Checked against what the reference's detectron2 checkpointer was captured doing
(``../shared/fixtures/mask2former-init-mapping.json``) on a stand-in pickle with the Mask2Former R50
COCO-instance keys (``mask2former-r50-coco-keys.json``), for both key layouts it records: with the
current names the pixel decoder stays at random init (438 keys load), with the pre-v2 names 555 load.
The stand-in here is built the same way: every array unique, so a value tells its source key.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from ovavss_cli.engine.ovavss_task import read_init_state
from ovavss_cli.models.checkpoint import read_checkpoint
from ovavss_cli.models.convert import convert_checkpoint
from ovavss_cli.models.keymap import map_reference_key

CURRENT, PRE_V2 = "sem_seg_head.pixel_decoder.", "sem_seg_head."


@pytest.fixture(scope="module")
def mapping(captured_file) -> dict:
    return json.loads(captured_file("mask2former-init-mapping.json").read_text())


@pytest.fixture(scope="module")
def zoo(captured_file) -> dict[str, np.ndarray]:
    """The Mask2Former R50 COCO-instance state dict (captured names and shapes), unique random float32 arrays."""
    entries = json.loads(captured_file("mask2former-r50-coco-keys.json").read_text())["entries"]
    rng = np.random.default_rng(0)
    return {e["key"]: rng.standard_normal(e["shape"], dtype=np.float32) for e in entries}


def pre_v2(key: str) -> str:
    return PRE_V2 + key[len(CURRENT) :] if key.startswith(CURRENT) else key


def write_pkl(path: Path, state: dict[str, np.ndarray]) -> Path:
    path.write_bytes(pickle.dumps({"model": state, "__author__": "stand-in", "matching_heuristics": True}))
    return path


@pytest.fixture(scope="module")
def pickles(zoo, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("m2f")
    return {
        "current": write_pkl(folder / "model_final_3c8ec9.pkl", zoo),
        "pre-v2": write_pkl(folder / "model_final_3c8ec9_v1layout.pkl", {pre_v2(k): v for k, v in zoo.items()}),
    }


def assert_fills_exactly(state: dict[str, torch.Tensor], pairs: list[tuple[str, str]], source: dict) -> None:
    """``state`` (our names) holds exactly the model keys of ``pairs`` (reference model key, source key),
    each with the source key's array."""
    expected = {map_reference_key(model_key): source_key for model_key, source_key in pairs}
    assert len(expected) == len(pairs)
    assert sorted(state) == sorted(expected)
    for ours, source_key in expected.items():
        assert np.array_equal(state[ours].numpy(), source[source_key]), f"{ours} is not {source_key}"


def reference_pairs(mapping: dict, layout: str) -> list[tuple[str, str]]:
    pairs = [(e["model_key"], e["source_key"]) for e in mapping["loaded"]]
    if layout == "pre-v2":
        pairs += [(e["model_key"], e["source_key"]) for e in mapping["variant_pre_v2_layout"]["loaded_renamed"]]
    return pairs


def test_current_layout_fills_what_the_reference_fills_and_warns(mapping, zoo, pickles, tmp_path):
    out = tmp_path / "init.safetensors"
    report = convert_checkpoint(pickles["current"], out, preset="ovavss-r50")
    assert len(mapping["loaded"]) == 438 and mapping["counts"]["loaded_all_same_name"]
    assert_fills_exactly(read_checkpoint(out).state, reference_pairs(mapping, "current"), zoo)
    assert (report.layout, report.init_mode) == ("current", "reference")
    shape_mismatch = {e["source_key"] for e in mapping["skipped_shape_mismatch"]}
    assert sorted(report.not_loaded) == sorted(set(mapping["checkpoint_keys_not_used"]) - shape_mismatch)
    assert len(report.not_loaded) == 117 and report.unmapped == [] and report.missing == []
    assert {line.split(" ")[0] for line in report.skipped} | set(report.dropped) == shape_mismatch
    assert len(report.warnings) == 1 and "117 pixel-decoder tensors stay at random init" in report.warnings[0]
    assert "--init-mode full" in report.warnings[0]


def test_pre_v2_layout_fills_the_pixel_decoder_as_the_reference(mapping, zoo, pickles, tmp_path):
    renamed = {pre_v2(k): v for k, v in zoo.items()}
    variant = mapping["variant_pre_v2_layout"]
    assert variant["counts"]["loaded"] == 555
    state = read_init_state(pickles["pre-v2"], "ovavss-r50", tmp_path / "run")  # the train --init path
    assert_fills_exactly(state, reference_pairs(mapping, "pre-v2"), renamed)
    left = {map_reference_key(k) for k in variant["not_loaded_pixel_decoder"]}
    assert all(key.startswith("pixel_decoder.transformer.encoder.vl_layer.") for key in left)
    assert not left & set(state)
    report = json.loads((tmp_path / "run" / "init" / "model_final_3c8ec9_v1layout.json").read_text())["conversion"]
    assert report["warnings"] == [] and report["not_loaded"] == [] and report["layout"] == "pre-v2"


@pytest.mark.parametrize("layout", ["current", "pre-v2"])
def test_full_mode_loads_the_pixel_decoder_from_either_layout(mapping, zoo, pickles, tmp_path, cli, layout):
    out = tmp_path / "full.safetensors"
    result = cli("convert", pickles[layout], "--out", out, "--init-mode", "full")
    assert result.exit_code == 0, result.output
    pixel_decoder = [(e["model_key"], e["source_key"]) for e in mapping["variant_pre_v2_layout"]["loaded_renamed"]]
    if layout == "current":  # same arrays, under their current names
        pixel_decoder = [(model_key, model_key) for model_key, _ in pixel_decoder]
    source = zoo if layout == "current" else {pre_v2(k): v for k, v in zoo.items()}
    assert_fills_exactly(read_checkpoint(out).state, reference_pairs(mapping, "current") + pixel_decoder, source)
    assert "warning" not in result.output


def test_reference_mode_warns_on_the_command_line_and_bad_mode_is_one_line(pickles, tmp_path, cli):
    result = cli("convert", pickles["current"], "--out", tmp_path / "ref.safetensors")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "stay at random init" in warnings[0]
    bad = cli("convert", pickles["current"], "--out", tmp_path / "bad.safetensors", "--init-mode", "half")
    assert bad.exit_code == 1 and bad.stderr.strip() == "error: --init-mode: must be one of reference, full, got 'half'"
    assert not (tmp_path / "bad.safetensors").exists()
