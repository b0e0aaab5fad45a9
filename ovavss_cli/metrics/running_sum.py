"""A float sum that can be split over processes and put back together bit for bit.

Float addition is not associative: the sum of the per-process partial sums of a sharded evaluation
differs in the last bits from the sum one process accumulates. :class:`RunningSum` keeps its terms,
in order, and adds them up only when read, so the running sums of consecutive runs of frames
(:meth:`concatenated`, in run order) give exactly the one-process value; a few floats per frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, TypeVar

import numpy as np

Value = TypeVar("Value", float, np.ndarray)


class RunningSum(Generic[Value]):
    """``zero + term_1 + term_2 + ...`` in the order the terms were added (scalars or equal-shape arrays)."""

    def __init__(self, zero: Value = 0.0, terms: Sequence[Value] = ()):
        self.zero = zero
        self.terms: list[Value] = list(terms)

    def add(self, term: Value) -> None:
        self.terms.append(term)

    @property
    def value(self) -> Value:
        total = self.zero.copy() if isinstance(self.zero, np.ndarray) else self.zero
        for term in self.terms:
            total += term
        return total

    @classmethod
    def concatenated(cls, parts: Sequence[RunningSum[Value]]) -> RunningSum[Value]:
        """The sum over the terms of ``parts`` one after the other (``parts`` non-empty, in run order)."""
        return cls(parts[0].zero, [term for part in parts for term in part.terms])
