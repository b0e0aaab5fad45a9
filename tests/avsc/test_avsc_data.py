"""AVSC training data from generated AVSBench-object trees: which frames are supervised, the audio pairing, the
categories (S4 folders; MS3 through AVSBench-semantic v1m rows), the per-frame targets and the task options."""

import numpy as np
import pytest
import torch

from ovavss_cli.data.classes import S4_CATEGORY_TO_CLASS
from ovavss_cli.data.synthetic import ClipSpec, generate_avss, generate_ms3, generate_s4
from ovavss_cli.engine.avsc_task import AVSCTask
from ovavss_cli.engine.point_sampling import sample_generators
from ovavss_cli.engine.run_config import TrainConfig
from ovavss_cli.errors import OvavssError
from ovavss_cli.inference.evaluate import evaluate_model_on_avsbench_object
from ovavss_cli.models.avsc.config import AVSBENCH_OBJECT_CATEGORIES

MS3_SPECS = [
    ClipSpec("msa_0", "v1m", "train", ("dog", "piano")),
    ClipSpec("msb_1", "v1m", "train", ("guitar",), ("cat",)),
    ClipSpec("msc_2", "v1m", "val", ("dog",)),
]


def task_for(root, **options) -> AVSCTask:
    config = TrainConfig(data=str(root), model="avsc", preset="tiny", out=str(root / "run"), **options)
    return AVSCTask(config)


@pytest.fixture(scope="module")
def s4_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("s4")
    generate_s4(root, 6, seed=2, silent_distractors=1)
    return root


def category(name: str) -> int:
    return AVSBENCH_OBJECT_CATEGORIES.index(name)


def test_s4_train_clips_supervise_their_first_frame_only(s4_root):
    task = task_for(s4_root)
    dataset = task.train_dataset()
    assert len(dataset) == 2  # the generator cycles train / val / test
    item = dataset[0]
    clip = task.train_clips[0]
    assert item.frames.shape == (1, 64, 64, 3) and item.masks.shape == (1, 64, 64)
    assert item.frame_ids.tolist() == [0]
    assert item.log_mel.shape == (5, 1, 96, 64)  # every second's audio
    assert np.array_equal(item.frames[0], task.dataset.read_frames(clip)[0])
    assert np.array_equal(item.masks[0], task.dataset.read_mask(clip, 0))
    assert np.flatnonzero(item.categories).tolist() == [category(S4_CATEGORY_TO_CLASS[clip.category])]


def test_s4_batch_pairs_each_frame_with_its_own_seconds_audio(s4_root):
    task = task_for(s4_root)
    dataset = task.train_dataset()
    items = [dataset[0], dataset[1]]
    batch = task.collate(items, sample_generators(0, 0, [0, 1], 1))
    assert batch.images.shape[:2] == (2, 3)  # one segmented frame per S4 train clip
    assert batch.log_mel.shape == (10, 1, 96, 64)
    assert batch.frame_audio.tolist() == [0, 5]
    targets = batch.targets
    assert targets.frame_clip.tolist() == [0, 1] and targets.audio_clip.tolist() == [0] * 5 + [1] * 5
    assert targets.known.tolist() == [True, True] and targets.categories.sum(1).tolist() == [1, 1]
    for target, mask in zip(targets.instances, targets.sounding_masks, strict=True):
        assert target.num_objects == 1 and torch.equal(target.masks[0, 0] > 0, mask > 0)
        assert target.label_sets.sum() == 1


def test_augmentation_comes_from_the_clips_generator(s4_root):
    task = task_for(s4_root)
    dataset = task.train_dataset()
    first = task.collate([dataset[0], dataset[1]], sample_generators(0, 3, [0, 1], 1))
    again = task.collate([dataset[0]], sample_generators(0, 3, [0], 1))
    height, width = again.images.shape[-2:]
    assert torch.equal(first.images[0, :, :height, :width], again.images[0])


def test_ms3_categories_come_from_the_avss_v1m_rows(tmp_path):
    generate_ms3(tmp_path / "object", MS3_SPECS, seed=1)
    generate_avss(tmp_path / "avss", MS3_SPECS, seed=1)
    with pytest.raises(OvavssError, match="avss_root"):
        task_for(tmp_path / "object")
    task = task_for(tmp_path / "object", task_options={"avss_root": str(tmp_path / "avss")})
    assert task.benchmark == "ms3"
    dataset = task.train_dataset()
    two = dataset[0]
    assert two.frames.shape[0] == 5 and two.frame_ids.tolist() == [0, 1, 2, 3, 4]
    assert np.flatnonzero(two.categories).tolist() == sorted([category("dog"), category("piano")])
    batch = task.collate([two, dataset[1]], sample_generators(0, 0, [0, 1], 1))
    assert batch.images.shape[0] == 10 and batch.frame_audio.tolist() == list(range(10))
    first_frame = batch.targets.instances[0]
    assert first_frame.num_objects == 2  # two sounding objects in separate places: two GT objects
    assert first_frame.label_sets[:, [category("dog"), category("piano")]].all()
    assert first_frame.unmatched_classes[category("cat")] and not first_frame.unmatched_classes[category("dog")]
    assert len(task.val_clips) == 1


def test_validation_scores_the_val_clips_as_eval_weights_does(s4_root):
    task = task_for(s4_root)
    torch.manual_seed(0)
    model = task.build_model()
    model.weights_id = model.weights_sha256 = None  # set by load_model for a saved checkpoint
    scores = evaluate_model_on_avsbench_object(s4_root, "s4", model.eval(), split="val").scores
    assert task.validate(model) == {
        "mJ": scores.official_miou, "mF": scores.official_fscore, "mJ_clean": scores.miou, "mF_clean": scores.fscore
    }  # fmt: skip


def test_task_options_and_their_errors(s4_root):
    task = task_for(s4_root, task_options={"audio_weighting": False, "silent_objective": "off", "audio_weight": 1})
    assert task.model_config.correlation.use_audio is False
    assert task.loss_config.silent_objective == "off" and task.loss_config.audio_weight == 1.0
    with pytest.raises(OvavssError, match="unknown for AVSC: colour"):
        task_for(s4_root, task_options={"colour": "red"})
    with pytest.raises(OvavssError, match="audio_weighting: expected a bool"):
        task_for(s4_root, task_options={"audio_weighting": "no"})
    with pytest.raises(OvavssError, match="silent_objective"):
        task_for(s4_root, task_options={"silent_objective": "maybe"})
    with pytest.raises(OvavssError, match="--split is for OV-AVSS"):
        task_for(s4_root, split="split.json")


def test_a_root_with_both_benchmarks_needs_a_choice(tmp_path):
    generate_s4(tmp_path, 3, seed=0)
    generate_ms3(tmp_path, MS3_SPECS, seed=1)
    with pytest.raises(OvavssError, match="benchmark=s4 or benchmark=ms3"):
        task_for(tmp_path)
    assert task_for(tmp_path, task_options={"benchmark": "s4"}).benchmark == "s4"


def test_r50_needs_the_released_vggish(s4_root):
    config = TrainConfig(data=str(s4_root), model="avsc", preset="r50", out=str(s4_root / "r50"))
    with pytest.raises(OvavssError, match="vggish"):
        AVSCTask(config).build_model()


def test_train_and_evaluate_ms3_from_the_command_line(tmp_path, cli):
    specs = [*MS3_SPECS, ClipSpec("msd_3", "v1m", "test", ("guitar", "piano"))]
    generate_ms3(tmp_path / "object", specs, seed=1)
    generate_avss(tmp_path / "avss", specs, seed=1)
    run = tmp_path / "run"
    result = cli("train", "--model", "avsc", "--preset", "tiny", "--data", tmp_path / "object", "--out", run,
                 "--task-option", f"avss_root={tmp_path / 'avss'}", "--max-steps", "2", "--batch-size", "2",
                 "--device", "cpu")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (run / "model.safetensors").is_file()
    scored = cli("eval", "--benchmark", "ms3", "--data", tmp_path / "object", "--weights", run / "model.safetensors",
                 "--device", "cpu")  # fmt: skip
    assert scored.exit_code == 0, scored.output
    assert "MS3 test: mJ" in scored.output and "(1 clips, 5 frames" in scored.output


def test_init_from_an_avsc_or_an_ovavss_checkpoint(s4_root, tmp_path):
    from ovavss_cli.models.api import create_model, save_model
    from ovavss_cli.models.avsc.model import AVSC

    torch.manual_seed(5)
    trained = AVSC(task_for(s4_root).model_config)
    save_model(trained, tmp_path / "avsc.safetensors")
    model = task_for(s4_root, init=str(tmp_path / "avsc.safetensors")).build_model()
    expected = trained.state_dict()
    assert all(torch.equal(value, expected[key]) for key, value in model.state_dict().items())

    ovavss = create_model("ovavss-tiny")
    save_model(ovavss, tmp_path / "ovavss.safetensors")
    model = task_for(s4_root, init=str(tmp_path / "ovavss.safetensors")).build_model()
    # The shared parts start from OV-AVSS's weights; its audio layers, CLIP and 2-way class head are left out.
    assert torch.equal(model.backbone.conv1.weight, ovavss.backbone.conv1.weight)
    assert torch.equal(model.transformer_decoder.query_feat.weight, ovavss.transformer_decoder.query_feat.weight)
    assert model.transformer_decoder.class_embed.weight.shape[0] == 24


def test_avss_root_task_option_on_s4_is_refused(s4_root, cli, tmp_path):
    # S4 clips are named by their own categories: an AVSBench-semantic root could never be read.
    result = cli("train", "--model", "avsc", "--preset", "tiny", "--data", s4_root, "--out", tmp_path / "run",
                 "--task-option", f"avss_root={tmp_path}")  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr.strip().startswith("error: --task-option avss_root: only for MS3")
    assert not (tmp_path / "run").exists()
