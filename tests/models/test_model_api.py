"""models/api.py: one create/load/save path for both families, the protocol they implement, and a sidecar that
cannot change what is built."""

import json
import logging

import pytest
import torch

from ovavss_cli.errors import OvavssError
from ovavss_cli.hub import load_registry
from ovavss_cli.models.api import (
    FAMILIES,
    create_model,
    list_models,
    list_pretrained,
    load_model,
    model_checkpoint_config,
    save_model,
)
from ovavss_cli.models.avsc.model import AVSC
from ovavss_cli.models.checkpoint import read_checkpoint, save_checkpoint, sidecar_path
from ovavss_cli.models.interface import SegmentationModel
from ovavss_cli.models.ovavss.config import with_openai_clip
from ovavss_cli.models.ovavss.model import OVAVSS


@pytest.fixture(scope="module")
def tiny_avsc(tmp_path_factory):
    torch.manual_seed(0)
    model = create_model("avsc-tiny")
    path = tmp_path_factory.mktemp("avsc") / "avsc.safetensors"
    save_model(model, path)
    return model, path


def test_lists_name_every_family_and_the_registry():
    assert {"ovavss-r50", "ovavss-swinb", "ovavss-tiny", "avsc-r50", "avsc-swinb", "avsc-tiny"} <= set(list_models())
    assert set(FAMILIES) == {"ovavss", "avsc"}
    assert list_pretrained() == [(entry.preset, entry.name) for entry in load_registry().values()]
    assert ("ovavss-tiny", "tiny-demo") in list_pretrained()


def test_both_families_implement_the_protocol_with_real_methods(tiny_avsc):
    model, _ = tiny_avsc
    for family in (OVAVSS, AVSC):
        assert "predict_clip" in vars(family) and callable(vars(family)["predict_clip"])  # defined on the class
    assert isinstance(model, SegmentationModel) and model.architecture == "avsc" and model.window_size == 5
    assert model.fetched_state_prefixes() == ()


def test_create_model_with_pretrained_weights_loads_them_and_checks_the_preset(tiny_avsc):
    model, path = tiny_avsc
    loaded = create_model("avsc-tiny", pretrained=str(path))
    assert isinstance(loaded, AVSC) and not loaded.training
    expected, got = model.state_dict(), loaded.state_dict()
    assert expected.keys() == got.keys() and all(torch.equal(expected[k], got[k]) for k in expected)
    with pytest.raises(OvavssError, match="not an OVAVSS model"):
        create_model("ovavss-tiny", pretrained=str(path))
    with pytest.raises(OvavssError, match="unknown model preset 'nope'"):
        create_model("nope")


def test_load_model_can_require_a_family(tiny_avsc):
    _, path = tiny_avsc
    assert isinstance(load_model(str(path), architecture="avsc"), AVSC)
    with pytest.raises(OvavssError, match="holds 'avsc' weights, not an OVAVSS model"):
        load_model(str(path), architecture="ovavss")


def test_an_edited_sidecar_config_is_refused_not_built(tiny_avsc, tmp_path):
    model, _ = tiny_avsc
    path = tmp_path / "edited.safetensors"
    save_model(model, path)
    sidecar = json.loads(sidecar_path(path).read_text())
    sidecar["config"]["model"]["correlation"]["threshold"] = 0.9  # sha256 untouched: only the sidecar changes
    sidecar_path(path).write_text(json.dumps(sidecar))
    with pytest.raises(OvavssError, match="edited.json's config differs from the one in the checkpoint"):
        load_model(str(path))
    sidecar_path(path).unlink()  # a lone .safetensors still loads, from its own (hashed) metadata
    assert load_model(str(path)).config == model.config


def test_an_unknown_architecture_is_a_one_line_error(tmp_path):
    path = tmp_path / "alien.safetensors"
    save_checkpoint(path, {"w": torch.zeros(1)}, kind="model", config={"architecture": "alien", "model": {}})
    with pytest.raises(OvavssError, match="holds a 'alien' model"):
        load_model(str(path))
    assert read_checkpoint(path).config["architecture"] == "alien"


def test_checkpoint_config_names_the_family_of_the_config(tiny_avsc):
    model, _ = tiny_avsc
    assert model_checkpoint_config(model.config)["architecture"] == "avsc"
    with pytest.raises(TypeError):
        model_checkpoint_config(object())


def test_building_a_model_leaves_logging_and_its_config_alone():
    root = logging.getLogger()
    before = list(root.filters)
    model = create_model("ovavss-tiny")  # open_clip warns on the root logger; the library installs nothing
    assert root.filters == before
    openai = with_openai_clip(model.config)
    assert model.config.open_vocab.pretrained is None and openai.open_vocab.pretrained == "openai"
    assert model.fetched_state_prefixes() == ()  # its CLIP is in its checkpoints
