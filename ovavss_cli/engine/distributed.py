"""Who this process is in a (possibly) distributed run, and the few collective calls training needs.

``torchrun --nproc_per_node N`` starts N processes with ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` in their
environment; a plain ``python`` / ``ovavss train`` run has none of them and is rank 0 of a world of 1, where
every helper here is a no-op. NCCL drives CUDA devices, gloo the CPU.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from ..device import resolve_device
from ..errors import OvavssError

#: How long a process waits at a collective call: rank 0 validates and writes checkpoints while the others wait.
COLLECTIVE_TIMEOUT = datetime.timedelta(hours=2)


@dataclass(frozen=True)
class ProcessInfo:
    rank: int
    local_rank: int
    world_size: int
    device: torch.device
    owns_group: bool = False  # this process joined the group in start_processes (and leaves it in stop_processes)

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs, validates and writes checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise OvavssError(f"environment variable {name}={value!r} is not an integer") from None


def start_processes(device_spec: str) -> ProcessInfo:
    """Resolve the device and, under torchrun (``WORLD_SIZE`` > 1), join the process group.

    On CUDA every process takes ``cuda:LOCAL_RANK`` (whatever index ``--device`` names), so N processes share
    the N visible GPUs; on the CPU all processes share the machine.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    device = resolve_device(device_spec)
    if world_size <= 1:
        return ProcessInfo(0, 0, 1, device)
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise OvavssError(
                f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} CUDA device(s): "
                "use at most one process per GPU (torchrun --nproc_per_node)"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    owns_group = not dist.is_initialized()
    if owns_group:
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=COLLECTIVE_TIMEOUT)
    return ProcessInfo(rank, local_rank, world_size, device, owns_group)


def stop_processes(process: ProcessInfo) -> None:
    if process.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def is_main_process() -> bool:
    """Rank 0, or the only process."""
    return not is_distributed() or dist.get_rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


@contextlib.contextmanager
def main_process_first() -> Iterator[bool]:
    """Run the body on rank 0 first, then on the other ranks (e.g. filling an on-disk cache once).

    Yields whether this is rank 0.
    """
    is_main = is_main_process()
    if not is_main:
        barrier()
    yield is_main
    if is_main:
        barrier()


def mean_over_processes(value: torch.Tensor) -> torch.Tensor:
    """The mean of a tensor over all processes (the tensor itself in a single process)."""
    if not is_distributed():
        return value
    value = value.detach().clone()
    dist.all_reduce(value)
    return value / dist.get_world_size()


def any_process(flag: bool, device: torch.device) -> bool:
    """True on every process when ``flag`` is true on at least one (e.g. a non-finite loss, Ctrl-C)."""
    if not is_distributed():
        return flag
    value = torch.tensor([float(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def gather_objects(value: Any) -> list[Any]:
    """Every process's ``value``, in rank order (``[value]`` in a single process)."""
    if not is_distributed():
        return [value]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def broadcast_object(value: Any) -> Any:
    """Rank 0's ``value`` on every process (``value`` itself in a single process)."""
    if not is_distributed():
        return value
    holder = [value if is_main_process() else None]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]
