"""The OV-AVSS training task on generated AVSS trees: targets per clip (frames, audio, objects, supervised frames,
ignored and filtered pixels), batch = its clips, and the weights a run starts from (--init, --vggish)."""

from __future__ import annotations

import pickle
from dataclasses import replace

import numpy as np
import pytest
import torch
from train_kit import make_tree, tiny_config

from ovavss_cli.data.audio import log_mel_examples
from ovavss_cli.data.avsbench import load_avss
from ovavss_cli.data.classes import class_id
from ovavss_cli.data.synthetic import ClipSpec
from ovavss_cli.engine.augment import AugmentConfig
from ovavss_cli.engine.ovavss_task import OVAVSSTask
from ovavss_cli.engine.point_sampling import AUGMENT_STREAM, sample_generators
from ovavss_cli.engine.run_config import tiny_recipe
from ovavss_cli.errors import OvavssError
from ovavss_cli.models.api import create_model, load_model, model_checkpoint_config
from ovavss_cli.models.checkpoint import save_checkpoint
from ovavss_cli.models.convert import NEW_IN_OVAVSS
from ovavss_cli.models.ovavss.config import preset_config
from ovavss_cli.models.preprocess import PIXEL_MEAN, PIXEL_STD

SPECS = [
    ClipSpec("one_v1s_0_5000", "v1s", "train", ("boy",)),
    ClipSpec("two_v1m_1", "v1m", "train", ("bird",)),
    ClipSpec("three_v2_0_10000", "v2", "train", ("airplane", "boat")),
    ClipSpec("mixed_v1m_2", "v1m", "train", ("baby", "accordion")),  # accordion is a novel class
    ClipSpec("held_v1m_3", "v1m", "val", ("bell",)),
]
#: No resizing and no flip: targets can be compared with the files pixel for pixel.
IDENTITY_AUGMENT = AugmentConfig(short_edges=(64,), flip_prob=0.0)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_tree(tmp_path_factory.mktemp("task"), SPECS, rule="ignore-novel", quirks="background-row,label-noise")


def make_task(tree, tmp_path, augment=IDENTITY_AUGMENT, **overrides) -> OVAVSSTask:
    recipe = replace(tiny_recipe(), augment=augment, **overrides)
    task = OVAVSSTask(tiny_config(*tree, tmp_path / "run", recipe=recipe))
    torch.manual_seed(0)
    task.build_model()
    return task


def unnormalise(images: torch.Tensor) -> np.ndarray:
    """(T, 3, H, W) normalised frames -> (T, H, W, 3) uint8, as they were before normalisation."""
    mean, std = torch.tensor(PIXEL_MEAN).view(3, 1, 1), torch.tensor(PIXEL_STD).view(3, 1, 1)
    return (images * std + mean).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def sample(task: OVAVSSTask, dataset, uid: str, step: int = 0):
    index = [clip.uid for clip in task.train_clips].index(uid)
    generators = sample_generators(7, step, [index], AUGMENT_STREAM)
    return dataset[index], task.collate([dataset[index]], generators)


def test_targets_follow_the_files_frame_by_frame(tree, tmp_path):
    task = make_task(tree, tmp_path)
    dataset = task.train_dataset()
    avss = load_avss(tree[0])

    # v1s train: 5 frames, annotated on frame 0 only -> one object supervised on frame 0, masked elsewhere.
    item, batch = sample(task, dataset, "one_v1s_0_5000")
    target = batch.targets[0]
    # the tiny preset's audio encoder trains: the batch carries log-mel examples, embedded in the step
    assert batch.images.shape == (1, 5, 3, 64, 96) and batch.audio.shape == (1, 5, 1, 96, 64)
    assert target.frame_valid.tolist() == [True, False, False, False, False]
    gt = avss.read_labels(avss.clip("one_v1s_0_5000"), 0).ids == class_id("boy")
    assert target.num_objects == 1 and gt.any()
    assert np.array_equal(target.masks[0, 0].numpy(), gt) and not target.masks[0, 1:].any()
    assert np.array_equal(unnormalise(batch.images[0]), avss.read_frames(avss.clip("one_v1s_0_5000")))

    # v2: 10 frames -> 5 sorted ones; audio and masks come from the same frame numbers as the images.
    clip = avss.clip("three_v2_0_10000")
    frames = avss.read_frames(clip)
    item, batch = sample(task, dataset, "three_v2_0_10000", step=3)
    shown = unnormalise(batch.images[0])
    chosen = [next(i for i in range(10) if np.array_equal(frames[i], image)) for image in shown]
    assert chosen == sorted(set(chosen)) and len(chosen) == 5
    assert torch.equal(batch.audio[0], item.audio[chosen])
    target = batch.targets[0]
    assert target.frame_valid.all() and target.num_objects == 2
    for t, frame in enumerate(chosen):
        ids = avss.read_labels(clip, frame).ids
        expected = [ids == class_id("airplane"), ids == class_id("boat")]
        assert all(np.array_equal(target.masks[n, t].numpy(), expected[n]) for n in range(2))
    other_step = sample(task, dataset, "three_v2_0_10000", step=4)[1]
    assert not torch.equal(other_step.audio, batch.audio)  # another step, another frame subset (for this seed)


def test_a_frozen_audio_encoder_gets_cached_embeddings(tree, tmp_path):
    recipe = replace(tiny_recipe(), augment=IDENTITY_AUGMENT)
    task = OVAVSSTask(tiny_config(*tree, tmp_path / "run", recipe=recipe))
    task.model_config.freeze_audio_encoder = True  # as the r50 / swinb presets freeze the released VGGish
    torch.manual_seed(0)
    model = task.build_model()
    dataset = task.train_dataset()
    item, batch = sample(task, dataset, "one_v1s_0_5000")
    assert batch.audio.shape == (1, 5, 32)  # embeddings, computed once into the cache
    avss = load_avss(tree[0])
    waveform, rate = avss.read_audio(avss.clip("one_v1s_0_5000"))
    with torch.no_grad():
        expected = model.audio_encoder(log_mel_examples(waveform, rate)[:5])
    assert torch.allclose(batch.audio[0], expected, atol=1e-6)


def test_novel_pixels_are_ignored_noise_is_background_and_empty_clips_are_dropped(tree, tmp_path):
    task = make_task(tree, tmp_path)
    uids = [clip.uid for clip in task.train_clips]
    assert not any("bgr" in uid for uid in uids) and task.dropped_empty == 1  # the background-row clip
    avss = load_avss(tree[0])

    dataset = task.train_dataset()
    _, batch = sample(task, dataset, "mixed_v1m_2")
    target = batch.targets[0]
    ids = np.stack([avss.read_labels(avss.clip("mixed_v1m_2"), t).ids for t in range(5)])
    assert target.num_objects == 1 and np.array_equal(target.masks[0].numpy(), ids == class_id("baby"))
    assert np.array_equal(target.ignore.numpy(), ids == class_id("accordion")) and target.ignore.any()

    # label-noise: 8 pixels of a class not in a_obj in frame 1 of the first fully annotated clip (two_v1m_1).
    noisy = avss.read_labels(avss.clip("two_v1m_1"), 1).ids
    assert set(np.unique(noisy)) - {0, class_id("bird")}
    _, batch = sample(task, dataset, "two_v1m_1")
    assert batch.targets[0].num_objects == 1 and batch.targets[0].ignore is None

    keeping = make_task(tree, tmp_path / "keep", keep_empty_clips=True)
    empty = next(i for i, clip in enumerate(keeping.train_clips) if not clip.sounding_ids)
    items = keeping.train_dataset()
    batch = keeping.collate([items[empty]], sample_generators(7, 0, [empty], AUGMENT_STREAM))
    assert batch.targets[0].num_objects == 0
    assert torch.isfinite(keeping.loss(keeping.model, batch, sample_generators(7, 0, [empty])).total)


def test_a_batch_of_two_gives_the_loss_of_its_clips(tree, tmp_path):
    """With one object each, the criterion's additive identity (engine/criterion.py) says batch = mean of clips;
    a v1s clip (frame 0 supervised) and a v1m clip (5 frames) share the batch, flips drawn per clip.

    The model runs with dropout off (eval mode): the fusion block's dropout (p 0.1, as the reference) draws one
    mask for the whole batch from the global generator, so in training mode a clip's mask depends on its batch;
    everything else (frames, audio, targets, matching, points) does not, and that is what this checks."""
    task = make_task(tree, tmp_path, augment=AugmentConfig(short_edges=(96,)))
    dataset = task.train_dataset()
    uids = [clip.uid for clip in task.train_clips]
    pair = [uids.index("one_v1s_0_5000"), uids.index("two_v1m_1")]
    items = [dataset[i] for i in pair]
    step = 5

    def loss_of(indices):
        positions = [pair.index(i) for i in indices]
        batch = task.collate([items[p] for p in positions], sample_generators(7, step, indices, AUGMENT_STREAM))
        assert all(target.num_objects == 1 for target in batch.targets)
        return task.loss(task.model, batch, sample_generators(7, step, indices))

    task.model.eval()
    together = loss_of(pair)
    alone = [loss_of([index]) for index in pair]
    assert alone[0].total.item() != pytest.approx(alone[1].total.item(), rel=0.01)
    expected = (alone[0].total + alone[1].total) / 2
    assert together.total.item() == pytest.approx(expected.item(), rel=1e-4)
    for name in ("loss_ce", "loss_mask", "loss_dice"):
        assert together.terms[name] == pytest.approx((alone[0].terms[name] + alone[1].terms[name]) / 2, rel=1e-4)


def test_init_from_our_checkpoint_and_from_a_mask2former_pickle(tree, tmp_path):
    torch.manual_seed(123)
    source = create_model("ovavss-tiny")
    ours = tmp_path / "ours.safetensors"
    save_checkpoint(ours, source.state_dict(), kind="model", config=model_checkpoint_config(source.config))
    task = OVAVSSTask(tiny_config(*tree, tmp_path / "run1", init=str(ours)))
    torch.manual_seed(0)
    model = task.build_model()
    assert all(torch.equal(value, source.state_dict()[key]) for key, value in model.state_dict().items())

    # A detectron2 model-zoo pickle (numpy arrays) with Mask2Former names, for the tiny shapes.
    torch.manual_seed(0)
    fresh = create_model("ovavss-tiny").state_dict()
    rng = np.random.default_rng(0)
    reference = {"backbone.stem.conv1.weight": rng.normal(size=fresh["backbone.conv1.weight"].shape)}
    for key, value in fresh.items():
        if key.startswith(("pixel_decoder.", "transformer_decoder.")) and not key.startswith(NEW_IN_OVAVSS):
            prefix = "sem_seg_head.pixel_decoder." if key.startswith("pixel_") else "sem_seg_head.predictor."
            reference[prefix + key.split(".", 1)[1]] = rng.normal(size=value.shape).astype(np.float32)
    reference["sem_seg_head.predictor.class_embed.weight"] = np.zeros((81, 32), np.float32)  # COCO's 80 + 1
    pkl = tmp_path / "model_final_tiny.pkl"
    pkl.write_bytes(pickle.dumps({"model": reference, "__author__": "test"}))
    task = OVAVSSTask(tiny_config(*tree, tmp_path / "run2", init=str(pkl)))
    torch.manual_seed(0)
    model = task.build_model()
    state = model.state_dict()
    assert np.allclose(state["backbone.conv1.weight"].numpy(), reference["backbone.stem.conv1.weight"])
    key = "transformer_decoder.query_feat.weight"
    assert np.array_equal(state[key].numpy(), reference["sem_seg_head.predictor.query_feat.weight"])
    assert torch.equal(state["transformer_decoder.class_embed.weight"], fresh["transformer_decoder.class_embed.weight"])
    assert (tmp_path / "run2" / "init" / "model_final_tiny.safetensors").is_file()
    # Current Mask2Former names: the reference's checkpointer (and so the default) leaves the pixel decoder random.
    key = "pixel_decoder.mask_features.weight"
    assert torch.equal(state[key], fresh[key])
    full = OVAVSSTask(tiny_config(*tree, tmp_path / "run3", init=str(pkl), init_mode="full")).build_model()
    assert np.array_equal(full.state_dict()[key].numpy(), reference["sem_seg_head.pixel_decoder.mask_features.weight"])


def test_weights_that_do_not_fit_are_refused_before_training(tree, tmp_path):
    model = create_model("ovavss-tiny")
    state = {**model.state_dict(), "transformer_decoder.query_feat.weight": torch.zeros(3, 3)}
    wrong = tmp_path / "wrong.safetensors"
    save_checkpoint(wrong, state, kind="model", config=model_checkpoint_config(model.config))
    with pytest.raises(OvavssError, match="wrong.safetensors: 1 tensors of another shape"):
        OVAVSSTask(tiny_config(*tree, tmp_path / "run", init=str(wrong))).build_model()
    with pytest.raises(OvavssError, match="--vggish FILE"):
        OVAVSSTask(tiny_config(*tree, tmp_path / "run", preset="r50")).build_model()
    with pytest.raises(OvavssError, match="--split is required"):
        OVAVSSTask(replace(tiny_config(*tree, tmp_path / "run"), split=None))


def test_an_exported_tiny_model_loads_for_prediction(tree, tmp_path):
    task = make_task(tree, tmp_path)
    path = tmp_path / "model.safetensors"
    state, config = task.export(task.model)
    save_checkpoint(path, state, kind="model", config=config)
    loaded = load_model(str(path))
    assert all(torch.equal(value, task.model.state_dict()[key]) for key, value in loaded.state_dict().items())


def test_task_option_freezes_a_given_tiny_audio_encoder(tree, tmp_path):
    """``--vggish`` + ``--task-option freeze_audio_encoder=true``: a pretrained tiny encoder kept as given, its
    embeddings computed once (the reference's frozen-VGGish path); bad options get one-line errors."""
    torch.manual_seed(5)
    source = create_model("ovavss-tiny")
    path = tmp_path / "audio.safetensors"
    save_checkpoint(path, source.state_dict(), kind="model", config=model_checkpoint_config(source.config))
    options = {"freeze_audio_encoder": True}
    task = OVAVSSTask(tiny_config(*tree, tmp_path / "run", vggish=str(path), task_options=options))
    model = task.build_model()
    assert model.config.freeze_audio_encoder and not preset_config("ovavss-tiny").freeze_audio_encoder
    encoder = model.audio_encoder.state_dict()
    assert all(torch.equal(value, source.audio_encoder.state_dict()[key]) for key, value in encoder.items())
    assert not any(parameter.requires_grad for parameter in model.audio_encoder.parameters())
    model.train()
    assert not model.audio_encoder.training
    audio = task.train_dataset().audio[0]  # embeddings (frames, A), not log-mel examples
    assert audio.shape[-1] == model.config.audio_encoder.embed_dim and audio.dim() == 2
    # the default tiny run trains its encoder from log-mel examples
    trained = OVAVSSTask(tiny_config(*tree, tmp_path / "run2"))
    assert not trained.build_model().config.freeze_audio_encoder
    assert trained.train_dataset().audio[0].dim() == 4
    with pytest.raises(OvavssError, match="unknown for OV-AVSS: lr .*known: freeze_audio_encoder"):
        OVAVSSTask(tiny_config(*tree, tmp_path / "run3", task_options={"lr": 1}))
    with pytest.raises(OvavssError, match="freeze_audio_encoder: expected a bool, got 'yes'"):
        OVAVSSTask(tiny_config(*tree, tmp_path / "run3", task_options={"freeze_audio_encoder": "yes"}))


def test_task_option_window_size_sets_the_decoder_window_of_the_trained_and_saved_model(tree, tmp_path):
    """``--task-option window_size=1``: the decoder takes one frame per window (its temporal audio embedding has
    one row), in training and in the exported model; a window below 1 is refused in one line."""
    task = OVAVSSTask(tiny_config(*tree, tmp_path / "run", task_options={"window_size": 1}))
    model = task.build_model()
    assert preset_config("ovavss-tiny").window_size == 5 and model.window_size == 1
    assert model.transformer_decoder.audio_query_embed.num_embeddings == 1
    path = tmp_path / "model.safetensors"
    state, config = task.export(model)
    save_checkpoint(path, state, kind="model", config=config)
    assert load_model(str(path)).window_size == 1
    with pytest.raises(OvavssError, match="window_size: must be >= 1, got 0"):
        OVAVSSTask(tiny_config(*tree, tmp_path / "run2", task_options={"window_size": 0}))
