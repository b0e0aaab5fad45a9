"""Where training starts from, for both tasks: ``--init`` files (ours, or a foreign checkpoint converted into the
run folder), ``--vggish`` weights, and which presets need neither."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor

from ..console import console
from ..errors import OvavssError
from ..hub import sha256_file
from ..models.avsc.model import AVSC
from ..models.checkpoint import read_checkpoint, sidecar_path
from ..models.convert import DEFAULT_INIT_MODE, VGGISH_PREFIX, convert_checkpoint
from ..models.safe_load import load_foreign_state_dict
from .distributed import is_main_process

#: Presets that train from scratch: their audio encoder trains with the rest (OV-AVSS: its frozen CLIP keeps
#: its seeded random weights; both are saved in the checkpoints). Every other preset needs the released VGGish
#: (and OV-AVSS the OpenAI CLIP).
RANDOM_INIT_PRESETS: tuple[str, ...] = ("ovavss-tiny", "avsc-tiny")
#: The OV-AVSS preset whose key layout a foreign ``--init`` file (Mask2Former .pkl) is converted with for AVSC.
AVSC_CONVERSION_PRESETS: dict[str, str] = {
    "avsc-r50": "ovavss-r50",
    "avsc-swinb": "ovavss-swinb",
    "avsc-tiny": "ovavss-tiny",
}
VGGISH_HELP = (
    "download the released VGGish (vggish-10086976.pth, https://github.com/harritaylor/torchvggish/releases) "
    "and pass --vggish FILE"
)


def require_released_vggish(preset: str, loaded: Mapping[str, Tensor]) -> None:
    """OvavssError unless ``loaded`` has VGGish weights, for every preset that does not train from scratch."""
    if preset not in RANDOM_INIT_PRESETS and not any(key.startswith(VGGISH_PREFIX) for key in loaded):
        raise OvavssError(f"{preset} trains with the released VGGish frozen: {VGGISH_HELP}")


def check_fits(expected: dict[str, torch.Size], state: dict[str, Tensor], source: Path) -> None:
    """OvavssError when ``state`` has keys the model lacks or tensors of another shape than ``expected``."""
    unknown = [key for key in state if key not in expected]
    if unknown:
        raise OvavssError(f"{len(unknown)} tensors the model does not have (e.g. {unknown[0]})", path=source)
    wrong = [key for key, value in state.items() if value.shape != expected[key]]
    if wrong:
        key = wrong[0]
        raise OvavssError(
            f"{len(wrong)} tensors of another shape (e.g. {key} {tuple(state[key].shape)} vs "
            f"{tuple(expected[key])}): made for another preset?",
            path=source,
        )


def _converted_init(source: Path, preset: str, run_dir: Path, init_mode: str | None) -> Path:
    """A foreign checkpoint (Mask2Former .pkl, official .pth) converted into the run folder, reused on resume."""
    out = run_dir / "init" / f"{source.stem}.safetensors"
    if out.is_file() and sidecar_path(out).is_file():
        recorded = json.loads(sidecar_path(out).read_text())
        conversion = recorded.get("conversion", {})
        same_mode = conversion.get("kind") != "mask2former" or conversion.get("init_mode") == (
            init_mode or DEFAULT_INIT_MODE
        )
        if same_mode and recorded.get("source", {}).get("sha256") == sha256_file(source):
            return out
    report = convert_checkpoint(source, out, preset=preset, allow_missing=True, force=True, init_mode=init_mode)
    say(f"--init: converted {source.name} ({report.kind}) to {out} ({report.converted} tensors)")
    for warning in report.warnings:
        say(f"warning: {warning}")
    return out


def read_init_state(path: Path, preset: str, run_dir: Path, init_mode: str | None = None) -> dict[str, Tensor]:
    """Weights to start from: our .safetensors (``init``, ``model`` or ``vggish``), or a foreign file converted
    (a Mask2Former .pkl in ``init_mode``, None = reference; refused for other files: see ``models/convert.py``)."""
    if not path.is_file():
        raise OvavssError("--init: file not found", path=path)
    if path.suffix != ".safetensors":
        path = _converted_init(path, preset, run_dir, init_mode)
    checkpoint = read_checkpoint(path)
    if checkpoint.kind == "model" and checkpoint.config.get("architecture") != "ovavss":
        raise OvavssError(f"--init: holds a '{checkpoint.config.get('architecture')}' model, not OV-AVSS", path=path)
    return checkpoint.state


def read_avsc_init(
    path: Path, model: AVSC, run_dir: Path, init_mode: str | None = None
) -> tuple[dict[str, Tensor], list[str]]:
    """``--init`` weights that fit AVSC: an AVSC model checkpoint (e.g. S4-trained, to start MS3 from), or what
    OV-AVSS's ``--init`` accepts (a Mask2Former .pkl, converted into the run folder; our ``init``/``model`` files).

    Returns (the fitting tensors, the keys left out: parts AVSC does not have, e.g. OV-AVSS's audio fusion or
    CLIP, and a class head made for another number of categories). Other shape mismatches are errors.
    """
    checkpoint = read_checkpoint(path) if path.suffix == ".safetensors" and path.is_file() else None
    if checkpoint is not None and checkpoint.config.get("architecture") == AVSC.architecture:
        state = checkpoint.state
    else:
        state = read_init_state(path, AVSC_CONVERSION_PRESETS[model.config.name], run_dir, init_mode)
    expected = model.state_dict()
    fitting, left_out = {}, []
    for key, value in state.items():
        if key not in expected or (
            key.startswith("transformer_decoder.class_embed.") and value.shape != expected[key].shape
        ):
            left_out.append(key)
        elif value.shape != expected[key].shape:
            raise OvavssError(
                f"--init: {key} is {tuple(value.shape)} but {model.config.name} has {tuple(expected[key].shape)}: "
                "made for another preset?",
                path=path,
            )
        else:
            fitting[key] = value
    return fitting, left_out


def read_vggish_state(path: Path) -> dict[str, Tensor]:
    """VGGish weights as ``audio_encoder.*`` tensors: the torchvggish release or one of our checkpoints."""
    if not path.is_file():
        raise OvavssError("--vggish: file not found", path=path)
    if path.suffix == ".safetensors":
        state = read_checkpoint(path).state
    else:
        state = {VGGISH_PREFIX + key: value for key, value in load_foreign_state_dict(path).items()}
    state = {key: value for key, value in state.items() if key.startswith(VGGISH_PREFIX)}
    if not state:
        raise OvavssError("--vggish: no VGGish tensors in this file", path=path)
    return state


def say(message: str) -> None:
    """Print on rank 0 only (every process builds the model and the data; one report is enough)."""
    if is_main_process():
        console.print(message)


def summarise_keys(keys: Sequence[str]) -> str:
    """Top-level modules of some state keys with their tensor counts: 'backbone 20, pixel_decoder 3'."""
    counts: dict[str, int] = {}
    for key in keys:
        top = key.split(".")[0]
        counts[top] = counts.get(top, 0) + 1
    return ", ".join(f"{name} {count}" for name, count in counts.items()) or "nothing"
