"""``ovavss convert``: official OV-AVSS ``.pth``, Mask2Former COCO ``.pkl`` and VGGish ``.pth`` -> ours.

* ``ovavss``: a full model (``model_ov_avss_r50.pth`` / ``model_ov_avss_swinb.pth``). When the file has
  no CLIP tensors, the converted config loads open_clip's OpenAI weights instead (the same values the
  reference's ``clip.load`` gives); missing VGGish tensors can come from ``--vggish vggish-10086976.pth``.
* ``mask2former``: a training initialisation (``kind="init"``) from a detectron2 model-zoo pickle:
  backbone, pixel decoder and decoder layers; the audio parts and the 2-way class head are new in
  OV-AVSS and are left to training, as the reference's checkpointer does (shape-mismatched
  ``class_embed`` is skipped and reported). ``init_mode="reference"`` (default) fills exactly what the
  reference's ``DetectionCheckpointer`` fills for the file's key layout (see :func:`reference_init_key`):
  with Mask2Former's current names the pixel decoder stays at random init, with the pre-v2 names it
  loads. ``init_mode="full"`` loads every tensor that fits, pixel decoder included.
* ``vggish``: the torchvggish release, as audio-encoder weights (``kind="vggish"``).

Every source key is accounted for: converted, dropped on purpose (constants), skipped (shape), or
unmapped; every model key is converted or missing. Unmapped or missing keys fail the conversion
unless allowed. Nothing is written on failure, and the output is written atomically.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import OvavssError
from ..hub import store_dir
from .api import model_checkpoint_config
from .checkpoint import save_checkpoint, sha256_file
from .keymap import map_reference_key
from .ovavss.config import OVAVSSConfig, preset_config, with_openai_clip
from .ovavss.model import OVAVSS
from .safe_load import load_foreign_state_dict

KINDS = ("auto", "ovavss", "mask2former", "vggish")
INIT_MODES = ("reference", "full")
DEFAULT_INIT_MODE = "reference"
HEAD_PREFIX = "sem_seg_head."
PREDICTOR_PREFIX = "sem_seg_head.predictor."
VGGISH_PREFIX = "audio_encoder."
CLIP_PREFIX = "open_vocab.clip."
# What OV-AVSS adds to Mask2Former: never in a Mask2Former checkpoint, initialised by training.
NEW_IN_OVAVSS = (
    VGGISH_PREFIX,
    CLIP_PREFIX,
    "pixel_decoder.transformer.encoder.vl_layer.",
    "transformer_decoder.transformer_audio_cross_attention_layers.",
    "transformer_decoder.v2a.",
    "transformer_decoder.a2a.",
    "transformer_decoder.audio_proj.",
    "transformer_decoder.audio_query_embed.",
    "transformer_decoder.class_embed.",
)


@dataclass
class ConversionReport:
    source: str
    source_sha256: str
    kind: str
    preset: str | None
    converted: int = 0
    dropped: list[str] = field(default_factory=list)  # known constants (criterion weights, pixel mean/std)
    skipped: list[str] = field(default_factory=list)  # shape differs from ours (Mask2Former's class head)
    unmapped: list[str] = field(default_factory=list)  # source keys no rule covers
    missing: list[str] = field(default_factory=list)  # our keys the source lacks (and nothing supplies)
    left_to_training: int = 0  # init checkpoints: our keys that training initialises
    init_mode: str | None = None  # mask2former: "reference" | "full"
    layout: str | None = None  # mask2former: "current" (sem_seg_head.pixel_decoder.*) | "pre-v2" (sem_seg_head.*)
    not_loaded: list[str] = field(default_factory=list)  # source keys the reference's checkpointer does not use
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    output: str | None = None
    output_sha256: str | None = None

    def to_dict(self) -> dict:
        """The report as the sidecar stores it; the output's sha256 is not known until the file is written,
        and the sidecar records it at its top level."""
        report = dataclasses.asdict(self)
        del report["output_sha256"]
        return report


def detect_kind(state: dict[str, torch.Tensor]) -> str:
    keys = list(state)
    if all(k.startswith(("features.", "embeddings.")) for k in keys):
        return "vggish"
    if any(k.startswith(("audio_encoder.audio_backbone.", "sem_seg_head.predictor.v2a.")) for k in keys):
        return "ovavss"
    if any(k.startswith("sem_seg_head.predictor.") for k in keys):
        return "mask2former"
    raise OvavssError("unrecognised checkpoint layout (not OV-AVSS, Mask2Former or VGGish); pass --kind")


def detect_preset(state: dict[str, torch.Tensor]) -> str:
    if "backbone.patch_embed.proj.weight" in state:
        return "ovavss-swinb"
    if "backbone.stem.conv1.weight" in state:
        return "ovavss-r50"
    raise OvavssError("cannot tell the backbone (no ResNet stem, no Swin patch embedding); pass --preset")


def expected_shapes(config: OVAVSSConfig) -> dict[str, torch.Size]:
    """Our model's state_dict shapes, from a shape-only (meta device) build."""
    with torch.device("meta"):
        model = OVAVSS(config)
    return {key: value.shape for key, value in model.state_dict().items()}


def _map_state(
    source: dict[str, torch.Tensor], expected: dict[str, torch.Size], report: ConversionReport, rename
) -> dict[str, torch.Tensor]:
    """Rename source keys with ``rename`` and sort each into converted / dropped / skipped / unmapped."""
    mapped: dict[str, torch.Tensor] = {}
    for key, value in source.items():
        try:
            new_key = rename(key)
        except KeyError:
            report.unmapped.append(key)
            continue
        if new_key is None:
            report.dropped.append(key)
        elif new_key not in expected:
            report.unmapped.append(key)
        elif tuple(value.shape) != tuple(expected[new_key]):
            report.skipped.append(f"{key} {tuple(value.shape)} -> {new_key} {tuple(expected[new_key])}")
        else:
            mapped[new_key] = value.float() if value.is_floating_point() else value
    return mapped


def mask2former_layout(state: dict[str, torch.Tensor]) -> str:
    """``current``: the pixel decoder under ``sem_seg_head.pixel_decoder.``; ``pre-v2``: directly under
    ``sem_seg_head.`` (MaskFormer's head before its version 2)."""
    head = [k for k in state if k.startswith(HEAD_PREFIX) and not k.startswith(PREDICTOR_PREFIX)]
    return "current" if any(k.startswith("sem_seg_head.pixel_decoder.") for k in head) or not head else "pre-v2"


def reference_init_key(key: str) -> str:
    """The name a Mask2Former key has when the reference's checkpointer hands it to ``load_state_dict``.

    detectron2's ``align_and_update_state_dicts`` returns a plain dict without ``_metadata``, so
    ``MaskFormerHeadAV._load_from_state_dict`` sees version None and applies its pre-v2 conversion: every
    ``sem_seg_head.*`` key outside the predictor gets ``pixel_decoder.`` inserted. Pre-v2 names land on
    the pixel decoder; current names become ``sem_seg_head.pixel_decoder.pixel_decoder.*`` and load nowhere.
    """
    if key.startswith(HEAD_PREFIX) and not key.startswith(PREDICTOR_PREFIX):
        return "sem_seg_head.pixel_decoder." + key[len(HEAD_PREFIX) :]
    return key


def full_init_key(key: str) -> str:
    """``init_mode="full"``: both layouts land on the pixel decoder."""
    if key.startswith(HEAD_PREFIX) and not key.startswith((PREDICTOR_PREFIX, "sem_seg_head.pixel_decoder.")):
        return reference_init_key(key)
    return key


def _mask2former_state(
    source: dict[str, torch.Tensor], expected: dict[str, torch.Size], report: ConversionReport, mode: str
) -> tuple[dict[str, torch.Tensor], set[str]]:
    """(mapped tensors, our keys left at random init on purpose) for a Mask2Former init in ``mode``."""
    report.layout = mask2former_layout(source)
    if mode == "full":
        return _map_state(source, expected, report, lambda key: map_reference_key(full_init_key(key))), set()
    renamed = {reference_init_key(key): key for key in source}
    unused = {new for new in renamed if new.startswith("sem_seg_head.pixel_decoder.pixel_decoder.")}
    report.not_loaded = sorted(renamed[new] for new in unused)
    used = {new: source[old] for new, old in renamed.items() if new not in unused}
    state = _map_state(used, expected, report, map_reference_key)
    left_random = {map_reference_key(full_init_key(renamed[new])) for new in unused} & set(expected)
    if left_random:
        report.warnings.append(
            f"--init-mode reference: {len(left_random)} pixel-decoder tensors stay at random init, as the reference's "
            f"checkpointer leaves them for this file's key layout ({report.layout} names); --init-mode full loads them"
        )
    return state, left_random


def _vggish_key(key: str) -> str:
    if not key.startswith(("features.", "embeddings.")):
        raise KeyError(key)
    return VGGISH_PREFIX + key


def _read_vggish(path: Path, expected: dict[str, torch.Size], report: ConversionReport) -> dict[str, torch.Tensor]:
    sub = ConversionReport(source=str(path), source_sha256=sha256_file(path), kind="vggish", preset=None)
    state = _map_state(load_foreign_state_dict(path), expected, sub, _vggish_key)
    if sub.unmapped or sub.skipped:
        raise OvavssError(f"not a torchvggish checkpoint ({(sub.unmapped + sub.skipped)[0]})", path=path)
    report.notes.append(f"VGGish weights taken from {path.name} (sha256 {sub.source_sha256[:12]}…)")
    return state


def convert_checkpoint(
    src: str | Path,
    dst: str | Path,
    *,
    kind: str = "auto",
    preset: str | None = None,
    vggish: str | Path | None = None,
    allow_unmapped: bool = False,
    allow_missing: bool = False,
    force: bool = False,
    init_mode: str | None = None,
) -> ConversionReport:
    """Convert ``src`` to ``dst`` (``.safetensors`` + ``.json``); raise OvavssError on any unaccounted key.

    ``init_mode`` (a Mask2Former source only; None = ``reference``) and ``vggish`` (not for a VGGish source) are
    refused with one line where they would do nothing."""
    src, dst = Path(src), Path(dst)
    if kind not in KINDS:
        raise OvavssError(f"--kind: must be one of {', '.join(KINDS)}, got '{kind}'")
    if init_mode is not None and init_mode not in INIT_MODES:
        raise OvavssError(f"--init-mode: must be one of {', '.join(INIT_MODES)}, got '{init_mode}'")
    if dst.suffix != ".safetensors":
        raise OvavssError("--out: the converted checkpoint must be a .safetensors file", path=dst)
    if dst.exists() and not force:
        raise OvavssError("already exists (use --force to overwrite)", path=dst)
    source = load_foreign_state_dict(src)
    kind = detect_kind(source) if kind == "auto" else kind
    if init_mode is not None and kind != "mask2former":
        raise OvavssError(f"--init-mode: only for a Mask2Former checkpoint (this is {kind})", path=src)
    if vggish is not None and kind == "vggish":
        raise OvavssError("--vggish: the source is VGGish weights itself", path=src)
    report = ConversionReport(source=src.name, source_sha256=sha256_file(src), kind=kind, preset=None)

    if kind == "vggish":
        config = preset_config(preset or "ovavss-r50")
        expected = {k: v for k, v in expected_shapes(config).items() if k.startswith(VGGISH_PREFIX)}
        state = _map_state(source, expected, report, _vggish_key)
        ckpt_kind, ckpt_config = "vggish", {"audio_encoder": dataclasses.asdict(config.audio_encoder)}
    else:
        report.preset = preset or detect_preset(source)
        config = preset_config(report.preset)
        if kind == "ovavss" and not any(k.startswith("clip_adapter.clip_model.") for k in source):
            config = with_openai_clip(config)
            report.notes.append("no CLIP tensors in the source: the model loads open_clip's OpenAI weights")
        expected = expected_shapes(config)
        left_random: set[str] = set()
        if kind == "mask2former":
            report.init_mode = init_mode or DEFAULT_INIT_MODE
            state, left_random = _mask2former_state(source, expected, report, report.init_mode)
        else:
            state = _map_state(source, expected, report, map_reference_key)
        if vggish is not None:
            state.update(_read_vggish(Path(vggish), expected, report))
        if config.open_vocab.pretrained:
            expected = {k: v for k, v in expected.items() if not k.startswith(CLIP_PREFIX)}
        if kind == "mask2former":
            new = {k for k in expected if k not in state and (k.startswith(NEW_IN_OVAVSS) or k in left_random)}
            report.left_to_training = len(new)
            expected = {k: v for k, v in expected.items() if k not in new}
            ckpt_kind = "init"
        else:
            ckpt_kind = "model"
        ckpt_config = model_checkpoint_config(config)
    report.converted = len(state)
    report.missing = sorted(set(expected) - set(state))

    problems = []
    if report.unmapped and not allow_unmapped:
        problems.append(f"{len(report.unmapped)} unmapped source keys (e.g. {report.unmapped[0]}; --allow-unmapped)")
    if report.missing and not allow_missing:
        problems.append(f"{len(report.missing)} model keys missing (e.g. {report.missing[0]}; --allow-missing)")
    if kind != "mask2former" and report.skipped:
        problems.append(f"{len(report.skipped)} shape mismatches (e.g. {report.skipped[0]})")
    if problems:
        raise OvavssError(f"conversion failed: {'; '.join(problems)}", path=src)
    report.output = str(dst)
    report.output_sha256 = save_checkpoint(
        dst,
        state,
        kind=ckpt_kind,
        config=ckpt_config,
        info={
            "source": {"file": src.name, "sha256": report.source_sha256, "kind": kind},
            "conversion": report.to_dict(),
        },
    )
    return report


def import_weights(src: str | Path, name: str, *, vggish: str | Path | None = None, force: bool = False):
    """``ovavss weights import``: convert an official checkpoint into the local weights store as
    ``<name>.safetensors`` (+ sidecar), where ``--weights NAME`` finds it offline."""
    if not name or "/" in name or name.startswith("."):
        raise OvavssError(f"--name: '{name}' is not a valid weights name")
    return convert_checkpoint(src, store_dir() / f"{name}.safetensors", vggish=vggish, force=force)


def print_report(report: ConversionReport) -> None:
    """What was converted, in a few lines on the console."""
    from rich.table import Table

    from ..console import console

    table = Table(title=f"converted {report.source} ({report.kind}{', ' + report.preset if report.preset else ''})")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_column("examples")
    rows = (
        ("converted tensors", report.converted, []),
        ("dropped constants", len(report.dropped), report.dropped),
        ("skipped (shape differs)", len(report.skipped), report.skipped),
        ("unmapped source keys", len(report.unmapped), report.unmapped),
        ("missing model keys", len(report.missing), report.missing),
        ("left to training", report.left_to_training, []),
        ("not used (as the reference)", len(report.not_loaded), report.not_loaded),
    )
    for what, count, examples in rows:
        table.add_row(what, str(count), ", ".join(examples[:3]) + (" …" if len(examples) > 3 else ""))
    console.print(table)
    for note in report.notes:
        console.print(f"note: {note}")
    for warning in report.warnings:
        console.print(f"warning: {warning}", soft_wrap=True)
    console.print(f"wrote {report.output} (sha256 {report.output_sha256})")
