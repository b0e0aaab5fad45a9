"""The golden fixtures captured from the official OV-AVSS code (``../shared/fixtures/ovavss-*reference``).

A capture holds no weights: its ``state_dict_keys.json`` lists every key with its shape and the weight rule
that made it (fixture README, "Weight rule"). For a float tensor with key K and shape S:
``g = Generator().manual_seed(crc32(K))``, ``v = randn(S, generator=g) * 0.02``; norm weights and
running_var become ``1 + |v|``. Integer buffers (Swin's ``relative_position_index``) keep their
constructor values: the Swin-B capture stores one copy (``intermediates.pt``) and, per entry, its
sum / min / max, which are checked here.

The parity tests and the benchmarks (``bench/clip_latency.py``, ``bench/gpu_check.py``) share this module:
the reference's state_dict, our model with it, the capture's inputs, and how far a mixed-precision run is
from the fp32 reference.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

# Mixed precision against the fp32 reference, per golden fixture (CPU autocast): about 4-5x what each
# measured. R50 (tests/models/test_ovavss_parity.py asserts it): bf16 mask probabilities 1.1e-3, binary
# masks 99.95 % equal, class probabilities 4.4e-4; fp16 2.5e-4, 99.99 %, 8.3e-5. Swin-B (bench/gpu_check.py
# --dry-run, against our fp32 run): bf16 1.1e-3, 99.67 %, 3.0e-4; fp16 2.7e-4, 99.95 %, 7.9e-5 (its deeper
# backbone flips more mask pixels). bench/gpu_check.py applies them to the CUDA runs.
PRECISION_BOUNDS = {
    "r50": {
        "bf16": {"mask_prob": 5e-3, "mask_agreement": 0.999, "class_prob": 2e-3},
        "fp16": {"mask_prob": 1e-3, "mask_agreement": 0.9998, "class_prob": 5e-4},
    },
    "swinb": {
        "bf16": {"mask_prob": 5e-3, "mask_agreement": 0.987, "class_prob": 2e-3},
        "fp16": {"mask_prob": 1e-3, "mask_agreement": 0.998, "class_prob": 5e-4},
    },
}


def reference_entries(fixture_dir: Path) -> list[dict]:
    return json.loads((Path(fixture_dir) / "state_dict_keys.json").read_text())["entries"]


def integer_buffer(entry: dict, fixture_dir: Path) -> torch.Tensor:
    """An ``int_untouched`` entry: the fixture's stored copy, checked against the entry's own statistics."""
    if not entry["key"].endswith("relative_position_index"):
        raise ValueError(f"no stored values for the integer buffer {entry['key']}")
    value = torch.load(Path(fixture_dir) / "intermediates.pt", weights_only=True)["swin_relative_position_index"]
    stats = (int(value.sum()), int(value.min()), int(value.max()), list(value.shape))
    if stats != (entry["int_sum"], entry["int_min"], entry["int_max"], entry["shape"]):
        raise ValueError(f"stored relative_position_index does not match the entry {entry['key']}")
    return value


def regenerate(entry: dict) -> torch.Tensor:
    generator = torch.Generator().manual_seed(zlib.crc32(entry["key"].encode()))
    value = torch.randn(tuple(entry["shape"]), generator=generator) * 0.02
    if entry["rule"] in ("norm_weight:1+|v|", "running_var:1+|v|"):
        value = 1 + value.abs()
    elif entry["rule"] != "v":
        raise ValueError(f"unexpected rule {entry['rule']!r} for {entry['key']}")
    return value


def reference_state_dict(fixture_dir: Path, prefixes: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
    """The reference model's state_dict (reference key names), optionally only some prefixes."""
    prefixes = tuple(prefixes) if prefixes is not None else None
    integer_buffers: dict[str, torch.Tensor] = {}  # one stored copy serves every identical buffer
    state = {}
    for entry in reference_entries(fixture_dir):
        if prefixes is not None and not entry["key"].startswith(prefixes):
            continue
        if entry["rule"] == "int_untouched":
            digest = entry["int_values_sha256"]
            if digest not in integer_buffers:
                integer_buffers[digest] = integer_buffer(entry, fixture_dir)
            state[entry["key"]] = integer_buffers[digest].clone()
        else:
            state[entry["key"]] = regenerate(entry)
    return state


def reference_model(fixture_dir: Path, device: str | torch.device = "cpu"):
    """Our OV-AVSS with the capture's weights, in eval mode: the preset detected from the keys (as
    ``ovavss convert`` does), every key renamed by the converter's map and loaded strictly. The parity
    tests go through ``ovavss convert`` itself; this is the in-memory path of the benchmarks."""
    from .api import create_model, load_state
    from .convert import detect_preset
    from .keymap import map_reference_key

    state = reference_state_dict(fixture_dir)
    model = create_model(detect_preset(state))
    renamed = {map_reference_key(key): value for key, value in state.items()}
    renamed.pop(None, None)  # the reference's constants (criterion.empty_weight, CLIP pixel mean / std)
    load_state(model, renamed, fixture_dir)
    return model.to(device).eval()


@dataclass
class ReferenceInputs:
    frames: torch.Tensor  # (T, H, W, 3) uint8 RGB, what predict_clip takes
    audio: torch.Tensor  # (N,) float64 waveform: the reference reads int16 / 32768
    sample_rate: int
    class_names: list[str]


def reference_inputs(fixture_dir: Path) -> ReferenceInputs:
    inputs = torch.load(Path(fixture_dir) / "inputs.pt", weights_only=True)
    return ReferenceInputs(
        frames=inputs["frames_rgb_uint8"].permute(0, 2, 3, 1).contiguous(),
        audio=inputs["audio_int16"].double() / 32768.0,
        sample_rate=int(inputs["sample_rate"]),
        class_names=list(inputs["class_names"]),
    )


def top_pairs(query_ids: torch.Tensor, class_probs: torch.Tensor, k: int = 10) -> set[tuple[int, int]]:
    """The ``k`` best (query, class) pairs of per-query class probabilities, as the reference's top-10 picks
    them (over the flattened valid queries x classes)."""
    flat = class_probs.flatten().topk(min(k, class_probs.numel())).indices
    return {(int(query_ids[i // class_probs.shape[1]]), int(i % class_probs.shape[1])) for i in flat}


def kept_share(pairs: Iterable[tuple[int, int]], parity_pairs: Iterable[tuple[int, int]]) -> float:
    """The share of the parity run's top pairs that another run's top pairs hold (the fast mode's cost)."""
    parity = {tuple(pair) for pair in parity_pairs}
    return len({tuple(pair) for pair in pairs} & parity) / len(parity)


def precision_agreement(
    pred_masks: torch.Tensor,
    query_ids: torch.Tensor,
    class_probs: torch.Tensor,
    reference_masks: torch.Tensor,
    reference_query_ids: torch.Tensor,
    reference_probs: torch.Tensor,
) -> dict[str, float | bool]:
    """How far a run (e.g. fp16) is from an fp32 one: max mask-probability difference, share of equal
    binary mask pixels, max class-probability difference on the run's queries (a query's probabilities
    depend only on its own crops, so a fast-mode run compares row by row) and whether the argmax classes
    agree. The keys are those of a :data:`PRECISION_BOUNDS` entry, plus ``argmax_equal``."""
    masks, reference = pred_masks.detach().float().cpu(), reference_masks.detach().float().cpu()
    rows = torch.tensor([int((reference_query_ids.cpu() == q).nonzero()) for q in query_ids.cpu()], dtype=torch.long)
    probs, expected = class_probs.detach().float().cpu(), reference_probs.detach().float().cpu()[rows]
    return {
        "mask_prob": (masks.sigmoid() - reference.sigmoid()).abs().max().item(),
        "mask_agreement": ((masks > 0) == (reference > 0)).double().mean().item(),
        "class_prob": (probs - expected).abs().max().item() if len(rows) else 0.0,
        "argmax_equal": bool(torch.equal(probs.argmax(-1), expected.argmax(-1))),
    }


def within_precision_bounds(agreement: dict[str, float | bool], fixture: str, precision: str) -> bool:
    bounds = PRECISION_BOUNDS[fixture][precision]
    return (
        agreement["mask_prob"] <= bounds["mask_prob"]
        and agreement["mask_agreement"] >= bounds["mask_agreement"]
        and agreement["class_prob"] <= bounds["class_prob"]
        and bool(agreement["argmax_equal"])
    )
