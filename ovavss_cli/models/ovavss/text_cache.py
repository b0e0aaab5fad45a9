"""A two-level cache (memory, then disk) of CLIP text embeddings: one prompt-ensembled vector per class name.

Encoding the 70 AVSS names with the 14 ViLD templates costs ~40 s on a 2-core CPU, so the vectors are
kept across runs. A key covers everything a vector depends on:

- the CLIP architecture name;
- a fingerprint of the text-tower weights, so that random, test or fine-tuned weights never reuse the
  official weights' vectors (and the other way round);
- the prompt templates (their text, not only the set's name);
- the class name, verbatim.

Files live in ``$OVAVSS_CACHE_DIR`` (else ``~/.cache/ovavss``) under ``text-embeddings/``, one small
safetensors file per key, written atomically. A cache that cannot be written degrades to memory only.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ...atomic import atomic_path
from ...paths import cache_root

# Bump when the meaning of a cached vector changes (e.g. a different ensembling rule).
CACHE_FORMAT_VERSION = 1

_TENSOR_NAME = "embedding"


def is_text_tower_tensor(name: str) -> bool:
    """Whether a CLIP state_dict entry feeds ``encode_text`` (everything but the image tower and the logit scale)."""
    return not name.startswith("visual.") and name not in ("logit_scale", "logit_bias")


def text_tower_fingerprint(clip: nn.Module) -> str:
    """sha256 over the names, dtypes, shapes and bytes of the text-tower tensors (~0.5 s for ViT-B/16 on CPU)."""
    digest = hashlib.sha256()
    for name, tensor in clip.state_dict().items():
        if not is_text_tower_tensor(name):
            continue
        data = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{data.dtype}|{tuple(data.shape)}|".encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def text_embedding_key(model_name: str, weights_fingerprint: str, templates: Sequence[str], name: str) -> str:
    """The cache key (a hex digest) of one class name's embedding."""
    payload = json.dumps([CACHE_FORMAT_VERSION, model_name, weights_fingerprint, list(templates), name])
    return hashlib.sha256(payload.encode()).hexdigest()


class TextEmbeddingCache:
    """Memory + disk cache of 1-D float32 text embeddings, addressed by :func:`text_embedding_key`.

    ``directory=None`` resolves :func:`cache_root` at each disk access, so setting
    ``$OVAVSS_CACHE_DIR`` after the model was built still takes effect. ``use_disk=False`` keeps
    everything in memory. ``stats`` counts ``memory_hits``, ``disk_hits`` and ``misses``.
    """

    def __init__(self, directory: str | Path | None = None, use_disk: bool = True):
        self._directory = Path(directory) if directory is not None else None
        self.use_disk = use_disk
        self._memory: dict[str, torch.Tensor] = {}
        self.stats: Counter[str] = Counter()

    @property
    def directory(self) -> Path:
        return (self._directory or cache_root()) / "text-embeddings"

    def path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.safetensors"

    def get(self, key: str) -> torch.Tensor | None:
        """The cached embedding (CPU float32) or None; an unreadable file counts as a miss."""
        if key in self._memory:
            self.stats["memory_hits"] += 1
            return self._memory[key]
        if self.use_disk and (path := self.path(key)).is_file():
            try:
                embedding = load_file(path)[_TENSOR_NAME]
            except (OSError, SafetensorError, KeyError):
                embedding = None  # truncated or foreign file: recompute and overwrite it
            if embedding is not None and embedding.dim() == 1:
                self.stats["disk_hits"] += 1
                self._memory[key] = embedding
                return embedding
        self.stats["misses"] += 1
        return None

    def put(self, key: str, embedding: torch.Tensor, description: dict[str, str] | None = None) -> None:
        """Store one embedding; ``description`` goes into the file's metadata for people reading the cache."""
        embedding = embedding.detach().to("cpu", torch.float32).contiguous().clone()
        self._memory[key] = embedding
        if not self.use_disk:
            return
        path = self.path(key)
        try:
            with atomic_path(path) as tmp:
                save_file({_TENSOR_NAME: embedding}, str(tmp), metadata=description or {})
        except OSError as error:
            self.use_disk = False
            warnings.warn(
                f"{self.directory}: text-embedding cache is not writable ({error}); keeping embeddings in memory only",
                stacklevel=2,
            )
