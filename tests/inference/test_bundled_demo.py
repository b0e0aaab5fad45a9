"""The README's first command: the bundled ``tiny-demo`` checkpoint on the bundled ``demo.mp4``."""

from __future__ import annotations

import json

import av
import numpy as np

from ovavss_cli.data.classes import class_id
from ovavss_cli.data.labelmap import read_label_png
from ovavss_cli.data.synthetic import class_appearance
from ovavss_cli.hub import load_registry, resolve_weights, weights_dir
from ovavss_cli.models.checkpoint import sha256_file

VOCAB = ["dog", "violin", "car", "helicopter"]
MAX_BYTES = 20 * 1024 * 1024


def test_tiny_demo_is_bundled_small_verified_and_documented():
    entry = load_registry()["tiny-demo"]
    resolved = resolve_weights("tiny-demo")
    assert entry.bundled and resolved.path == weights_dir() / "tiny-demo.safetensors"
    assert resolved.expected_sha256 == entry.sha256 == sha256_file(resolved.path)
    assert resolved.path.stat().st_size <= MAX_BYTES
    assert (weights_dir() / entry.card).is_file() and (weights_dir() / "demo.mp4").is_file()


def _fill_ratio(mask: np.ndarray) -> float:
    """Mask area over its bounding box: ~1 for a rectangle, ~pi/4 for an ellipse, ~1/2 for a diamond."""
    ys, xs = np.nonzero(mask)
    return len(xs) / ((np.ptp(xs) + 1) * (np.ptp(ys) + 1))


def test_readme_demo_command_outlines_and_names_the_objects(cli, tmp_path):
    out = tmp_path / "demo_ovavss"
    result = cli("predict", weights_dir() / "demo.mp4", "--weights", "tiny-demo", "--vocab", ", ".join(VOCAB),
                 "--out", out, "--device", "cpu")  # fmt: skip
    assert result.exit_code == 0, result.output
    payload = json.loads((out / "predictions.json").read_text())
    assert payload["weights"]["id"] == "tiny-demo" and len(payload["frames"]) == 8
    with av.open(str(out / "overlay.mp4")) as container:
        assert container.streams.video and container.streams.audio  # the original sound is muxed back
    # The sounding object of each second is painted (dog for 3 s, then violin), and every name is painted
    # on the object with that class's generated look (shape). Nothing else is named.
    sounding = ["dog"] * 3 + ["violin"] * 5
    expected_fill = {"ellipse": np.pi / 4, "rectangle": 1.0, "diamond": 0.5, "triangle": 0.5}
    for second, png in enumerate(sorted((out / "masks").glob("*.png"))):
        ids, _ = read_label_png(png)
        painted = set(np.unique(ids).tolist()) - {0}
        assert painted <= {1, 2, 3} and VOCAB.index(sounding[second]) + 1 in painted, (png.name, painted)
        for label in painted:
            shape = class_appearance(class_id(VOCAB[label - 1])).shape
            assert abs(_fill_ratio(ids == label) - expected_fill[shape]) < 0.1, (png.name, VOCAB[label - 1], shape)
