"""Set criterion on tiny clips: near-zero for perfect predictions, deep supervision, empty clips, supervised
frames, ignore, the batch identity and seeding."""

from __future__ import annotations

import math

import pytest
import torch
from engine_toys import block_masks, concat_outputs, confident_logits, random_clip

from ovavss_cli.engine.criterion import CriterionConfig, build_criterion, count_objects, dice, mask_bce
from ovavss_cli.engine.matcher import ClipTarget
from ovavss_cli.engine.point_sampling import ImportanceSamplingConfig

T, SIZE, QUERIES = 3, 16, 6


def small_criterion(importance: float = 0.75, deep_supervision: bool = True, points: int = 64):
    sampling = ImportanceSamplingConfig(num_points=points, importance_sample_ratio=importance)
    return build_criterion(CriterionConfig(matcher_points=128, sampling=sampling, deep_supervision=deep_supervision))


def seeded(*seeds: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed) for seed in seeds]


def test_row_losses_match_hand_computed_values():
    logits = torch.tensor([[0.0, 2.0, -1.0]])
    labels = torch.tensor([[1.0, 0.0, 0.5]])
    weights = torch.tensor([[1.0, 1.0, 0.0]])
    bce = [math.log(2.0), math.log(1 + math.exp(2.0))]  # the third point has weight 0
    assert mask_bce(logits, labels, weights).item() == pytest.approx(sum(bce) / 3)
    probs = [0.5, 1 / (1 + math.exp(-2.0))]
    expected_dice = 1 - (2 * probs[0] * 1.0 + 1) / (sum(probs) + 1.0 + 1)
    assert dice(logits, labels, weights).item() == pytest.approx(expected_dice)
    # Exact labels predicted with high confidence cost (almost) nothing.
    sure = torch.tensor([[30.0, -30.0, 30.0]])
    exact = torch.tensor([[1.0, 0.0, 1.0]])
    assert mask_bce(sure, exact, torch.ones(1, 3)).item() < 1e-9
    assert dice(sure, exact, torch.ones(1, 3)).item() < 1e-9


def perfect_and_wrong(gt: torch.Tensor) -> tuple[dict, dict]:
    """Outputs with one exact, confident query per object (and sure "no object" elsewhere), and the same
    outputs with every mask inverted."""
    pred = confident_logits(torch.zeros(QUERIES, *gt.shape[1:]))
    logits = torch.tensor([[-10.0, 10.0]]).repeat(QUERIES, 1)
    for obj, slot in enumerate([1, 4][: gt.shape[0]]):
        pred[slot] = confident_logits(gt[obj])
        logits[slot] = torch.tensor([10.0, -10.0])
    perfect = {"pred_logits": logits[None], "pred_masks": pred[None]}
    wrong = {"pred_logits": logits[None], "pred_masks": -pred[None]}
    return perfect, wrong


def test_perfect_predictions_cost_almost_nothing():
    """Exactly zero is impossible: the GT is read bilinearly, so labels are soft within half a pixel of object
    edges (and of the zero-padded border), where no confident logit fits. So the perfect loss is small next to
    a wrong one, and halves when the same objects are drawn at twice the resolution (the edge band halves)."""
    gt = block_masks(2, T, 32, torch.Generator().manual_seed(0))
    target = ClipTarget(torch.zeros(2, dtype=torch.int64), gt)
    fine_gt = gt.repeat_interleave(2, dim=-1).repeat_interleave(2, dim=-2)  # same objects at 64 x 64
    fine_target = ClipTarget(target.labels, fine_gt)
    criterion = small_criterion(importance=0.0, points=1024)  # uniform points: importance sampling seeks edges
    perfect, wrong = perfect_and_wrong(gt)
    good = criterion(perfect, [target], seeded(1)).terms
    bad = criterion(wrong, [target], seeded(1)).terms
    fine = criterion(perfect_and_wrong(fine_gt)[0], [fine_target], seeded(1)).terms
    assert good["loss_ce"].item() < 1e-4
    assert good["loss_mask"].item() < 0.02 * bad["loss_mask"].item()
    assert good["loss_dice"].item() < 0.1 * bad["loss_dice"].item()
    assert bad["loss_dice"].item() > 2.0  # 3 frames of an inverted mask: dice near 1 each
    for name in ("loss_mask", "loss_dice"):
        assert fine[name].item() < 0.6 * good[name].item()


def test_deep_supervision_sums_every_output_with_the_same_weights():
    outputs, target = random_clip(2, QUERIES, T, SIZE, seed=1)
    loss = small_criterion()(outputs, [target], seeded(5))
    names = {f"loss_{kind}{suffix}" for kind in ("ce", "mask", "dice") for suffix in ("", "_0", "_1")}
    assert set(loss.terms) == names
    weights = {"ce": 2.0, "mask": 5.0, "dice": 5.0}
    expected = sum(weights[name.split("_")[1]] * value for name, value in loss.terms.items())
    torch.testing.assert_close(loss.total, expected)

    final_only = small_criterion(deep_supervision=False)(outputs, [target], seeded(5))
    assert set(final_only.terms) == {"loss_ce", "loss_mask", "loss_dice"}
    for name, value in final_only.terms.items():  # the final output draws first, so its points are the same
        assert torch.equal(value, loss.terms[name])
    assert final_only.total.item() < loss.total.item()


def test_empty_clips():
    outputs, _ = random_clip(0, QUERIES, T, SIZE, seed=2)
    outputs["pred_masks"].requires_grad_(True)
    outputs["pred_logits"].requires_grad_(True)
    empty = ClipTarget(torch.zeros(0, dtype=torch.int64), torch.zeros(0, T, SIZE, SIZE))
    loss = small_criterion(deep_supervision=False)(outputs, [empty], seeded(0))
    assert loss.terms["loss_mask"].item() == 0.0 and loss.terms["loss_dice"].item() == 0.0
    # Every query is pushed to "no object"; with one class weight the weighted mean is the plain mean.
    expected_ce = -outputs["pred_logits"][0].log_softmax(-1)[:, 1].mean()
    torch.testing.assert_close(loss.terms["loss_ce"], expected_ce)
    loss.total.backward()
    assert outputs["pred_masks"].grad is not None and not outputs["pred_masks"].grad.any()
    assert outputs["pred_logits"].grad.abs().sum() > 0

    # An empty clip beside a real one leaves the real one's mask terms exactly as they are alone.
    other, target = random_clip(2, QUERIES, T, SIZE, seed=3)
    both = small_criterion()(concat_outputs(outputs, other), [empty, target], seeded(0, 4))
    alone = small_criterion()(other, [target], seeded(4))
    for kind in ("loss_mask", "loss_dice", "loss_mask_1"):
        torch.testing.assert_close(both.terms[kind], alone.terms[kind])


def test_unsupervised_frames_contribute_nothing():
    outputs, target = random_clip(2, QUERIES, T, SIZE, seed=4, frame_valid=[True, False, False])
    criterion = small_criterion()
    masks = outputs["pred_masks"].requires_grad_(True)
    loss = criterion(outputs, [target], seeded(7))
    loss.total.backward()
    assert not masks.grad[:, :, 1:].any()
    assert masks.grad[:, :, 0].abs().sum() > 0

    noisy = {**outputs, "pred_masks": masks.detach().clone()}
    noisy["pred_masks"][:, :, 1:] = torch.randn_like(noisy["pred_masks"][:, :, 1:]) * 100
    again = criterion(noisy, [target], seeded(7))
    for name, value in loss.terms.items():
        assert torch.equal(value, again.terms[name]), name


def test_masking_a_v1s_clip_equals_slicing_it_to_its_annotated_frame():
    """The reference slices v1s clips to frame 0 (batch size 1 only); masking must give the same loss."""
    outputs, target = random_clip(2, QUERIES, T, SIZE, seed=5, frame_valid=[True, False, False])
    criterion = small_criterion()
    masked = criterion(outputs, [target], seeded(3))

    def first_frame(layer: dict) -> dict:
        return {"pred_logits": layer["pred_logits"], "pred_masks": layer["pred_masks"][:, :, :1]}

    sliced_outputs = first_frame(outputs)
    sliced_outputs["aux_outputs"] = [first_frame(layer) for layer in outputs["aux_outputs"]]
    sliced_target = ClipTarget(target.labels, target.masks[:, :1])
    sliced = criterion(sliced_outputs, [sliced_target], seeded(3))
    for name, value in masked.terms.items():
        torch.testing.assert_close(value, sliced.terms[name], rtol=1e-6, atol=1e-7)


def test_a_batch_of_two_equals_the_two_clips_alone():
    """With per-clip generators, loss(A, B) * (n_A + n_B) == loss(A) * n_A + loss(B) * n_B for the mask terms,
    and the same with the class-weight sums W for the class term (see the criterion's docstring)."""
    clip_a, target_a = random_clip(2, QUERIES, T, SIZE, seed=6, frame_valid=[True, False, False])  # v1s-like
    clip_b, target_b = random_clip(3, QUERIES, T, SIZE, seed=7)
    criterion = small_criterion()
    alone_a = criterion(clip_a, [target_a], seeded(11)).terms
    alone_b = criterion(clip_b, [target_b], seeded(12)).terms
    batch = criterion(concat_outputs(clip_a, clip_b), [target_a, target_b], seeded(11, 12)).terms

    n_a, n_b = 2, 3
    w_a, w_b = (n + 0.1 * (QUERIES - n) for n in (n_a, n_b))
    assert len(batch) == 9
    for name in batch:
        scale_a, scale_b = (w_a, w_b) if name.startswith("loss_ce") else (n_a, n_b)
        combined = batch[name] * (scale_a + scale_b)
        separate = alone_a[name] * scale_a + alone_b[name] * scale_b
        torch.testing.assert_close(combined, separate, rtol=1e-5, atol=1e-6, msg=name)


def test_losses_depend_only_on_the_given_generators():
    outputs, target = random_clip(2, QUERIES, T, SIZE, seed=8)
    criterion = small_criterion()
    first = criterion(outputs, [target], seeded(21)).terms
    torch.manual_seed(999)  # the global RNG plays no part
    torch.rand(100)
    second = criterion(outputs, [target], seeded(21)).terms
    other = criterion(outputs, [target], seeded(22)).terms
    assert all(torch.equal(first[name], second[name]) for name in first)
    assert not torch.equal(first["loss_mask"], other["loss_mask"])


def test_mask_terms_sum_over_frames_and_divide_by_objects_only():
    """The normaliser is the number of objects, not objects x frames: three identical supervised frames
    cost three times one frame (up to the different random points)."""
    gt = block_masks(1, 1, SIZE, torch.Generator().manual_seed(9)).repeat(1, T, 1, 1)
    pred = torch.randn(QUERIES, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(10)).repeat(1, T, 1, 1)
    outputs = {"pred_logits": torch.zeros(1, QUERIES, 2), "pred_masks": pred[None]}
    criterion = small_criterion(importance=0.0, deep_supervision=False, points=4096)
    labels = torch.zeros(1, dtype=torch.int64)
    all_frames = criterion(outputs, [ClipTarget(labels, gt)], seeded(1)).terms
    one_frame = criterion(outputs, [ClipTarget(labels, gt, torch.tensor([True, False, False]))], seeded(1)).terms
    for name in ("loss_mask", "loss_dice"):
        assert all_frames[name].item() == pytest.approx(3 * one_frame[name].item(), rel=0.05)


def test_ignored_pixels_are_not_supervised():
    outputs, target = random_clip(2, QUERIES, T, SIZE, seed=11)
    ignore = torch.zeros(T, SIZE, SIZE, dtype=torch.bool)
    ignore[:, :, : SIZE // 2] = True
    ignored = ClipTarget(target.labels, target.masks, ignore=ignore)
    # Predictions are at half resolution: change only pixels whose bilinear reads lie inside the ignored half.
    changed = {**outputs, "pred_masks": outputs["pred_masks"].clone()}
    changed["pred_masks"][..., 1:-1, 1 : SIZE // 4 - 1] += 5.0
    # Uniform points, so that the change cannot move the points themselves.
    criterion = small_criterion(importance=0.0, deep_supervision=False)
    before = criterion(outputs, [ignored], seeded(2)).terms
    after = criterion(changed, [ignored], seeded(2)).terms
    assert all(torch.equal(before[name], after[name]) for name in before)
    plain_before = criterion(outputs, [target], seeded(2)).terms
    plain_after = criterion(changed, [target], seeded(2)).terms
    assert not torch.equal(plain_before["loss_mask"], plain_after["loss_mask"])


def test_object_count_is_at_least_one():
    empty = ClipTarget(torch.zeros(0, dtype=torch.int64), torch.zeros(0, T, 4, 4))
    two = ClipTarget(torch.zeros(2, dtype=torch.int64), torch.zeros(2, T, 4, 4))
    assert count_objects([empty], torch.device("cpu")) == 1.0
    assert count_objects([two, empty, two], torch.device("cpu")) == 4.0


def _count_on_rank(rank: int, store_path: str, counts: list[int], results) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", store=dist.FileStore(store_path, 2), rank=rank, world_size=2)
    try:
        targets = [ClipTarget(torch.zeros(counts[rank], dtype=torch.int64), torch.zeros(counts[rank], 1, 4, 4))]
        results.put((rank, count_objects(targets, torch.device("cpu"))))
    finally:
        dist.destroy_process_group()


def test_object_count_is_averaged_over_ranks(tmp_path):
    """Two gloo ranks with 1 and 4 objects both normalise by (1 + 4) / 2, as the reference does."""
    context = torch.multiprocessing.get_context("fork")  # CPU only, so forking a torch process is safe and fast
    results = context.Queue()
    processes = [
        context.Process(target=_count_on_rank, args=(rank, str(tmp_path / "store"), [1, 4], results))
        for rank in range(2)
    ]
    for process in processes:
        process.start()
    counts = dict(results.get(timeout=120) for _ in processes)
    for process in processes:
        process.join(timeout=60)
    assert [process.exitcode for process in processes] == [0, 0]
    assert counts == {0: 2.5, 1: 2.5}
