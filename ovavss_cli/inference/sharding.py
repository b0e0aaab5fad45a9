"""Inference over many inputs on every process of a ``torchrun`` job: who does what, and putting it together.

``torchrun --nproc_per_node N -m ovavss_cli.cli predict|eval ...`` starts N processes (the same
environment as ``ovavss train``, see ``engine.distributed``). Each input (a video, an AVSBench clip)
goes to exactly one rank: :func:`balanced_shards` assigns them largest first to the least-loaded
rank, so the split depends only on the inputs and the world size. Every rank works on its shard on
its own device, and the results travel to rank 0 (:func:`gather_to_main`), which alone writes the
summary files and prints; merged in input order, they are what one process would have computed.

:class:`JobProgress` is the bar of the whole job: every rank adds to its own counters, and rank 0
shows their sum, exchanged twice a second over a separate gloo group by a background thread (so
the exchange never waits for a slow model call and works under NCCL too).

Code that scores a model on a dataset (``eval --weights``, the audio probe) splits the clips with
:func:`contiguous_shards` instead: consecutive runs balanced by frames, so that the per-rank metric
tallies, gathered with :func:`gather_results` and merged in rank order, are exactly those of one pass
(float sums depend on their order; official S4 / MS3 batches stay whole). Their saved predictions go
into one folder that every rank writes and rank 0 publishes (:func:`shared_output_folder`).
"""

from __future__ import annotations

import bisect
import contextlib
import heapq
import itertools
import os
import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from ..atomic import temporary_dir_beside
from ..console import make_progress
from ..engine.distributed import (
    ProcessInfo,
    barrier,
    broadcast_object,
    gather_objects,
    is_main_process,
    start_processes,
    stop_processes,
)
from ..errors import OvavssError

#: Seconds between two exchanges of the progress counters.
PROGRESS_INTERVAL_S = 0.5

Result = TypeVar("Result")


def balanced_shards(sizes: Sequence[float], world_size: int) -> list[list[int]]:
    """Item indices per rank: largest item first to the least-loaded rank (ties: the lower index / rank).

    Each rank's list is in input order. Deterministic: the same sizes give the same shards on every process.
    """
    if world_size < 1:
        raise ValueError("world_size must be >= 1")
    loads = [(0.0, rank) for rank in range(world_size)]
    shards: list[list[int]] = [[] for _ in range(world_size)]
    for index in sorted(range(len(sizes)), key=lambda i: (-float(sizes[i]), i)):
        load, rank = heapq.heappop(loads)
        shards[rank].append(index)
        heapq.heappush(loads, (load + max(float(sizes[index]), 1e-9), rank))
    return [sorted(shard) for shard in shards]


def contiguous_shards(sizes: Sequence[float], world_size: int) -> list[range]:
    """Consecutive item indices per rank, cut where the running total of ``sizes`` is nearest to r / N of
    the whole (ties: the earlier cut). Deterministic; ranks past the items get empty ranges."""
    if world_size < 1:
        raise ValueError("world_size must be >= 1")
    running = list(itertools.accumulate((float(size) for size in sizes), initial=0.0))
    cuts = [0]
    for rank in range(1, world_size):
        target = running[-1] * rank / world_size
        after = bisect.bisect_left(running, target)  # the first cut at or past the target
        before = max(after - 1, 0)
        nearest = before if target - running[before] <= running[after] - target else after
        cuts.append(max(nearest, cuts[-1]))
    cuts.append(len(sizes))
    return [range(start, stop) for start, stop in itertools.pairwise(cuts)]


def gather_results(run_local: Callable[[], Result]) -> list[Result]:
    """Every rank's ``run_local()``, in rank order, on every rank (``[run_local()]`` in one process).

    A user error (``OvavssError``) on any rank is raised on every rank, so that no rank is left waiting
    for one that gave up; the first rank's error wins.
    """
    try:
        local: tuple[bool, Any] = (True, run_local())
    except OvavssError as error:
        local = (False, str(error))
    parts = gather_objects(local)
    errors = [value for ok, value in parts if not ok]
    if errors:
        raise OvavssError(errors[0])
    return [value for _, value in parts]


@contextlib.contextmanager
def shared_output_folder(path: str | Path, process: ProcessInfo) -> Iterator[Path]:
    """``atomic_dir`` for a whole job: rank 0 makes a temporary folder next to ``path``, every rank writes
    its share into it, and rank 0 renames it to ``path`` once every rank is done (removes it on an error).

    The ranks must see the same file system (one machine, or a shared one): checked before any work.
    """
    tmp = Path(broadcast_object(str(temporary_dir_beside(path)) if process.is_main else None))

    def check_shared() -> None:
        if not tmp.is_dir():
            raise OvavssError(
                f"rank {process.rank} does not see the output folder rank 0 made; the processes of one "
                "job must share the file system of their outputs",
                path=path,
            )

    try:
        gather_results(check_shared)
        yield tmp
        barrier()
        if process.is_main:
            os.replace(tmp, path)
    finally:
        if process.is_main and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def set_cpu_threads(process: ProcessInfo) -> None:
    """Give each CPU process of this machine its share of the cores, unless the user chose (OMP_NUM_THREADS)."""
    if process.device.type != "cpu" or not process.distributed or os.environ.get("OMP_NUM_THREADS"):
        return
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", process.world_size))
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, local_processes)))


def gather_to_main(items: list[tuple[int, Any]]) -> list[Any] | None:
    """On rank 0: every rank's ``(index, value)`` pairs merged and sorted by index, values only; else None."""
    gathered = gather_objects(items)
    if not is_main_process():
        return None
    return [value for _, value in sorted((pair for part in gathered for pair in part), key=lambda p: p[0])]


@contextlib.contextmanager
def sharded_processes(device: str) -> Iterator[ProcessInfo]:
    """Join the torchrun job (a world of one without it) with a CPU thread budget; leave it at the end."""
    process = start_processes(device)
    try:
        set_cpu_threads(process)
        yield process
    finally:
        stop_processes(process)


class JobProgress:
    """A progress bar of the whole job on rank 0; every rank calls :meth:`advance` for its own work.

    ``counters`` names what is counted: the first is the bar (its total is ``total``), the others are
    shown in the description (e.g. frames). Use as a context manager; leaving it waits for every rank.
    """

    def __init__(self, process: ProcessInfo, title: str, total: int, counters: Sequence[str] = ("done",)):
        self.process, self.title, self.counters = process, title, tuple(counters)
        self.local = [0] * len(self.counters)
        self.progress = make_progress(transient=True, disable=not process.is_main)
        self.task = self.progress.add_task(title, total=total)
        self._lock = threading.Lock()
        self._finished = threading.Event()
        self._thread: threading.Thread | None = None
        # Every rank creates the group, in the same order (a collective call).
        self._group = dist.new_group(backend="gloo") if process.distributed else None

    def advance(self, counter: str = "done", amount: int = 1) -> None:
        with self._lock:
            self.local[self.counters.index(counter)] += amount
            totals = list(self.local)
        if self._group is None:
            self._show(totals)

    def _show(self, totals: Sequence[int]) -> None:
        extra = ", ".join(f"{value} {name}" for name, value in zip(self.counters[1:], totals[1:], strict=True))
        ranks = f" on {self.process.world_size} processes" if self.process.distributed else ""
        description = f"{self.title}{ranks}" + (f" ({extra})" if extra else "")
        self.progress.update(self.task, completed=totals[0], description=description)

    def _exchange(self) -> None:
        while True:
            with self._lock:
                values = [*self.local, int(self._finished.is_set())]
            tensor = torch.tensor(values, dtype=torch.int64)
            dist.all_reduce(tensor, group=self._group)
            self._show(tensor[:-1].tolist())
            if int(tensor[-1]) == self.process.world_size:  # every rank is done: all leave this loop together
                return
            self._finished.wait(PROGRESS_INTERVAL_S)

    def __enter__(self) -> JobProgress:
        self.progress.__enter__()
        if self._group is not None:
            self._thread = threading.Thread(target=self._exchange, name="ovavss-job-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._finished.set()
        if self._thread is not None:
            self._thread.join()
            dist.destroy_process_group(self._group)
        self.progress.__exit__(*exc_info)
