"""Point sampling: bilinear reads at normalised points, uncertain-point selection, seeding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from engine_toys import bilinear_reference

from ovavss_cli.engine.point_sampling import (
    AUGMENT_STREAM,
    LOSS_STREAM,
    ImportanceSamplingConfig,
    derive_seed,
    importance_points,
    point_sample,
    point_sample_shared,
    sample_generators,
    uniform_points,
)


def test_point_sample_reads_pixel_centres_and_interpolates():
    image = torch.arange(12, dtype=torch.float32).reshape(1, 1, 3, 4)
    centres = torch.tensor([[[(2 + 0.5) / 4, (1 + 0.5) / 3], [(0 + 0.5) / 4, (2 + 0.5) / 3]]])
    assert point_sample(image, centres)[0, 0].tolist() == pytest.approx([6.0, 8.0])
    between = torch.tensor([[[2.0 / 4, (1 + 0.5) / 3]]])  # halfway between columns 1 and 2 of row 1
    assert point_sample(image, between).item() == pytest.approx(5.5)


def test_point_sample_matches_hand_written_bilinear_including_borders():
    generator = torch.Generator().manual_seed(3)
    maps = torch.randn(2, 3, 5, 7, generator=generator)
    coords = torch.rand(2, 50, 2, generator=generator) * 1.2 - 0.1  # some points outside [0, 1]
    got = point_sample(maps, coords)
    assert got.shape == (2, 3, 50)
    for n in range(2):
        for c in range(3):
            expected = [bilinear_reference(maps[n, c].numpy(), x, y) for x, y in coords[n].tolist()]
            np.testing.assert_allclose(got[n, c].numpy(), expected, atol=1e-5)


def test_config_defaults_and_validation():
    config = ImportanceSamplingConfig()
    assert (config.num_points, config.num_candidates, config.num_uncertain, config.num_uniform) == (
        12544,
        37632,
        9408,
        3136,
    )
    with pytest.raises(ValueError):
        ImportanceSamplingConfig(oversample_ratio=0.5)
    with pytest.raises(ValueError):
        ImportanceSamplingConfig(importance_sample_ratio=1.5)
    with pytest.raises(ValueError):
        ImportanceSamplingConfig(num_points=0)


def test_importance_points_keep_the_most_uncertain_candidates_then_fresh_uniform_points():
    config = ImportanceSamplingConfig(num_points=40, oversample_ratio=3.0, importance_sample_ratio=0.75)
    logits = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 4
    points = importance_points(logits, config, torch.Generator().manual_seed(11))
    assert points.shape == (3, 40, 2)

    # Replay the documented draw order: all candidates, then the uniform extras.
    replay = torch.Generator().manual_seed(11)
    candidates = uniform_points(3, config.num_candidates, replay, torch.device("cpu"))
    extra = uniform_points(3, config.num_uniform, replay, torch.device("cpu"))
    torch.testing.assert_close(points[:, config.num_uncertain :], extra, rtol=0, atol=0)

    uncertainty = -point_sample(logits, candidates)[:, 0].abs()
    chosen = -point_sample(logits, points[:, : config.num_uncertain])[:, 0].abs()
    for row in range(3):
        # Every chosen candidate is at least as uncertain as every candidate left out.
        threshold = uncertainty[row].sort(descending=True).values[config.num_uncertain - 1]
        assert bool((chosen[row] >= threshold - 1e-6).all())
        # And the chosen points are candidates, not new draws.
        matches = (points[row, : config.num_uncertain, None, :] == candidates[row, None, :, :]).all(-1).any(-1)
        assert bool(matches.all())


def test_points_depend_only_on_the_generator():
    config = ImportanceSamplingConfig(num_points=16)
    logits = torch.randn(2, 1, 6, 6)
    a = importance_points(logits, config, torch.Generator().manual_seed(5))
    torch.manual_seed(123)  # the global RNG must play no part
    torch.rand(10)
    b = importance_points(logits, config, torch.Generator().manual_seed(5))
    c = importance_points(logits, config, torch.Generator().manual_seed(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_derive_seed_is_stable_and_distinct():
    seeds = {derive_seed(42, step, sample) for step in range(20) for sample in range(5)}
    assert len(seeds) == 100
    assert all(0 <= s < 2**63 for s in seeds)
    assert derive_seed(42, 7, 3) == derive_seed(42, 7, 3)
    assert derive_seed(42, 7, 3) != derive_seed(43, 7, 3)
    assert derive_seed(42, 7, 3, AUGMENT_STREAM) != derive_seed(42, 7, 3, LOSS_STREAM) == derive_seed(42, 7, 3)
    with pytest.raises(ValueError):
        derive_seed(42, -1, 0)
    generators = sample_generators(42, 7, [3, 9])
    for generator, sample in zip(generators, [3, 9], strict=True):
        expected = torch.Generator().manual_seed(derive_seed(42, 7, sample))
        assert torch.equal(torch.rand(4, generator=generator), torch.rand(4, generator=expected))


def test_point_sample_reads_low_precision_maps_in_float32():
    maps = torch.randn(1, 2, 5, 5).to(torch.bfloat16)
    coords = torch.rand(1, 30, 2, generator=torch.Generator().manual_seed(1))
    got = point_sample(maps, coords)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, point_sample(maps.float(), coords), rtol=0, atol=0)
    assert point_sample(torch.ones(1, 1, 4, 4, dtype=torch.bool), torch.full((1, 1, 2), 0.5)).item() == 1.0


def test_shared_points_read_like_per_map_points():
    maps = torch.randn(6, 9, 11, generator=torch.Generator().manual_seed(2))
    coords = torch.rand(40, 2, generator=torch.Generator().manual_seed(3))
    shared = point_sample_shared(maps, coords)
    assert shared.shape == (6, 40)
    torch.testing.assert_close(shared, point_sample(maps[None], coords[None])[0], rtol=0, atol=0)
