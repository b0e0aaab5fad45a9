"""DecodedClipCache: one byte bound, first clips kept, every read deterministic."""

from dataclasses import dataclass

from ovavss_cli.data.clip_cache import DecodedClipCache


@dataclass
class Blob:
    index: int
    nbytes: int


def test_keeps_clips_while_they_fit_and_reads_the_rest_each_time():
    reads = []

    def read(index):
        reads.append(index)
        return Blob(index, 40)

    cache = DecodedClipCache(max_bytes=100)
    assert [cache.get(i, read).index for i in (0, 1, 2, 0, 1, 2)] == [0, 1, 2, 0, 1, 2]
    assert reads == [0, 1, 2, 2]  # 0 and 1 fit (80 bytes); 2 would make 120, so it is read again
    assert len(cache) == 2 and cache.used_bytes == 80
