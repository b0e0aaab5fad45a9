"""Where weights come from (``ovavss_cli.hub``) and ``ovavss weights list|download|import``, all offline.

The Hub is a Hugging Face cache laid out on disk (``hub_cache.add_to_hub_cache``); HF_HUB_CACHE and
OVAVSS_CACHE_DIR are pointed at per-test folders (hub reads both at call time). The bundled ``tiny-demo``
entry is covered by tests/inference/test_bundled_demo.py.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch
from hub_cache import add_to_hub_cache
from safetensors.torch import load_file

from ovavss_cli import hub
from ovavss_cli.errors import OvavssError
from ovavss_cli.hub import (
    RegistryEntry,
    load_registry,
    resolve_weights,
    store_dir,
    verify_weights,
)
from ovavss_cli.models.api import create_model, load_model, save_model
from ovavss_cli.models.checkpoint import sidecar_path
from ovavss_cli.models.convert import import_weights

HOSTED = RegistryEntry(
    name="hosted",
    description="a tiny checkpoint hosted on the Hub",
    preset="ovavss-tiny",
    license="test",
    repo_id="org/hosted",
    filename="ckpt/tiny.safetensors",
    how_to_get="ask the maintainers for org/hosted",
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, str]:
    """A real tiny OV-AVSS checkpoint (+ its .json sidecar) and its sha256."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    sha = save_model(create_model("ovavss-tiny"), path)
    return path, sha


@pytest.fixture(autouse=True)
def offline_sandbox(tmp_path, monkeypatch):
    """An empty Hub cache and an empty import store for each test; the Hub stays unreachable."""
    assert huggingface_hub.constants.HF_HUB_OFFLINE  # set by tests/conftest.py before huggingface_hub's import
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("OVAVSS_CACHE_DIR", str(tmp_path / "ovavss-cache"))


@pytest.fixture
def hf_cache(tmp_path) -> Path:
    return tmp_path / "hf-cache"


def use_registry(monkeypatch, *entries: RegistryEntry) -> dict[str, RegistryEntry]:
    """The real registry plus ``entries``."""
    registry = {**load_registry(), **{entry.name: entry for entry in entries}}
    monkeypatch.setattr(hub, "load_registry", lambda: registry)
    return registry


def record_downloads(monkeypatch) -> list[tuple[str, str]]:
    """Spy on hub's Hub fetches (they still run): the (repo_id, filename) of each, in order."""
    calls: list[tuple[str, str]] = []
    real = hub._hf_download

    def spy(repo_id: str, filename: str) -> Path:
        calls.append((repo_id, filename))
        return real(repo_id, filename)

    monkeypatch.setattr(hub, "_hf_download", spy)
    return calls


def error_lines(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.strip()]


def table_row(output: str, name: str) -> list[str]:
    """The cells of the first line of ``name``'s row in the ``weights list`` table."""
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("│").split("│")]
        if cells and cells[0] == name:
            return cells
    raise AssertionError(f"no row for {name!r} in:\n{output}")


# ------------------------------------------------------------------------------------------ hf://


def test_hf_file_resolves_from_the_hub_cache_with_its_sidecar_and_loads(tiny, hf_cache, monkeypatch):
    path, sha = tiny
    snapshot = add_to_hub_cache(
        hf_cache, "org/repo", {"sub/tiny.safetensors": path, "sub/tiny.json": sidecar_path(path)}
    )
    spec = "hf://org/repo/sub/tiny.safetensors"
    downloads = record_downloads(monkeypatch)
    resolved = resolve_weights(spec)
    assert downloads == [("org/repo", "sub/tiny.safetensors"), ("org/repo", "sub/tiny.json")]
    assert resolved.path == snapshot / "sub" / "tiny.safetensors"
    assert resolved.weights_id == spec and resolved.expected_sha256 is None and resolved.entry is None
    assert json.loads(resolved.path.with_suffix(".json").read_text())["sha256"] == sha
    assert verify_weights(resolved) == sha
    model = load_model(spec)
    assert model.weights_id == spec and model.weights_sha256 == sha
    stored = load_file(str(path))
    assert all(torch.equal(value, stored[key]) for key, value in model.state_dict().items())


def test_hf_repo_defaults_to_model_safetensors_and_loads_without_a_sidecar(tiny, hf_cache, monkeypatch):
    path, sha = tiny
    snapshot = add_to_hub_cache(hf_cache, "org/repo", {"model.safetensors": path})
    downloads = record_downloads(monkeypatch)
    for spec in ("hf://org/repo", "hf://org/repo/"):
        resolved = resolve_weights(spec)
        assert resolved.path == snapshot / "model.safetensors" and resolved.weights_id == spec
    assert downloads == [("org/repo", "model.safetensors"), ("org/repo", "model.json")] * 2
    assert not (snapshot / "model.json").exists()  # the missing sidecar is not an error: the metadata has the config
    model = load_model("hf://org/repo")
    assert model.weights_id == "hf://org/repo" and model.weights_sha256 == sha


def test_hf_sidecar_from_the_cache_is_checked_when_loading(tiny, hf_cache, tmp_path):
    path, _ = tiny
    sidecar = json.loads(sidecar_path(path).read_text())
    bad_sidecar = tmp_path / "model.json"
    bad_sidecar.write_text(json.dumps({**sidecar, "sha256": "0" * 64}))
    add_to_hub_cache(hf_cache, "org/repo", {"model.safetensors": path, "model.json": bad_sidecar})
    with pytest.raises(OvavssError, match="checksum mismatch.*differs from model.json"):
        load_model("hf://org/repo")


@pytest.mark.parametrize(
    ("spec", "missing"),
    [("hf://org/repo", "hf://org/repo/model.safetensors"), ("hf://org/cached/other.safetensors", None)],
)
def test_hf_not_in_the_cache_offline_is_a_one_line_error(tiny, hf_cache, spec, missing):
    if missing is None:  # the repo is cached, that file is not
        add_to_hub_cache(hf_cache, "org/cached", {"model.safetensors": tiny[0]})
    with pytest.raises(OvavssError) as error:
        resolve_weights(spec)
    message = str(error.value)
    assert message == f"{missing or spec}: not in the local Hugging Face cache and HF_HUB_OFFLINE is set"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("hf://org", r"'hf://org' must look like hf://org/repo\[/file.safetensors\]"),
        ("hf://", "must look like hf://org/repo"),
        ("hf://org/bad repo", r"hf://org/bad repo/model.safetensors: download failed \(Repo id must"),
        ("hf://org/repo/../x.safetensors", r"hf://org/repo/../x.safetensors: download failed \(Invalid filename"),
    ],
)
def test_malformed_hf_spec_is_a_user_error(spec, message):
    with pytest.raises(OvavssError, match=message) as error:
        resolve_weights(spec)
    assert "\n" not in str(error.value)


# ------------------------------------------------------------------------------------------ registry


def test_registry_entry_is_fetched_from_the_hub_cache_and_verified(tiny, hf_cache, monkeypatch, cli):
    path, sha = tiny
    entry = dataclasses.replace(HOSTED, sha256=sha)
    use_registry(monkeypatch, entry)
    snapshot = add_to_hub_cache(
        hf_cache, "org/hosted", {"ckpt/tiny.safetensors": path, "ckpt/tiny.json": sidecar_path(path)}
    )
    downloads = record_downloads(monkeypatch)
    resolved = resolve_weights("hosted")
    assert downloads == [("org/hosted", "ckpt/tiny.safetensors"), ("org/hosted", "ckpt/tiny.json")]
    assert resolved.path == snapshot / "ckpt" / "tiny.safetensors"
    assert resolved.weights_id == "hosted" and resolved.expected_sha256 == sha and resolved.entry == entry
    assert verify_weights(resolved) == sha
    model = load_model("hosted")
    assert model.weights_id == "hosted" and model.weights_sha256 == sha
    result = cli("weights", "download", "hosted")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(resolved.path)


def test_wrong_registry_sha256_is_a_checksum_mismatch(tiny, hf_cache, monkeypatch, cli):
    path, sha = tiny
    use_registry(monkeypatch, dataclasses.replace(HOSTED, sha256="f" * 64))
    add_to_hub_cache(hf_cache, "org/hosted", {"ckpt/tiny.safetensors": path})
    resolved = resolve_weights("hosted")  # resolving does not hash; verifying and loading do
    with pytest.raises(OvavssError, match=f"checksum mismatch: sha256 {sha[:12]}… but the registry says ffffffffffff"):
        verify_weights(resolved)
    with pytest.raises(OvavssError, match=f"checksum mismatch: sha256 {sha[:12]}… but expected ffffffffffff"):
        load_model("hosted")
    result = cli("weights", "download", "hosted")
    assert result.exit_code == 1
    lines = error_lines(result)
    assert len(lines) == 1 and lines[0].startswith("error: ") and "checksum mismatch" in lines[0]
    assert str(resolved.path) in lines[0]


def test_hosted_entry_missing_from_the_cache_says_how_to_get_it(monkeypatch):
    use_registry(monkeypatch, HOSTED)
    with pytest.raises(OvavssError) as error:
        resolve_weights("hosted")
    message = str(error.value)
    assert message.startswith("weights 'hosted': hf://org/hosted/ckpt/tiny.safetensors: not in the local")
    assert message.endswith(HOSTED.how_to_get) and "\n" not in message


def test_entry_with_no_source_says_how_to_get_it(cli):
    entry = load_registry()["ovavss-r50"]
    assert not entry.bundled and entry.repo_id is None
    with pytest.raises(OvavssError, match="weights 'ovavss-r50' are not available locally") as error:
        resolve_weights("ovavss-r50")
    assert entry.how_to_get in str(error.value)
    with pytest.raises(OvavssError, match="not available locally"):
        resolve_weights(None)  # the default weights
    result = cli("weights", "download", "ovavss-r50")
    assert result.exit_code == 1
    lines = error_lines(result)
    assert len(lines) == 1 and "ovavss weights import model_ov_avss_r50.pth --name ovavss-r50" in lines[0]


def test_unknown_name_lists_the_known_names(tmp_path):
    known = ", ".join(sorted(load_registry()))
    assert "tiny-demo" in known and "ovavss-r50" in known
    for spec in ("no-such-weights", str(tmp_path / "missing.safetensors")):
        with pytest.raises(OvavssError, match="is neither a file nor a known name") as error:
            resolve_weights(spec)
        assert str(error.value).endswith(f"(known: {known})")


# ------------------------------------------------------------------------------------------ local store


def place_in_store(source: Path, name: str) -> Path:
    """Put a checkpoint (+ sidecar) in the store as ``ovavss weights import`` writes it."""
    store = store_dir()
    store.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, store / f"{name}.safetensors")
    shutil.copyfile(sidecar_path(source), store / f"{name}.json")
    return store / f"{name}.safetensors"


def test_imported_checkpoint_is_found_by_name(tiny, tmp_path):
    path, sha = tiny
    assert store_dir() == tmp_path / "ovavss-cache" / "weights"
    stored = place_in_store(path, "mine")
    resolved = resolve_weights("mine")
    assert resolved.path == stored and resolved.weights_id == "mine" and resolved.entry is None
    assert verify_weights(resolved) == sha
    model = load_model("mine")
    assert model.weights_id == "mine" and model.weights_sha256 == sha


def test_imported_registry_entry_comes_before_the_hub(tiny, hf_cache, monkeypatch, cli):
    path, sha = tiny
    use_registry(monkeypatch, dataclasses.replace(HOSTED, sha256="f" * 64))
    add_to_hub_cache(hf_cache, "org/hosted", {"ckpt/tiny.safetensors": path})
    stored = {name: place_in_store(path, name) for name in ("hosted", "ovavss-r50")}
    for name in ("hosted", "ovavss-r50"):
        resolved = resolve_weights(name)
        assert resolved.path == stored[name] and resolved.entry.name == name
        assert resolved.expected_sha256 is None  # converted locally: its own sidecar carries the sha256
        assert verify_weights(resolved) == sha
    assert load_model("ovavss-r50").weights_id == "ovavss-r50"
    result = cli("weights", "list")
    assert result.exit_code == 0, result.output
    assert table_row(result.output, "ovavss-r50")[2] == "imported"
    assert table_row(result.output, "hosted")[2] == "imported"


@pytest.mark.parametrize("name", ["", "org/name", ".hidden", "../up"])
def test_import_refuses_a_bad_name(tiny, name):
    with pytest.raises(OvavssError, match="--name: .* is not a valid weights name"):
        import_weights(tiny[0], name)
    assert not store_dir().exists()


def test_import_refuses_to_overwrite_without_force(tiny):
    stored = place_in_store(tiny[0], "mine")
    before = stored.read_bytes()
    with pytest.raises(OvavssError, match="already exists \\(use --force to overwrite\\)"):
        import_weights(tiny[0], "mine")
    assert stored.read_bytes() == before


def test_import_cli_rejects_what_it_cannot_convert(tiny, tmp_path, cli):
    # An ovavss .safetensors is already converted: import only takes official .pth / .pkl layouts.
    result = cli("weights", "import", tiny[0], "--name", "mine")
    assert result.exit_code == 1
    lines = error_lines(result)
    assert len(lines) == 1 and "unrecognised checkpoint layout" in lines[0]
    result = cli("weights", "import", tmp_path / "absent.pth", "--name", "mine")
    assert result.exit_code == 1
    lines = error_lines(result)
    assert len(lines) == 1 and "absent.pth: file not found" in lines[0]
    result = cli("weights", "import", tiny[0], "--name", "a/b")
    assert result.exit_code == 1 and "not a valid weights name" in result.output
    assert not (store_dir() / "mine.safetensors").exists() and not (store_dir() / "mine.json").exists()


# ------------------------------------------------------------------------------------------ CLI


def test_weights_list_shows_where_each_checkpoint_is(monkeypatch, cli):
    use_registry(monkeypatch, HOSTED)
    result = cli("weights", "list")
    assert result.exit_code == 0, result.output
    assert table_row(result.output, "tiny-demo")[1:3] == ["ovavss-tiny", "bundled"]
    assert table_row(result.output, "ovavss-r50")[1:3] == ["ovavss-r50", "not yet: download"]
    assert table_row(result.output, "hosted")[2] == "hf://org/hosted"


def test_weights_download_of_an_hf_id_prints_the_cached_path(tiny, hf_cache, cli):
    snapshot = add_to_hub_cache(hf_cache, "org/repo", {"model.safetensors": tiny[0]})
    result = cli("weights", "download", "hf://org/repo")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(snapshot / "model.safetensors")
    result = cli("weights", "download", "hf://org/elsewhere")
    assert result.exit_code == 1
    lines = error_lines(result)
    assert len(lines) == 1 and lines[0].startswith("error: hf://org/elsewhere/model.safetensors: not in the local")
