"""Decode ahead: run an iterator in a background thread, a bounded number of items ahead of its consumer.

Video decoding (PyAV), audio resampling (numpy) and the model (torch) all release the GIL for their
heavy work, so a thread is enough to overlap preparing window k + 1 with the model on window k. The
queue is bounded, so memory stays that of ``depth`` items whatever the video's length.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

Item = TypeVar("Item")

_DONE = object()
#: Seconds between the producer's checks that the consumer is still there.
_POLL_S = 0.1


def decode_ahead(items: Iterable[Item], depth: int = 2) -> Iterator[Item]:
    """Yield ``items`` in order, produced up to ``depth`` ahead in a thread (``depth`` 0: inline).

    An exception raised while producing is re-raised in the consumer at its place in the sequence;
    when the consumer stops early, the producer is stopped and its iterator closed (files released).
    """
    if depth <= 0:
        yield from items
        return
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                buffer.put(entry, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        iterator = iter(items)
        try:
            for item in iterator:
                if not put((item, None)):
                    return
            put((_DONE, None))
        except BaseException as error:  # handed to the consumer, raised there
            put((_DONE, error))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="ovavss-decode-ahead", daemon=True)
    worker.start()
    try:
        while True:
            item, error = buffer.get()
            if error is not None:
                raise error
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        worker.join()
