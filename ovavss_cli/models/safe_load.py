"""Read foreign checkpoint files without executing code from them.

* ``.pth`` / ``.pt``: ``torch.load(weights_only=True)`` (tensors and plain containers only).
* ``.pkl`` (detectron2 / Mask2Former model-zoo files: ``{"model": {name: numpy array}, ...}``): a
  restricted unpickler that admits numpy arrays, numpy scalars/dtypes and plain containers, and
  refuses every other global.
* ``.safetensors``: read as is.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from ..errors import OvavssError

# (module, name) pairs a numpy pickle needs; numpy 2 moved numpy.core to numpy._core. Protocols 0-2
# rebuild the array bytes with _codecs.encode (a text codec, no code), protocol 5 calls numeric._frombuffer.
_ALLOWED_GLOBALS = {
    (module, name)
    for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("_reconstruct", "scalar")
} | {
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("collections", "OrderedDict"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "tuple"),
    ("builtins", "list"),
    ("builtins", "dict"),
}


_REFUSED = "refusing to load global"


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        if module == "numpy" and name.endswith("DType"):  # numpy 2 dtype classes, e.g. Float32DType
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{_REFUSED} {module}.{name}")


def _tensor_state(mapping: Any, path: Path) -> dict[str, torch.Tensor]:
    """``{"model": sd}`` or a bare sd -> ``{name: tensor}``; anything else is an error."""
    if isinstance(mapping, dict) and isinstance(mapping.get("model"), dict):
        mapping = mapping["model"]
    if not isinstance(mapping, dict) or not mapping:
        raise OvavssError("no state_dict found (expected {'model': {...}} or a mapping of names to tensors)", path=path)
    state: dict[str, torch.Tensor] = {}
    for key, value in mapping.items():
        if isinstance(value, np.ndarray):
            value = torch.from_numpy(np.require(value, requirements="C"))  # keeps 0-d arrays 0-d
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise OvavssError(f"entry {key!r} is not a named tensor", path=path)
        state[key] = value
    return state


def _first_line(error: BaseException) -> str:
    text = str(error)
    # torch's weights_only errors bury the reason (a refused global, or what in the data it could not
    # read) deep in a long message about trusted sources
    if match := re.search(r"[Uu]nsupported (?:global: )?GLOBAL ([\w.]+)", text):
        return f"{_REFUSED} {match.group(1)}"
    if match := re.search(r"WeightsUnpickler error:\s*([^\n]+)", text):
        return match.group(1).strip()
    lines = text.strip().splitlines()
    return lines[0] if lines else error.__class__.__name__


def load_foreign_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The state_dict of a ``.pth``/``.pt``/``.pkl``/``.safetensors`` file, loaded without running its code."""
    path = Path(path)
    if not path.is_file():
        raise OvavssError("file not found", path=path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".pkl":
            with open(path, "rb") as handle:
                raw = _NumpyOnlyUnpickler(handle, encoding="latin1").load()
        elif suffix == ".safetensors":
            raw = load_file(str(path))
        else:
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        reason = _first_line(error)
        if not reason.startswith(_REFUSED):  # corrupt data, not code we refuse to run
            raise OvavssError(f"cannot read checkpoint (corrupt pickle: {reason})", path=path) from None
        raise OvavssError(
            f"refused: the pickle needs more than tensors/arrays and plain containers ({reason})", path=path
        ) from None
    except (EOFError, RuntimeError, ValueError, SafetensorError, OSError) as error:
        reason = f"{error.__class__.__name__}: {_first_line(error)}"
        raise OvavssError(f"cannot read checkpoint ({reason})", path=path) from None
    return _tensor_state(raw, path)
