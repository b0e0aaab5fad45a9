"""ovavss: open-vocabulary audio-visual segmentation toolkit."""

from __future__ import annotations

from .version import __version__

__all__ = ["__version__", "load_model"]


def load_model(path_or_name, device="cpu", **kwargs):
    """Load a model (either family) from a checkpoint path, a registry name or ``hf://org/repo[/file]``.

    Imported lazily so that ``import ovavss_cli`` (and ``ovavss --help``) stay fast.
    """
    from .models.api import load_model as _load_model

    return _load_model(path_or_name, device=device, **kwargs)
