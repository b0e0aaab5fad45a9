"""Where weights come from: the registry in ``weights/``, local files, and the Hugging Face Hub.

``--weights`` accepts

* a registry name (``weights/registry.json``), resolved in this order: a file bundled in
  ``weights/``, a checkpoint imported with ``ovavss weights import`` (the local store), then the
  entry's Hub repo through huggingface_hub's cache;
* a local ``.safetensors`` path;
* ``hf://org/repo[/file]`` (file defaults to ``model.safetensors``).

Downloads go through huggingface_hub (so ``HF_HUB_CACHE`` and ``HF_HUB_OFFLINE`` are honoured,
read at call time) and every file with a known sha256 is verified before use.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

from .errors import OvavssError
from .paths import cache_root

DEFAULT_WEIGHTS = "ovavss-r50"
HF_SCHEME = "hf://"
DEFAULT_HF_FILENAME = "model.safetensors"


@dataclass(frozen=True)
class RegistryEntry:
    name: str
    description: str
    preset: str
    license: str
    repo_id: str | None = None  # Hugging Face Hub repo, when the checkpoint is hosted there
    filename: str | None = None  # file in the repo, or in weights/ for a bundled checkpoint
    sha256: str | None = None
    bundled: bool = False
    how_to_get: str = ""  # one line shown when the weights cannot be had
    expected_scores: dict[str, Any] = field(default_factory=dict)
    card: str | None = None  # model card (file in weights/)


@dataclass(frozen=True)
class ResolvedWeights:
    """A local checkpoint file, not yet hashed: loading (``read_checkpoint``) hashes it once and checks
    ``expected_sha256``; :func:`verify_weights` does the same without loading."""

    path: Path
    weights_id: str  # registry name, hf:// id or the file path
    expected_sha256: str | None = None  # the registry's, when it records one
    entry: RegistryEntry | None = None


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


_HASH_CHUNK_BYTES = 1 << 20  # read in 1-MiB pieces: multi-GB checkpoints never sit in memory whole


def weights_dir() -> Path:
    """The ``weights/`` folder (packaged as ``ovavss_cli.weights``; see pyproject.toml)."""
    return Path(str(files("ovavss_cli.weights")))


def load_registry() -> dict[str, RegistryEntry]:
    path = weights_dir() / "registry.json"
    raw = json.loads(path.read_text())
    return {item["name"]: RegistryEntry(**item) for item in raw["weights"]}


def store_dir() -> Path:
    """Where ``ovavss weights import`` puts converted checkpoints."""
    return cache_root() / "weights"


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _hf_download(repo_id: str, filename: str) -> Path:
    """Fetch one file through huggingface_hub's cache (honouring HF_HUB_CACHE / HF_HUB_OFFLINE now)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError, LocalEntryNotFoundError

    try:
        return Path(
            hf_hub_download(
                repo_id, filename, cache_dir=os.environ.get("HF_HUB_CACHE") or None, local_files_only=_offline()
            )
        )
    except LocalEntryNotFoundError:
        reason = "not in the local Hugging Face cache and HF_HUB_OFFLINE is set" if _offline() else "Hub unreachable"
        raise OvavssError(f"hf://{repo_id}/{filename}: {reason}") from None
    except (HfHubHTTPError, HFValidationError, OSError, ValueError) as error:  # ValueError: e.g. '..' in the file
        raise OvavssError(f"hf://{repo_id}/{filename}: download failed ({str(error).splitlines()[0]})") from None


def verify_weights(resolved: ResolvedWeights) -> str:
    """The file's sha256, checked against the registry's when it has one."""
    digest = sha256_file(resolved.path)
    expected = resolved.expected_sha256
    if expected and digest != expected:
        raise OvavssError(
            f"checksum mismatch: sha256 {digest[:12]}… but the registry says {expected[:12]}…", path=resolved.path
        )
    return digest


def _download_sidecar(repo_id: str, filename: str) -> None:
    """Fetch ``<stem>.json`` next to a Hub checkpoint when the repo has one (it carries the config)."""
    sidecar = str(Path(filename).with_suffix(".json"))
    try:
        _hf_download(repo_id, sidecar)
    except OvavssError:
        pass  # the safetensors metadata carries the config too


def resolve_weights(spec: str | os.PathLike | None = None) -> ResolvedWeights:
    """Turn a ``--weights`` value into a local checkpoint file (downloaded when needed)."""
    spec = str(spec or DEFAULT_WEIGHTS)
    if spec.startswith(HF_SCHEME):
        parts = spec[len(HF_SCHEME) :].strip("/").split("/")
        if len(parts) < 2:
            raise OvavssError(f"--weights: '{spec}' must look like hf://org/repo[/file.safetensors]")
        repo_id, filename = "/".join(parts[:2]), "/".join(parts[2:]) or DEFAULT_HF_FILENAME
        path = _hf_download(repo_id, filename)
        _download_sidecar(repo_id, filename)
        return ResolvedWeights(path, spec)
    registry = load_registry()
    if spec in registry:
        return _resolve_registry_entry(registry[spec])
    imported = store_dir() / f"{spec}.safetensors"
    if "/" not in spec and imported.is_file():
        return ResolvedWeights(imported, spec)
    path = Path(spec).expanduser()
    if path.is_file():
        return ResolvedWeights(path, str(path))
    known = ", ".join(sorted(registry))
    raise OvavssError(f"--weights: '{spec}' is neither a file nor a known name (known: {known})")


def _resolve_registry_entry(entry: RegistryEntry) -> ResolvedWeights:
    if entry.bundled and entry.filename:
        return ResolvedWeights(weights_dir() / entry.filename, entry.name, entry.sha256, entry)
    imported = store_dir() / f"{entry.name}.safetensors"
    if imported.is_file():
        return ResolvedWeights(imported, entry.name, None, entry)  # converted locally: its own sidecar has the sha
    if entry.repo_id and entry.filename:
        try:
            path = _hf_download(entry.repo_id, entry.filename)
        except OvavssError as error:
            raise OvavssError(f"weights '{entry.name}': {error} — {entry.how_to_get}") from None
        _download_sidecar(entry.repo_id, entry.filename)
        return ResolvedWeights(path, entry.name, entry.sha256, entry)
    raise OvavssError(f"weights '{entry.name}' are not available locally — {entry.how_to_get}")


def print_registry() -> None:
    """The registry as a table: name, what it is, where it is available now."""
    from rich.table import Table

    from .console import console

    table = Table(title="ovavss weights")
    for column in ("name", "preset", "available", "description"):
        table.add_column(column)
    for entry in load_registry().values():
        if entry.bundled:
            where = "bundled"
        elif (store_dir() / f"{entry.name}.safetensors").is_file():
            where = "imported"
        elif entry.repo_id:
            where = f"hf://{entry.repo_id}"
        else:
            where = "not yet: " + entry.how_to_get
        table.add_row(entry.name, entry.preset, where, entry.description)
    console.print(table)
