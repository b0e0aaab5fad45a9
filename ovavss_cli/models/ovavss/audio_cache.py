"""Content-addressed on-disk cache of per-clip VGGish embeddings (for training with a frozen VGGish).

An entry is keyed by sha256 of (the audio file's bytes, the front-end parameters, the encoder's
weights), so renaming a file keeps its entry, and editing the audio, the front end or the weights
misses. Entries are ``<root>/<key[:2]>/<key>.safetensors`` holding one (pad_to, embed_dim) float32
tensor, written atomically; an unreadable entry is recomputed and replaced.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ...atomic import atomic_path
from ...console import make_progress
from ...data.audio import (
    DEFAULT_LOG_MEL,
    KAISER_BEST,
    REFERENCE_NUM_EXAMPLES,
    LogMelConfig,
    load_audio,
    log_mel_examples,
)
from ...errors import OvavssError
from ..checkpoint import sha256_file

# Bump when the meaning of an entry changes without any of the hashed parameters changing.
CACHE_FORMAT = "ovavss-audio-embeddings/1"
_TENSOR_NAME = "embeddings"


def weights_fingerprint(module: nn.Module) -> str:
    """sha256 over a module's state_dict: names, dtypes, shapes and values, in key order."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        flat = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(flat.view(torch.uint8).numpy().tobytes())  # raw bytes, any dtype
    return digest.hexdigest()


class AudioEmbeddingCache:
    """``cache.embed(audio_path) -> (pad_to, embed_dim)`` float32 CPU embeddings, computed once per content.

    The encoder's weights are fingerprinted when the cache is created: load them first.
    """

    def __init__(
        self,
        root: str | Path,
        encoder: nn.Module,
        *,
        pad_to: int = REFERENCE_NUM_EXAMPLES,
        config: LogMelConfig = DEFAULT_LOG_MEL,
    ):
        self.root = Path(root)
        self.encoder = encoder
        self.pad_to = pad_to
        self.config = config
        settings = {
            "format": CACHE_FORMAT,
            "log_mel": asdict(config),
            "resampler": asdict(KAISER_BEST),
            "pad_to": pad_to,
            "weights": weights_fingerprint(encoder),
        }
        self._settings = json.dumps(settings, sort_keys=True)

    def key(self, audio_path: str | Path) -> str:
        if not Path(audio_path).is_file():
            raise OvavssError("audio file not found", path=audio_path)
        return hashlib.sha256(f"{sha256_file(audio_path)}|{self._settings}".encode()).hexdigest()

    def entry_path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.safetensors"

    def _read(self, entry: Path) -> torch.Tensor | None:
        """The stored embeddings, or None when the entry is missing or unusable."""
        if not entry.is_file():
            return None
        try:
            embeddings = load_file(entry)[_TENSOR_NAME]
        except (SafetensorError, OSError, KeyError):
            return None
        return embeddings if embeddings.dim() == 2 and embeddings.shape[0] == self.pad_to else None

    def _compute(self, audio_path: str | Path) -> torch.Tensor:
        waveform, rate = load_audio(audio_path, target_rate=self.config.sample_rate)
        examples = log_mel_examples(waveform, rate, pad_to=self.pad_to, config=self.config)  # (pad_to, 1, 96, 64)
        device = next(self.encoder.parameters()).device
        # fp32 whatever the caller's autocast, so an entry never depends on the context it was made in.
        with torch.no_grad(), torch.autocast(device.type, enabled=False):
            return self.encoder(examples.to(device)).float().cpu()  # (pad_to, embed_dim)

    def embed(self, audio_path: str | Path) -> torch.Tensor:
        """(pad_to, embed_dim) float32 embeddings of one clip's audio, from the cache when present."""
        return self._embed(audio_path)[0]

    def _embed(self, audio_path: str | Path) -> tuple[torch.Tensor, bool]:
        """The embeddings and whether they had to be computed."""
        entry = self.entry_path(self.key(audio_path))
        cached = self._read(entry)
        if cached is not None:
            return cached, False
        embeddings = self._compute(audio_path)
        with atomic_path(entry) as tmp:
            save_file({_TENSOR_NAME: embeddings.contiguous()}, str(tmp), metadata={"source": Path(audio_path).name})
        return embeddings, True

    def precompute(self, audio_paths: Iterable[str | Path]) -> int:
        """Fill the cache for many clips with a progress bar; returns how many entries were computed."""
        paths = list(audio_paths)
        computed = 0
        with make_progress() as progress:
            task = progress.add_task("Caching audio embeddings", total=len(paths))
            for path in paths:
                computed += self._embed(path)[1]
                progress.advance(task)
        return computed
