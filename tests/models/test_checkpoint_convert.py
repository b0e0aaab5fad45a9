"""Checkpoint format (safetensors + JSON sidecar), safe loading of foreign pickles, and ``ovavss convert``.

Conversions run against the ``ovavss-tiny`` preset (``--preset ovavss-tiny``) with state dicts under
the official key names captured from the reference code (the R50 ``state_dict_keys.json``) at the tiny
model's shapes; the full-size key lists of R50, Swin-B and Mask2Former are checked against the key map
with shapes read from the captures, and the full R50 / Swin-B conversions by the parity tests.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import os
import pickle
import re
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from reference_weights import reference_entries
from safetensors.torch import save_file

from ovavss_cli.errors import OvavssError
from ovavss_cli.models.checkpoint import FORMAT, read_checkpoint, save_checkpoint, sha256_file, sidecar_path
from ovavss_cli.models.convert import NEW_IN_OVAVSS, convert_checkpoint, expected_shapes
from ovavss_cli.models.keymap import DROPPED_KEYS as DROPPED_CONSTANTS
from ovavss_cli.models.keymap import map_reference_key
from ovavss_cli.models.layers.vggish import VGGishConfig, build_vggish
from ovavss_cli.models.ovavss.config import preset_config
from ovavss_cli.models.safe_load import load_foreign_state_dict

TINY = "ovavss-tiny"
TINY_VGGISH = VGGishConfig(block_widths=(8, 16, 32, 32), hidden_dim=64, embed_dim=32)  # the tiny preset's
TORCHVGGISH_KEYS = [
    f"{part}.{index}.{param}"
    for part, indices in (("features", (0, 3, 6, 8, 11, 13)), ("embeddings", (0, 2, 4)))
    for index in indices
    for param in ("weight", "bias")
]


# ----------------------------------------------------------------------------------------- helpers


def _one_line_error(result, *fragments: str) -> str:
    """The CLI failed with exit 1 and a single ``error: ...`` line holding every fragment."""
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def _files(folder: Path) -> set[str]:
    return {path.name for path in folder.iterdir()}


def _random(shape, seed: int) -> torch.Tensor:
    return torch.randn(tuple(shape), generator=torch.Generator().manual_seed(seed)) * 0.02


@pytest.fixture(scope="module")
def tiny_shapes() -> dict[str, torch.Size]:
    return expected_shapes(preset_config(TINY))


@pytest.fixture(scope="module")
def tiny_reference(reference_fixture, tiny_shapes) -> dict[str, torch.Tensor]:
    """A reference-format OV-AVSS state dict with the tiny preset's shapes, plus the dropped constants.

    Its key names are the official R50 model's, as captured (``state_dict_keys.json``), never built from
    our key map: the tiny preset keeps a subset of the R50 keys (fewer blocks and layers), which are
    selected through the map, and every tiny key must be hit by exactly one captured key, so a wrong
    rename leaves a tiny key uncovered and fails here.
    """
    captured = [entry["key"] for entry in reference_entries(reference_fixture)]
    kept = [key for key in captured if key in DROPPED_CONSTANTS or _mapped(key) in tiny_shapes]
    assert sorted(_mapped(key) for key in kept if key not in DROPPED_CONSTANTS) == sorted(tiny_shapes)
    constants = {"criterion.empty_weight": torch.ones(3), "clip_adapter.pixel_mean": torch.zeros(3),
                 "clip_adapter.pixel_std": torch.ones(3)}  # fmt: skip
    return {
        key: constants[key] if key in constants else _random(tiny_shapes[_mapped(key)], i)
        for i, key in enumerate(kept)
    }


def _mapped(key: str) -> str | None:
    try:
        return map_reference_key(key)
    except KeyError:
        return None


def _save_pth(path: Path, state: dict[str, torch.Tensor]) -> Path:
    torch.save({"model": state}, path)
    return path


# -------------------------------------------------------------------------------------- checkpoint


def _sample_state() -> dict[str, torch.Tensor]:
    return {
        "a.weight": _random((4, 3), 0),
        "a.bias": torch.arange(4, dtype=torch.float16),
        "b.index": torch.tensor([1, 2, 3], dtype=torch.int64),
        "b.flag": torch.tensor([True, False]),
    }


def test_checkpoint_round_trip_records_and_verifies_sha256(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    state = _sample_state()
    config = {"architecture": "x", "model": {"depth": 2, "names": ["a", "b"]}}
    digest = save_checkpoint(path, state, kind="init", config=config, info={"source": {"file": "src.pth"}})

    assert digest == hashlib.sha256(path.read_bytes()).hexdigest() == sha256_file(path)
    sidecar = json.loads(sidecar_path(path).read_text())
    assert sidecar_path(path) == tmp_path / "ckpt.json"
    assert sidecar["sha256"] == digest and sidecar["kind"] == "init" and sidecar["format"] == FORMAT
    assert sidecar["config"] == config and sidecar["source"] == {"file": "src.pth"}
    assert _files(tmp_path) == {"ckpt.safetensors", "ckpt.json"}  # no temporary files left

    checkpoint = read_checkpoint(path, expected_sha256=digest)
    assert checkpoint.kind == "init" and checkpoint.config == config and checkpoint.sha256 == digest
    assert checkpoint.path == path and checkpoint.info["source"] == {"file": "src.pth"}
    assert checkpoint.state.keys() == state.keys()
    for key, value in state.items():
        assert checkpoint.state[key].dtype == value.dtype
        assert torch.equal(checkpoint.state[key], value), key

    # a lone .safetensors (no sidecar) still loads: kind and config come from its metadata
    sidecar_path(path).unlink()
    lone = read_checkpoint(path)
    assert lone.kind == "init" and lone.config == config and lone.sha256 == digest and lone.info == {}


def test_save_checkpoint_is_byte_identical_on_every_save(tmp_path):
    # safetensors orders its header metadata differently on each call; a seeded recipe must still
    # produce the same file (and sha256) every time, and the sorted header must still load.
    config = {"architecture": "x", "model": {"depth": 2, "names": ["a", "ü"]}}
    digests = {save_checkpoint(tmp_path / f"c{i}.safetensors", _sample_state(), kind="model", config=config)
               for i in range(8)}  # fmt: skip
    assert len(digests) == 1
    assert read_checkpoint(tmp_path / "c0.safetensors").config == config


def test_save_checkpoint_refuses_bad_kind_and_suffix(tmp_path):
    with pytest.raises(ValueError, match="kind"):
        save_checkpoint(tmp_path / "x.safetensors", _sample_state(), kind="weights", config={})
    with pytest.raises(OvavssError, match=r"x\.pt: checkpoint file name must end in \.safetensors"):
        save_checkpoint(tmp_path / "x.pt", _sample_state(), kind="model", config={})
    assert _files(tmp_path) == set()


def test_modified_checkpoint_fails_checksum(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, _sample_state(), kind="model", config={"a": 1})
    original = path.read_bytes()

    flipped = bytearray(original)
    flipped[-1] ^= 0xFF  # a byte of tensor data: still a valid safetensors file
    path.write_bytes(bytes(flipped))
    with pytest.raises(OvavssError, match="checksum mismatch") as error:
        read_checkpoint(path)
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)

    # rewritten tensors with the right metadata: a well-formed file, but not the one the sidecar describes
    metadata = {"format": FORMAT, "kind": "model", "config": json.dumps({"a": 1})}
    save_file({"a.weight": torch.zeros(4, 3)}, str(path), metadata=metadata)
    with pytest.raises(OvavssError, match="checksum mismatch"):
        read_checkpoint(path)

    path.write_bytes(original)
    assert read_checkpoint(path).kind == "model"


def test_expected_sha256_mismatch_fails(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    digest = save_checkpoint(path, _sample_state(), kind="model", config={})
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(OvavssError, match=f"checksum mismatch: sha256 {digest[:12]}… but expected {wrong[:12]}…"):
        read_checkpoint(path, expected_sha256=wrong)
    sidecar_path(path).unlink()  # also without a sidecar
    with pytest.raises(OvavssError, match="checksum mismatch"):
        read_checkpoint(path, expected_sha256=wrong)
    assert read_checkpoint(path, expected_sha256=digest).sha256 == digest


def test_unreadable_checkpoints_give_one_line_errors_naming_the_file(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, _sample_state(), kind="model", config={})
    sidecar_path(path).write_text("{not json")
    with pytest.raises(OvavssError) as error:
        read_checkpoint(path)
    message = str(error.value)
    assert message.startswith(f"{tmp_path / 'ckpt.json'}: invalid JSON sidecar") and "\n" not in message

    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"this is not a safetensors file\n" * 10)
    with pytest.raises(OvavssError) as error:
        read_checkpoint(garbage)
    message = str(error.value)
    assert message.startswith(f"{garbage}: not a readable safetensors file") and "\n" not in message

    with pytest.raises(OvavssError, match="checkpoint not found"):
        read_checkpoint(tmp_path / "absent.safetensors")


def test_safetensors_without_our_format_is_refused(tmp_path):
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(OvavssError, match=r"foreign\.safetensors: not an ovavss checkpoint \(format None\)"):
        read_checkpoint(foreign)
    save_file({"w": torch.zeros(2)}, str(foreign), metadata={"format": "other/2", "kind": "model"})
    with pytest.raises(OvavssError, match="not an ovavss checkpoint \\(format 'other/2'\\)"):
        read_checkpoint(foreign)


# --------------------------------------------------------------------------------------- safe_load


class _SystemCall:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _Eval:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return builtins.eval, (f"__import__('pathlib').Path({str(self.marker)!r}).touch()",)


class _Custom:
    """A harmless class: still not something weights_only may construct."""

    def __init__(self):
        self.value = torch.zeros(2)


@pytest.mark.parametrize(("payload", "global_name"), [(_SystemCall, f"{os.name}.system"), (_Eval, "builtins.eval")])
@pytest.mark.parametrize("suffix", [".pkl", ".pth"])
def test_pickles_that_run_code_are_refused(tmp_path, payload, global_name, suffix):
    marker = tmp_path / "MARKER"
    # the payload itself works: a plain unpickler runs it
    pickle.loads(pickle.dumps(payload(tmp_path / "CONTROL")))
    assert (tmp_path / "CONTROL").exists()

    path = tmp_path / f"evil{suffix}"
    if suffix == ".pkl":  # numpy arrays are allowed in .pkl, so only the payload can be refused
        evil = {"model": {"w": np.zeros(2, np.float32), "x": payload(marker)}, "__author__": "evil"}
        path.write_bytes(pickle.dumps(evil))
    else:
        torch.save({"model": {"w": torch.zeros(2), "x": payload(marker)}}, path)
    with pytest.raises(OvavssError) as error:
        load_foreign_state_dict(path)
    message = str(error.value)
    assert message.startswith(f"{path}: refused") and "\n" not in message
    # torch names builtins by their bare name ("GLOBAL eval")
    assert re.search(rf"refusing to load global ({re.escape(global_name)}|{global_name.split('.')[-1]})\)$", message)
    assert not marker.exists()


def test_detectron2_pickle_loads_as_tensors(tmp_path):
    weights = {
        "backbone.stem.conv1.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2),
        "sem_seg_head.predictor.query_embed.weight": np.full((3, 4), 0.5, np.float64),
        "backbone.res2.0.shortcut.index": np.array([7, 8], np.int64),
        "fortran": np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)),
    }
    for protocol in (3, 4):  # py3.0-3.7 and py3.8-3.13 defaults
        path = tmp_path / f"model_final_{protocol}.pkl"
        zoo = {"model": OrderedDict(weights), "__author__": "Detectron2 Model Zoo", "matching_heuristics": True}
        path.write_bytes(pickle.dumps(zoo, protocol=protocol))
        state = load_foreign_state_dict(path)
        assert list(state) == list(weights)
        for key, array in weights.items():
            assert isinstance(state[key], torch.Tensor)
            assert state[key].dtype == torch.from_numpy(array).dtype
            assert np.array_equal(state[key].numpy(), array), key
    bare = tmp_path / "bare.pkl"  # a bare {name: array} mapping is a state dict too
    bare.write_bytes(pickle.dumps({"w": np.ones(3, np.float32)}))
    assert torch.equal(load_foreign_state_dict(bare)["w"], torch.ones(3))


@pytest.mark.parametrize("protocol", [0, 2])
def test_detectron2_pickle_with_old_protocol_loads(tmp_path, protocol):
    path = tmp_path / "model_final.pkl"
    path.write_bytes(pickle.dumps({"model": {"w": np.arange(3, dtype=np.float32)}}, protocol=protocol))
    assert torch.equal(load_foreign_state_dict(path)["w"], torch.arange(3.0))


def test_detectron2_pickle_with_protocol_5_loads(tmp_path):
    path = tmp_path / "model_final.pkl"
    path.write_bytes(pickle.dumps({"model": {"w": np.arange(3, dtype=np.float32)}}, protocol=5))
    assert torch.equal(load_foreign_state_dict(path)["w"], torch.arange(3.0))


@pytest.mark.parametrize("suffix", [".pth", ".pkl"])
def test_corrupt_pickle_is_unreadable_not_refused(tmp_path, suffix):
    path = tmp_path / f"corrupt{suffix}"
    path.write_bytes(b"\x80\x02garbage bytes here" * 3)  # a pickle header, then nonsense
    with pytest.raises(OvavssError, match=r"cannot read checkpoint \(corrupt pickle: ") as error:
        load_foreign_state_dict(path)
    assert "refused" not in str(error.value) and "\n" not in str(error.value)


def test_zero_dim_array_keeps_its_shape(tmp_path):
    path = tmp_path / "model_final.pkl"
    path.write_bytes(pickle.dumps({"model": {"logit_scale": np.array(4.6, np.float32)}}))
    assert load_foreign_state_dict(path)["logit_scale"].shape == ()


def test_pth_state_dict_loads_and_arbitrary_classes_are_refused(tmp_path):
    state = {"features.0.weight": _random((2, 1, 3, 3), 1), "embeddings.0.bias": torch.arange(3.0)}
    for name, obj in (("bare.pth", state), ("wrapped.pt", {"model": OrderedDict(state), "iteration": 5})):
        torch.save(obj, tmp_path / name)
        loaded = load_foreign_state_dict(tmp_path / name)
        assert loaded.keys() == state.keys()
        assert all(torch.equal(loaded[key], value) for key, value in state.items())

    custom = tmp_path / "custom.pth"
    torch.save({"model": state, "extra": _Custom()}, custom)
    with pytest.raises(OvavssError) as error:
        load_foreign_state_dict(custom)
    message = str(error.value)
    assert message.startswith(f"{custom}: refused") and "_Custom" in message and "\n" not in message


def test_foreign_files_that_are_not_state_dicts(tmp_path):
    with pytest.raises(OvavssError, match="absent.pth: file not found"):
        load_foreign_state_dict(tmp_path / "absent.pth")
    truncated = tmp_path / "truncated.pth"
    torch.save({"w": torch.zeros(100)}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(OvavssError, match=r"truncated\.pth: cannot read checkpoint \(RuntimeError: "):
        load_foreign_state_dict(truncated)
    empty_file = tmp_path / "empty.pth"
    empty_file.touch()
    with pytest.raises(OvavssError, match=r"empty\.pth: cannot read checkpoint \(EOFError"):
        load_foreign_state_dict(empty_file)
    empty = tmp_path / "empty.pkl"
    empty.write_bytes(pickle.dumps({"model": {}}))
    with pytest.raises(OvavssError, match="no state_dict found"):
        load_foreign_state_dict(empty)
    scalar = tmp_path / "scalar.pkl"
    scalar.write_bytes(pickle.dumps({"model": {"w": np.ones(2), "lr": 0.1}}))
    with pytest.raises(OvavssError, match="entry 'lr' is not a named tensor"):
        load_foreign_state_dict(scalar)


# ---------------------------------------------------------------------------------------- key map


def test_key_map_renames_detectron2_names():
    assert map_reference_key("backbone.stem.conv1.weight") == "backbone.conv1.weight"
    assert map_reference_key("backbone.stem.conv1.norm.running_mean") == "backbone.bn1.running_mean"
    assert map_reference_key("backbone.res2.0.conv3.weight") == "backbone.layer1.0.conv3.weight"
    assert map_reference_key("backbone.res3.1.conv2.norm.bias") == "backbone.layer2.1.bn2.bias"
    assert map_reference_key("backbone.res5.0.shortcut.weight") == "backbone.layer4.0.downsample.0.weight"
    assert map_reference_key("backbone.res5.0.shortcut.norm.weight") == "backbone.layer4.0.downsample.1.weight"
    swin = "backbone.layers.0.blocks.1.attn.qkv.weight"
    assert map_reference_key(swin) == swin
    assert map_reference_key("sem_seg_head.predictor.v2a.norm.weight") == "transformer_decoder.v2a.norm.weight"
    assert map_reference_key("sem_seg_head.pixel_decoder.mask_features.bias") == "pixel_decoder.mask_features.bias"
    assert map_reference_key("audio_encoder.audio_backbone.features.0.weight") == "audio_encoder.features.0.weight"
    assert map_reference_key("clip_adapter.clip_model.logit_scale") == "open_vocab.clip.logit_scale"
    for constant in ("criterion.empty_weight", "clip_adapter.pixel_mean", "clip_adapter.pixel_std"):
        assert map_reference_key(constant) is None
    with pytest.raises(KeyError):
        map_reference_key("sem_seg_head.something_else.weight")


@pytest.mark.parametrize(("fixture_name", "preset"), [("reference_fixture", "ovavss-r50"), ("swinb_fixture", "ovavss-swinb")])
def test_key_map_covers_the_captured_official_state_dict(request, fixture_name, preset):
    """Every key of the official model's state_dict (names and shapes as captured from the reference code)
    lands on one of ours with the same shape, and every one of ours is hit exactly once."""
    from ovavss_cli.models.convert import detect_preset

    entries = reference_entries(request.getfixturevalue(fixture_name))
    assert detect_preset({entry["key"]: None for entry in entries}) == preset
    ours = expected_shapes(preset_config(preset))
    unmapped = [entry["key"] for entry in entries if entry["key"] not in DROPPED_CONSTANTS and _mapped(entry["key"]) is None]
    assert unmapped == []
    assert sorted(entry["key"] for entry in entries if entry["key"] in DROPPED_CONSTANTS) == sorted(DROPPED_CONSTANTS)
    mapped = [(_mapped(entry["key"]), tuple(entry["shape"])) for entry in entries if entry["key"] not in DROPPED_CONSTANTS]
    assert sorted(key for key, _ in mapped) == sorted(ours)  # one-to-one: nothing missing, nothing twice
    wrong = [(key, shape, tuple(ours[key])) for key, shape in mapped if tuple(ours[key]) != shape]
    assert wrong == []


def test_key_map_covers_the_captured_mask2former_keys(captured_file):
    """The Mask2Former R50 COCO keys (captured from its code) land on ours, except the 80-class head."""
    entries = json.loads(captured_file("mask2former-r50-coco-keys.json").read_text())["entries"]
    ours = expected_shapes(preset_config("ovavss-r50"))
    mismatched = sorted(
        entry["key"] for entry in entries
        if entry["key"] not in DROPPED_CONSTANTS and tuple(ours[map_reference_key(entry["key"])]) != tuple(entry["shape"])
    )  # fmt: skip
    assert mismatched == ["sem_seg_head.predictor.class_embed.bias", "sem_seg_head.predictor.class_embed.weight"]
    assert len({map_reference_key(entry["key"]) for entry in entries}) == len(entries)


# ---------------------------------------------------------------------------------------- convert


def test_convert_reference_ovavss_to_our_keys(cli, tmp_path, tiny_reference, tiny_shapes):
    src = _save_pth(tmp_path / "model_ov_avss_tiny.pth", tiny_reference)
    dst = tmp_path / "out" / "converted.safetensors"
    result = cli("convert", src, "--out", dst, "--preset", TINY)
    assert result.exit_code == 0, result.output
    assert f"wrote {dst}" in result.output.replace("\n", "")

    checkpoint = read_checkpoint(dst)
    assert checkpoint.kind == "model"
    assert checkpoint.config["model"]["name"] == TINY
    assert checkpoint.state.keys() == tiny_shapes.keys()
    for key, value in tiny_reference.items():
        ours = map_reference_key(key)
        if ours is not None:
            assert torch.equal(checkpoint.state[ours], value), key
    report = checkpoint.info["conversion"]
    assert report["kind"] == "ovavss" and report["preset"] == TINY
    assert report["converted"] == len(tiny_shapes)
    assert sorted(report["dropped"]) == ["clip_adapter.pixel_mean", "clip_adapter.pixel_std", "criterion.empty_weight"]
    assert report["unmapped"] == [] and report["missing"] == [] and report["skipped"] == []
    assert checkpoint.info["source"] == {"file": src.name, "sha256": sha256_file(src), "kind": "ovavss"}
    assert report["output"] == str(dst) and checkpoint.info["sha256"] == checkpoint.sha256 == sha256_file(dst)
    assert "output_sha256" not in report  # not known when the report is written; the top-level sha256 is it
    assert _files(dst.parent) == {"converted.safetensors", "converted.json"}


def test_converted_tiny_model_loads(tmp_path, tiny_reference):
    from ovavss_cli.models.api import load_model

    src = _save_pth(tmp_path / "ref.pth", tiny_reference)
    dst = tmp_path / "converted.safetensors"
    convert_checkpoint(src, dst, preset=TINY)
    model = load_model(str(dst))
    state = model.state_dict()
    key = "sem_seg_head.predictor.query_feat.weight"
    assert torch.equal(state["transformer_decoder.query_feat.weight"], tiny_reference[key])
    assert torch.equal(
        state["backbone.layer3.0.bn2.running_var"], tiny_reference["backbone.res4.0.conv2.norm.running_var"]
    )


def test_unmapped_source_keys_fail_unless_allowed(cli, tmp_path, tiny_reference):
    extra = {
        **tiny_reference,
        "pixel_mean": torch.zeros(3),  # no rule covers it
        "sem_seg_head.predictor.not_ours.weight": torch.zeros(2),  # a rule renames it, but we have no such key
    }
    src = _save_pth(tmp_path / "ref.pth", extra)
    dst = tmp_path / "converted.safetensors"
    result = cli("convert", src, "--out", dst, "--preset", TINY)
    _one_line_error(result, f"{src}: conversion failed", "2 unmapped source keys", "--allow-unmapped")
    assert _files(tmp_path) == {"ref.pth"}  # nothing written, no temporary leftovers

    result = cli("convert", src, "--out", dst, "--preset", TINY, "--allow-unmapped")
    assert result.exit_code == 0, result.output
    report = read_checkpoint(dst).info["conversion"]
    assert sorted(report["unmapped"]) == ["pixel_mean", "sem_seg_head.predictor.not_ours.weight"]
    assert report["missing"] == []


def test_missing_model_keys_fail_unless_allowed(cli, tmp_path, tiny_reference, tiny_shapes):
    gone = ["sem_seg_head.predictor.query_feat.weight", "backbone.res3.0.shortcut.norm.running_var"]
    partial = {key: value for key, value in tiny_reference.items() if key not in gone}
    src = _save_pth(tmp_path / "ref.pth", partial)
    dst = tmp_path / "converted.safetensors"
    result = cli("convert", src, "--out", dst, "--preset", TINY)
    _one_line_error(result, f"{src}: conversion failed", "2 model keys missing", "--allow-missing")
    assert _files(tmp_path) == {"ref.pth"}

    result = cli("convert", src, "--out", dst, "--preset", TINY, "--allow-missing")
    assert result.exit_code == 0, result.output
    checkpoint = read_checkpoint(dst)
    assert checkpoint.info["conversion"]["missing"] == [
        "backbone.layer2.0.downsample.1.running_var",
        "transformer_decoder.query_feat.weight",
    ]
    assert checkpoint.state.keys() == tiny_shapes.keys() - set(checkpoint.info["conversion"]["missing"])


def test_unmapped_and_missing_are_both_reported(tmp_path, tiny_reference):
    src_state = {key: value for key, value in tiny_reference.items() if key != "sem_seg_head.predictor.v2a.norm.weight"}
    src_state["sem_seg_head.predictor.v2a.norm.weights"] = tiny_reference[
        "sem_seg_head.predictor.v2a.norm.weight"
    ]  # a typo
    src = _save_pth(tmp_path / "ref.pth", src_state)
    dst = tmp_path / "converted.safetensors"
    with pytest.raises(OvavssError) as error:
        convert_checkpoint(src, dst, preset=TINY)
    message = str(error.value)
    assert "1 unmapped source keys (e.g. sem_seg_head.predictor.v2a.norm.weights" in message
    assert "1 model keys missing (e.g. transformer_decoder.v2a.norm.weight" in message
    with pytest.raises(OvavssError, match="model keys missing"):
        convert_checkpoint(src, dst, preset=TINY, allow_unmapped=True)
    with pytest.raises(OvavssError, match="unmapped source keys"):
        convert_checkpoint(src, dst, preset=TINY, allow_missing=True)
    assert not dst.exists()
    report = convert_checkpoint(src, dst, preset=TINY, allow_unmapped=True, allow_missing=True)
    assert report.unmapped == ["sem_seg_head.predictor.v2a.norm.weights"]
    assert report.missing == ["transformer_decoder.v2a.norm.weight"]
    assert dst.is_file()


def test_shape_mismatch_fails_even_when_keys_are_allowed(cli, tmp_path, tiny_reference):
    src = _save_pth(tmp_path / "ref.pth", tiny_reference)
    dst = tmp_path / "converted.safetensors"
    # no --preset: the ResNet stem says R50, whose shapes the tiny tensors do not have
    result = cli("convert", src, "--out", dst, "--allow-unmapped", "--allow-missing")
    _one_line_error(result, "conversion failed", "shape mismatches")
    assert not dst.exists() and not sidecar_path(dst).exists()


def test_existing_output_needs_force(cli, tmp_path, tiny_reference):
    src = _save_pth(tmp_path / "ref.pth", tiny_reference)
    dst = tmp_path / "converted.safetensors"
    dst.write_bytes(b"precious")
    result = cli("convert", src, "--out", dst, "--preset", TINY)
    _one_line_error(result, f"{dst}: already exists", "--force")
    assert dst.read_bytes() == b"precious"

    result = cli("convert", src, "--out", dst, "--preset", TINY, "--force")
    assert result.exit_code == 0, result.output
    assert read_checkpoint(dst).kind == "model"

    # a failing --force conversion leaves the previous output as it was
    before = dst.read_bytes(), sidecar_path(dst).read_text()
    bad = _save_pth(tmp_path / "bad.pth", {**tiny_reference, "unknown.weight": torch.zeros(1)})
    result = cli("convert", bad, "--out", dst, "--preset", TINY, "--force")
    _one_line_error(result, "unmapped source keys")
    assert (dst.read_bytes(), sidecar_path(dst).read_text()) == before
    assert _files(tmp_path) == {"ref.pth", "bad.pth", "converted.safetensors", "converted.json"}


def test_convert_argument_errors(cli, tmp_path, tiny_reference):
    src = _save_pth(tmp_path / "ref.pth", {"w": torch.zeros(1), "features.0.weight": torch.zeros(1)})
    _one_line_error(cli("convert", src, "--out", tmp_path / "out.pth"), "must be a .safetensors file")
    _one_line_error(cli("convert", src, "--out", tmp_path / "o.safetensors", "--kind", "bert"), "--kind")
    _one_line_error(cli("convert", src, "--out", tmp_path / "o.safetensors"), "unrecognised checkpoint layout")
    _one_line_error(cli("convert", tmp_path / "nope.pth", "--out", tmp_path / "o.safetensors"), "file not found")
    _one_line_error(
        cli("convert", src, "--out", tmp_path / "o.safetensors", "--kind", "ovavss"), "cannot tell the backbone"
    )
    _one_line_error(
        cli("convert", src, "--out", tmp_path / "o.safetensors", "--kind", "ovavss", "--preset", "r18"),
        "unknown model preset 'r18'",
    )
    assert _files(tmp_path) == {"ref.pth"}


def test_convert_vggish(cli, tmp_path):
    torch.manual_seed(0)
    state = build_vggish(TINY_VGGISH).state_dict()
    assert list(state) == TORCHVGGISH_KEYS
    src = tmp_path / "vggish-tiny.pth"
    torch.save(state, src)  # the torchvggish release is a bare state dict
    dst = tmp_path / "vggish.safetensors"
    result = cli("convert", src, "--out", dst, "--preset", TINY)
    assert result.exit_code == 0, result.output
    checkpoint = read_checkpoint(dst)
    assert checkpoint.kind == "vggish"
    assert checkpoint.info["conversion"]["kind"] == "vggish"
    assert checkpoint.config == {"audio_encoder": {"block_widths": [8, 16, 32, 32], "hidden_dim": 64, "embed_dim": 32}}
    assert checkpoint.state.keys() == {f"audio_encoder.{key}" for key in TORCHVGGISH_KEYS}
    assert all(torch.equal(checkpoint.state[f"audio_encoder.{key}"], value) for key, value in state.items())

    # against the default (R50, full-width VGGish) shapes, the small widths are shape mismatches
    result = cli("convert", src, "--out", tmp_path / "r50.safetensors")
    _one_line_error(result, "conversion failed", "18 shape mismatches", "features.0.weight")
    assert not (tmp_path / "r50.safetensors").exists()

    # an extra key in a VGGish file is unmapped
    torch.save({**state, "features.99.weight": torch.zeros(1)}, src)
    result = cli("convert", src, "--out", tmp_path / "v2.safetensors", "--preset", TINY, "--kind", "vggish")
    _one_line_error(result, "1 unmapped source keys (e.g. features.99.weight")


def test_convert_refuses_options_the_source_kind_does_not_use(cli, tmp_path):
    torch.manual_seed(0)
    src = tmp_path / "vggish-tiny.pth"
    torch.save(build_vggish(TINY_VGGISH).state_dict(), src)
    out = tmp_path / "o.safetensors"
    result = cli("convert", src, "--out", out, "--preset", TINY, "--vggish", src)
    _one_line_error(result, "vggish-tiny.pth: --vggish: the source is VGGish weights itself")
    result = cli("convert", src, "--out", out, "--preset", TINY, "--init-mode", "full")
    _one_line_error(result, "--init-mode: only for a Mask2Former checkpoint (this is vggish)")
    dummy = _save_pth(tmp_path / "ref.pth", {"w": torch.zeros(1)})
    result = cli("convert", dummy, "--out", out, "--kind", "ovavss", "--init-mode", "reference")
    _one_line_error(result, "--init-mode: only for a Mask2Former checkpoint (this is ovavss)")
    assert _files(tmp_path) == {"vggish-tiny.pth", "ref.pth"}


def test_convert_full_size_vggish(cli, tmp_path):
    torch.manual_seed(0)
    state = build_vggish(VGGishConfig()).state_dict()
    assert sum(value.numel() for value in state.values()) == 72_141_184
    src = tmp_path / "vggish-10086976.pth"
    torch.save(state, src)
    dst = tmp_path / "vggish.safetensors"
    result = cli("convert", src, "--out", dst)  # default preset: the released widths
    assert result.exit_code == 0, result.output
    checkpoint = read_checkpoint(dst)
    assert checkpoint.kind == "vggish"
    assert checkpoint.config["audio_encoder"]["block_widths"] == [64, 128, 256, 512]
    assert torch.equal(checkpoint.state["audio_encoder.embeddings.4.bias"], state["embeddings.4.bias"])
    assert torch.equal(checkpoint.state["audio_encoder.features.13.weight"], state["features.13.weight"])


def test_ovavss_without_vggish_takes_it_from_vggish_option(cli, tmp_path, tiny_reference):
    no_audio = {k: v for k, v in tiny_reference.items() if not k.startswith("audio_encoder.")}
    src = _save_pth(tmp_path / "ref.pth", no_audio)
    dst = tmp_path / "converted.safetensors"
    result = cli("convert", src, "--out", dst, "--preset", TINY)
    _one_line_error(result, "18 model keys missing (e.g. audio_encoder.")

    vggish = tmp_path / "vggish.pth"
    audio = {k.removeprefix("audio_encoder.audio_backbone."): v for k, v in tiny_reference.items() if k not in no_audio}
    torch.save(audio, vggish)
    result = cli("convert", src, "--out", dst, "--preset", TINY, "--vggish", vggish)
    assert result.exit_code == 0, result.output
    checkpoint = read_checkpoint(dst)
    assert checkpoint.kind == "model" and checkpoint.info["conversion"]["missing"] == []
    assert torch.equal(
        checkpoint.state["audio_encoder.features.0.weight"],
        tiny_reference["audio_encoder.audio_backbone.features.0.weight"],
    )
    assert any("vggish.pth" in note for note in checkpoint.info["conversion"]["notes"])


def _mask2former_reference(tiny_reference: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """A detectron2 model-zoo Mask2Former state: no audio, no CLIP, no OV-AVSS additions, COCO class head."""
    state = {
        key: value.numpy()
        for key, value in tiny_reference.items()
        if (ours := map_reference_key(key)) is not None and not ours.startswith(NEW_IN_OVAVSS)
    }
    state["sem_seg_head.predictor.class_embed.weight"] = np.zeros((134, 32), np.float32)  # COCO panoptic 133 + 1
    state["sem_seg_head.predictor.class_embed.bias"] = np.zeros(134, np.float32)
    state["criterion.empty_weight"] = np.ones(134, np.float32)
    return state


def test_convert_mask2former_pickle_to_init(cli, tmp_path, tiny_reference, tiny_shapes):
    zoo = _mask2former_reference(tiny_reference)
    src = tmp_path / "model_final_tiny.pkl"
    src.write_bytes(pickle.dumps({"model": zoo, "__author__": "Detectron2 Model Zoo"}))
    dst = tmp_path / "init.safetensors"
    # --init-mode full: every tensor that fits (what the reference's checkpointer fills: test_mask2former_init.py)
    result = cli("convert", src, "--out", dst, "--preset", TINY, "--init-mode", "full")
    assert result.exit_code == 0, result.output

    checkpoint = read_checkpoint(dst)
    assert checkpoint.kind == "init"
    report = checkpoint.info["conversion"]
    assert report["kind"] == "mask2former" and checkpoint.info["source"]["kind"] == "mask2former"
    mapped = {map_reference_key(key): key for key in zoo if "class_embed" not in key and "criterion" not in key}
    assert checkpoint.state.keys() == mapped.keys()
    assert not any(key.startswith(NEW_IN_OVAVSS) for key in checkpoint.state)
    for ours, theirs in mapped.items():
        assert np.array_equal(checkpoint.state[ours].numpy(), zoo[theirs]), ours
    assert len(report["skipped"]) == 2 and all("class_embed" in line for line in report["skipped"])
    assert report["dropped"] == ["criterion.empty_weight"]
    assert report["unmapped"] == [] and report["missing"] == []
    assert report["left_to_training"] == sum(1 for key in tiny_shapes if key.startswith(NEW_IN_OVAVSS))
    assert report["left_to_training"] + len(checkpoint.state) == len(tiny_shapes)

    # the Mask2Former parts themselves are still required
    partial = {k: v for k, v in zoo.items() if k != "sem_seg_head.pixel_decoder.mask_features.weight"}
    src.write_bytes(pickle.dumps({"model": partial}))
    result = cli("convert", src, "--out", tmp_path / "partial.safetensors", "--preset", TINY, "--init-mode", "full")
    _one_line_error(result, "1 model keys missing (e.g. pixel_decoder.mask_features.weight")
    assert not (tmp_path / "partial.safetensors").exists()
