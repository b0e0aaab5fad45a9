"""Evaluation metrics.

* :mod:`.avss`: the OV-AVSS metrics on label maps (metric A: GZSL confusion-matrix mIoU with
  base / novel / harmonic; metric B: AVSBench per-frame mIoU / F-score, bug-for-bug).
* :mod:`.object`: AVSBench-object (S4 / MS3) J and F, official per-batch and batch-independent.
* :mod:`.evaluate`: dataset + predictions -> results, with the reference's GT / prediction preparation.
* :mod:`.report`: the per-class table, the summary line and the results JSON.
"""

from .avss import SegmentationMetrics, SegmentationScores
from .object import ObjectMetrics, ObjectScores, object_metrics

__all__ = ["ObjectMetrics", "ObjectScores", "SegmentationMetrics", "SegmentationScores", "object_metrics"]
