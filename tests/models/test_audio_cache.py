"""The per-clip VGGish embedding cache: content keys, hits, invalidation, corrupt entries, atomic files."""

from __future__ import annotations

import shutil

import pytest
import torch
from audio_files import tone, write_pcm16_wav

from ovavss_cli.data.audio import LogMelConfig, load_audio, log_mel_examples
from ovavss_cli.errors import OvavssError
from ovavss_cli.models.layers.vggish import VGGishConfig, build_vggish
from ovavss_cli.models.ovavss.audio_cache import AudioEmbeddingCache, weights_fingerprint

TINY = VGGishConfig(block_widths=(4, 4, 8, 8), hidden_dim=16, embed_dim=8)


@pytest.fixture
def encoder():
    torch.manual_seed(0)
    return build_vggish(TINY)


@pytest.fixture
def clips(tmp_path):
    return [write_pcm16_wav(tmp_path / f"clip{index}.wav", tone(300 * (index + 1), 2.0, 16_000)) for index in range(2)]


def test_embed_computes_the_padded_clip_embeddings(tmp_path, encoder, clips):
    cache = AudioEmbeddingCache(tmp_path / "cache", encoder)
    embeddings = cache.embed(clips[0])
    waveform, rate = load_audio(clips[0])
    with torch.no_grad():
        expected = encoder(log_mel_examples(waveform, rate, pad_to=10))
    assert embeddings.shape == (10, 8) and embeddings.dtype == torch.float32
    torch.testing.assert_close(embeddings, expected, rtol=0, atol=0)
    assert cache.entry_path(cache.key(clips[0])).is_file()


def test_second_call_reads_the_entry_instead_of_recomputing(tmp_path, encoder, clips, monkeypatch):
    cache = AudioEmbeddingCache(tmp_path / "cache", encoder)
    first = cache.embed(clips[0])
    monkeypatch.setattr(cache, "_compute", lambda path: pytest.fail("cache miss on a cached clip"))
    torch.testing.assert_close(cache.embed(clips[0]), first, rtol=0, atol=0)
    # a fresh cache object over the same folder and weights finds it too
    fresh = AudioEmbeddingCache(tmp_path / "cache", encoder)
    monkeypatch.setattr(fresh, "_compute", lambda path: pytest.fail("cache miss across instances"))
    torch.testing.assert_close(fresh.embed(clips[0]), first, rtol=0, atol=0)


def test_key_follows_content_not_name(tmp_path, encoder, clips):
    cache = AudioEmbeddingCache(tmp_path / "cache", encoder)
    renamed = shutil.copy(clips[0], tmp_path / "renamed.wav")
    assert cache.key(renamed) == cache.key(clips[0])
    assert cache.key(clips[1]) != cache.key(clips[0])


def test_key_changes_with_front_end_padding_and_weights(tmp_path, encoder, clips):
    root = tmp_path / "cache"
    base = AudioEmbeddingCache(root, encoder).key(clips[0])
    assert AudioEmbeddingCache(root, encoder, pad_to=5).key(clips[0]) != base
    assert AudioEmbeddingCache(root, encoder, config=LogMelConfig(log_offset=0.001)).key(clips[0]) != base
    with torch.no_grad():
        encoder.embeddings[4].bias.add_(1.0)
    assert AudioEmbeddingCache(root, encoder).key(clips[0]) != base


def test_weights_fingerprint_depends_on_values_only(encoder):
    twin = build_vggish(TINY)
    twin.load_state_dict(encoder.state_dict())
    assert weights_fingerprint(twin) == weights_fingerprint(encoder)
    with torch.no_grad():
        twin.features[0].weight[0, 0, 0, 0] += 1e-3
    assert weights_fingerprint(twin) != weights_fingerprint(encoder)


@pytest.mark.parametrize("garbage", [b"", b"not a safetensors file"], ids=["empty", "garbage"])
def test_corrupt_entry_is_recomputed_and_replaced(tmp_path, encoder, clips, garbage):
    cache = AudioEmbeddingCache(tmp_path / "cache", encoder)
    expected = cache.embed(clips[0])
    entry = cache.entry_path(cache.key(clips[0]))
    entry.write_bytes(garbage)
    torch.testing.assert_close(cache.embed(clips[0]), expected, rtol=0, atol=0)
    assert entry.stat().st_size > 100  # a valid entry again


def test_precompute_counts_new_entries_and_leaves_no_temp_files(tmp_path, encoder, clips):
    cache = AudioEmbeddingCache(tmp_path / "cache", encoder)
    assert cache.precompute(clips) == 2
    assert cache.precompute(clips) == 0
    files = sorted(path.name for path in (tmp_path / "cache").rglob("*") if path.is_file())
    assert files == sorted(f"{cache.key(clip)}.safetensors" for clip in clips)


def test_failed_computation_writes_nothing(tmp_path, encoder):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    cache = AudioEmbeddingCache(tmp_path / "cache", encoder)
    with pytest.raises(OvavssError, match="cannot decode"):
        cache.embed(bad)
    assert not any(path.is_file() for path in (tmp_path / "cache").rglob("*"))


def test_missing_audio_is_a_user_error(tmp_path, encoder):
    cache = AudioEmbeddingCache(tmp_path / "cache", encoder)
    with pytest.raises(OvavssError, match="not found"):
        cache.embed(tmp_path / "missing.wav")
