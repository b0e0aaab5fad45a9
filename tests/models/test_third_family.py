"""The "add a third family" path of ``models.interface``, walked end to end: a family that implements
``SegmentationModel`` plus one ``models.api.FAMILIES`` entry is created, saved, loaded and run by
``ovavss predict`` with nothing else changed (no family switch elsewhere in the package)."""

import dataclasses
import json
from collections.abc import Sequence

import numpy as np
import pytest
import torch
from media_testkit import make_video
from torch import nn

from ovavss_cli.data.labelmap import read_label_png
from ovavss_cli.models import api
from ovavss_cli.models.interface import Detection, ModelFamily, SegmentationModel


@dataclasses.dataclass(frozen=True)
class LoudnessGateConfig:
    name: str = "loudness-gate-tiny"
    window: int = 4


@dataclasses.dataclass
class GateResult:
    vocab: tuple[str, ...]
    label_maps: torch.Tensor
    detections: list[Detection]


class LoudnessGate(nn.Module):
    """Paints the first name on the whole frame of every window whose audio RMS exceeds a learned gate."""

    architecture = "loudness-gate"
    has_fast_mode = False

    def __init__(self, config: LoudnessGateConfig):
        super().__init__()
        self.config = config
        self.gate = nn.Parameter(torch.tensor(0.01))
        self.weights_id: str | None = None
        self.weights_sha256: str | None = None

    @property
    def device(self) -> torch.device:
        return self.gate.device

    @property
    def window_size(self) -> int:
        return self.config.window

    def fetched_state_prefixes(self) -> tuple[str, ...]:
        return ()

    def predict_clip(
        self,
        frames,
        audio,
        sample_rate: int,
        vocab: Sequence[str],
        threshold: float = 0.3,
        *,
        frame_times=None,
        precision: str = "fp32",
        clip_queries: int | None = None,
    ) -> GateResult:
        frames = np.asarray(frames)
        loud = audio is not None and float(np.sqrt(np.mean(np.square(np.asarray(audio))))) > float(self.gate.detach())
        maps = torch.full(frames.shape[:3], int(loud), dtype=torch.int64)
        return GateResult(tuple(vocab), maps, [Detection(0, 0, 1, 1.0)] if loud else [])


@pytest.fixture
def third_family(monkeypatch):
    presets = {"loudness-gate-tiny": LoudnessGateConfig}
    family = ModelFamily(LoudnessGate.architecture, LoudnessGate, LoudnessGateConfig, presets)
    monkeypatch.setitem(api.FAMILIES, family.architecture, family)
    return family


def test_a_third_family_is_created_saved_loaded_and_run_by_predict(third_family, cli, tmp_path):
    model = api.create_model("loudness-gate-tiny")
    assert isinstance(model, SegmentationModel) and "loudness-gate-tiny" in api.list_models()
    path = tmp_path / "gate.safetensors"
    api.save_model(model, path)
    assert api.family_of_weights(str(path)) is third_family
    loaded = api.load_model(str(path), architecture="loudness-gate")
    assert isinstance(loaded, LoudnessGate) and loaded.weights_sha256 and loaded.config == model.config

    video = make_video(tmp_path / "clip.mp4", seconds=2.0, fps=10)
    for audio, painted in ((None, True), ("silence", False)):
        out = tmp_path / f"out-{audio}"
        args = ["predict", video, "--weights", path, "--vocab", "hum", "--out", out, "--no-video"]
        result = cli(*args, *(("--audio", audio) if audio else ()))
        assert result.exit_code == 0, result.output
        data = json.loads((out / "predictions.json").read_text())
        assert data["weights"]["id"] == str(path)
        assert all(bool(frame["segments"]) == painted for frame in data["frames"])
        ids, _ = read_label_png(out / "masks" / "00000.png")
        assert (ids == int(painted)).all()

    refused = cli("predict", video, "--weights", path, "--vocab", "hum", "--out", tmp_path / "r", "--clip-queries", "2")
    assert refused.exit_code == 1 and "LOUDNESS-GATE has no CLIP stage" in refused.stderr
