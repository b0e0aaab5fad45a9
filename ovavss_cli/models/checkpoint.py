"""The ovavss checkpoint format: a ``.safetensors`` file plus a ``.json`` sidecar.

* ``X.safetensors``: the tensors (our key names), with metadata ``format``, ``kind`` and the model
  ``config`` as JSON, so a lone file still loads.
* ``X.json``: the same config, the file's sha256, where it came from (source file + sha256) and the
  conversion report. When the sidecar exists, loading verifies the sha256.

``kind`` is ``model`` (a full model), ``init`` (a partial state for training initialisation, e.g.
converted Mask2Former COCO weights) or ``vggish`` (audio encoder weights only).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from ..atomic import atomic_path, atomic_write_text
from ..errors import OvavssError
from ..hub import sha256_file
from .interface import SegmentationModel

FORMAT = "ovavss/1"
KINDS = ("model", "init", "vggish")


def sidecar_path(path: str | Path) -> Path:
    return Path(path).with_suffix(".json")


@dataclass
class Checkpoint:
    state: dict[str, torch.Tensor]
    kind: str
    config: dict[str, Any]
    sha256: str
    path: Path
    info: dict[str, Any] = field(default_factory=dict)  # source, report, extra (from the sidecar)


def save_checkpoint(
    path: str | Path,
    state: dict[str, torch.Tensor],
    *,
    kind: str,
    config: dict[str, Any],
    info: dict[str, Any] | None = None,
) -> str:
    """Write ``path`` (.safetensors) and its sidecar atomically; return the file's sha256."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    path = Path(path)
    if path.suffix != ".safetensors":
        raise OvavssError("checkpoint file name must end in .safetensors", path=path)
    tensors = {key: value.detach().to("cpu").contiguous() for key, value in state.items()}
    metadata = {"format": FORMAT, "kind": kind, "config": json.dumps(config, sort_keys=True)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
        _sort_header_metadata(tmp)
        digest = sha256_file(tmp)
    sidecar = {"format": FORMAT, "kind": kind, "sha256": digest, "config": config, **(info or {})}
    atomic_write_text(sidecar_path(path), json.dumps(sidecar, indent=2, sort_keys=True) + "\n")
    return digest


def _sort_header_metadata(path: Path) -> None:
    """Rewrite the header of the safetensors file ``path`` with its metadata keys sorted, in place.

    safetensors writes its metadata from a Rust ``HashMap``, in a different order on every call, so the
    same tensors and config would get a different sha256 each time; sorted, a seeded recipe's file is
    byte-identical on every run. Same keys, same escaping: the header keeps its length."""
    with path.open("r+b") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
        header["__metadata__"] = dict(sorted(header.get("__metadata__", {}).items()))
        text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
        if len(text) > length:
            raise RuntimeError(f"{path}: sorted safetensors header grew from {length} to {len(text)} bytes")
        handle.seek(8)
        handle.write(text.ljust(length))  # the format pads its header with spaces


def read_checkpoint(path: str | Path, *, expected_sha256: str | None = None) -> Checkpoint:
    """Load an ovavss checkpoint, verifying its sha256 against the sidecar (and ``expected_sha256``)."""
    path = Path(path)
    if not path.is_file():
        raise OvavssError("checkpoint not found", path=path)
    digest = sha256_file(path)
    if expected_sha256 is not None and digest != expected_sha256:
        raise OvavssError(f"checksum mismatch: sha256 {digest[:12]}… but expected {expected_sha256[:12]}…", path=path)
    info: dict[str, Any] = {}
    sidecar = sidecar_path(path)
    if sidecar.is_file():
        try:
            info = json.loads(sidecar.read_text())
        except json.JSONDecodeError as error:
            raise OvavssError(f"invalid JSON sidecar ({error.msg})", path=sidecar) from None
        if info.get("sha256") not in (None, digest):
            raise OvavssError(f"checksum mismatch: file sha256 {digest[:12]}… differs from {sidecar.name}", path=path)
    metadata = read_metadata(path)
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise OvavssError(f"not a readable safetensors file ({error})", path=path) from None
    # What is built comes from the hashed file alone; a sidecar saying otherwise was edited or belongs elsewhere.
    config = json.loads(metadata.get("config", "{}"))
    if "config" in info and info["config"] != config:
        raise OvavssError(f"{sidecar.name}'s config differs from the one in the checkpoint", path=sidecar)
    kind = metadata.get("kind", "model")
    return Checkpoint(state=state, kind=kind, config=config, sha256=digest, path=path, info=info)


def read_metadata(path: str | Path) -> dict[str, str]:
    """The header metadata of an ovavss checkpoint (``format``, ``kind``, ``config``), without its tensors."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError) as error:
        raise OvavssError(f"not a readable safetensors file ({error})", path=path) from None
    if metadata.get("format") != FORMAT:
        raise OvavssError(f"not an ovavss checkpoint (format {metadata.get('format')!r})", path=path)
    return metadata


def load_state(model: SegmentationModel, state: dict[str, torch.Tensor], source: str | Path) -> None:
    """Strict load: every tensor must fit; only what the model fetches itself
    (``model.fetched_state_prefixes()``, e.g. CLIP from open_clip) may be absent."""
    fetched = model.fetched_state_prefixes()
    result = model.load_state_dict(state, strict=False)
    missing = [key for key in result.missing_keys if not (fetched and key.startswith(fetched))]
    if missing or result.unexpected_keys:
        problems = []
        if missing:
            problems.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if result.unexpected_keys:
            problems.append(f"{len(result.unexpected_keys)} unexpected (e.g. {result.unexpected_keys[0]})")
        raise OvavssError(f"weights do not fit the model: {', '.join(problems)}", path=source)
