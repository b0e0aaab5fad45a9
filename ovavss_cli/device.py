"""The one place that turns ``--device auto|cpu|cuda|cuda:N`` into a ``torch.device``."""

from __future__ import annotations

import re

import torch

from .errors import OvavssError

_CUDA_RE = re.compile(r"^cuda(?::(\d+))?$")


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """Resolve a user's device request.

    ``auto`` picks the first CUDA device when one is usable, else the CPU. Asking for CUDA on a
    machine without it (or for an index that does not exist) is an error, never a silent fallback.
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda:0") if torch.cuda.is_available() else torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    match = _CUDA_RE.match(spec)
    if match is None:
        raise OvavssError(f"--device: '{spec}' is not one of auto, cpu, cuda, cuda:N")
    if not torch.cuda.is_available():
        raise OvavssError(
            f"--device: '{spec}' requested but CUDA is not available on this machine (use --device cpu or auto)"
        )
    index = int(match.group(1) or 0)
    count = torch.cuda.device_count()
    if index >= count:
        raise OvavssError(f"--device: '{spec}' requested but only {count} CUDA device(s) are visible")
    return torch.device("cuda", index)
