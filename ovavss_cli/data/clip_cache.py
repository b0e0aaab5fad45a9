"""Decoded training clips kept in memory, bounded by bytes (one kind of bound for every training task)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

#: Decoded clips kept in memory per process: all of a generated dataset, part of AVSBench.
DECODED_CACHE_BYTES = 2 << 30


class Sized(Protocol):
    @property
    def nbytes(self) -> int: ...


Clip = TypeVar("Clip", bound=Sized)


class DecodedClipCache(Generic[Clip]):
    """``cache.get(i, read)``: clip i, read once and kept while the clips kept so far fit in ``max_bytes``
    (the first ones read stay; a dataset's ``__getitem__`` stays deterministic either way)."""

    def __init__(self, max_bytes: int = DECODED_CACHE_BYTES):
        self.max_bytes = max_bytes
        self.used_bytes = 0
        self._clips: dict[int, Clip] = {}

    def __len__(self) -> int:
        return len(self._clips)

    def get(self, index: int, read: Callable[[int], Clip]) -> Clip:
        if index in self._clips:
            return self._clips[index]
        clip = read(index)
        if self.used_bytes + clip.nbytes <= self.max_bytes:
            self._clips[index] = clip
            self.used_bytes += clip.nbytes
        return clip
