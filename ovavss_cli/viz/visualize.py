"""``ovavss visualize``: a predict output folder gets overlays and a timeline (``overlay``), a
``PRED_DIR/<uid>/<frame>.png`` folder with ``--data`` gets GT | prediction sheets (``compare``).

Each option belongs to one of the two; given to the other, it is refused with one line, never ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..errors import OvavssError
from .compare import visualize_dataset
from .overlay import visualize_prediction_folder


def run_visualize(
    predictions: Path,
    data: Path | None = None,
    clips: Sequence[str] = (),
    video: Path | None = None,
    out: Path | None = None,
    force: bool = False,
) -> Path:
    """The folder written: comparison sheets with ``data``, else overlays of a predict output folder."""
    if data is None:
        if clips:
            raise OvavssError("--clip: only with --data (a predict output folder is one video, drawn whole)")
        return visualize_prediction_folder(predictions, out, video, force)
    if video is not None:
        raise OvavssError("--video: only without --data (the comparison sheets draw the dataset's own frames)")
    return visualize_dataset(data, predictions, out, clips, force)
