"""``ovavss train``: the training loop, from one CPU to many GPUs under torchrun.

The loop is generic; everything model-specific comes from a :class:`~ovavss_cli.engine.task.TrainTask`
(:func:`build_task`). One step:

1. the batch of ``batch_size`` clips per process for this step is read and collated (augmented) with per-clip
   generators seeded by (run seed, step, clip index);
2. the global torch generator (dropout, stochastic depth) is reseeded from (run seed, step, process);
3. forward and loss under optional AMP, with loss points from per-clip generators;
4. a non-finite loss (on any process) stops the run with an error naming the step and the last good checkpoint;
5. backward, full-model gradient clipping, AdamW step, per-iteration schedule step.

Every random draw is therefore a function of (seed, step, clip / process): a clip's frames, augmentation,
targets and loss points do not depend on the batch it is in (only dropout masks are drawn per batch), and a run
resumed from a checkpoint replays exactly what the uninterrupted run would have done (on the CPU, bit for bit
with the same thread count; on GPUs up to the non-determinism of some CUDA kernels).

Data order: a ``DistributedSampler`` (shuffled per epoch with the run seed; a single process is a world of one)
gives each process its share of every epoch; a step is one batch per process, so the position in the data is a
function of the step too. Under torchrun each process trains a DistributedDataParallel replica (NCCL on CUDA,
gloo on the CPU); rank 0 alone logs, validates and writes, the others wait at barriers.

The run folder holds ``config.json``, ``train_log.jsonl``, ``checkpoints/step-*.pt`` (the newest few) and
``model.safetensors`` (+ ``.json``), the model of the newest checkpoint in the format ``load_model`` and
``ovavss predict --weights`` read. The first Ctrl-C (or SIGTERM) finishes the current step, writes a checkpoint
and stops; ``--resume`` continues.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from ..atomic import atomic_write_text
from ..console import console
from ..errors import OvavssError
from ..models.checkpoint import save_checkpoint
from ..models.ovavss.audio_cache import weights_fingerprint
from .checkpointing import (
    CHECKPOINT_DIR,
    TrainingState,
    latest_checkpoint,
    load_training_state,
    save_training_state,
)
from .distributed import (
    ProcessInfo,
    any_process,
    barrier,
    gather_objects,
    main_process_first,
    mean_over_processes,
    start_processes,
    stop_processes,
)
from .optim import build_lr_scheduler, build_optimizer, clip_full_model_gradients
from .point_sampling import AUGMENT_STREAM, LOSS_STREAM, derive_seed, sample_generators
from .run_config import (
    CONFIG_FILE,
    TrainConfig,
    command_config,
    config_from_dict,
    config_json,
    config_to_dict,
    describe_recipe,
    resumed_config,
)
from .run_log import LOG_FILE, JsonlLog, training_progress
from .task import TrainTask

#: Random stream of the global torch generator, reseeded every step per process (after LOSS and AUGMENT).
MODEL_STREAM = 2
MODEL_FILE = "model.safetensors"
#: What a run writes into its folder (a converted --init file goes to init/, which is not a run by itself).
RUN_FILES = (CONFIG_FILE, LOG_FILE, CHECKPOINT_DIR, MODEL_FILE)


def build_task(name: str, config: TrainConfig) -> TrainTask:
    """The ``TrainTask`` of ``--model`` (imported only when chosen)."""
    if name == "ovavss":
        from .ovavss_task import OVAVSSTask

        return OVAVSSTask(config)
    if name == "avsc":
        try:
            from .avsc_task import AVSCTask
        except ModuleNotFoundError as error:
            if error.name != f"{__package__}.avsc_task":
                raise
            raise OvavssError("--model avsc: AVSC training is not part of this installation yet") from None
        return AVSCTask(config)
    raise OvavssError(f"--model: unknown model '{name}' (known: ovavss, avsc)")


@dataclass
class TrainResult:
    run_dir: Path
    step: int  # optimiser steps done
    finished: bool  # False when stopped by Ctrl-C / SIGTERM before max_steps
    checkpoint: Path | None  # the newest checkpoint
    model_path: Path | None  # RUN_DIR/model.safetensors
    loss: float | None  # loss of the last step (mean over processes)
    validation: dict[str, float]  # the last validation's metrics ({} if none ran)
    weights_sha256: list[str]  # fingerprint of each process's weights at the end (all equal under DDP)


# ------------------------------------------------------------------------------------------ data order


class StepItems(Dataset):
    """``items[(step, index)] -> (step, index, dataset[index])``: dataset items that know their step."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __getitem__(self, key: tuple[int, int]) -> tuple[int, int, Any]:
        step, index = key
        return step, index, self.dataset[index]


class StepBatches(Sampler):
    """This process's batches of (step, index) for steps ``start`` .. ``stop - 1``, epoch after epoch.

    ``sampler`` orders one epoch (reshuffled per epoch, the same on every process with the run seed); a step is
    the next ``batch_size`` of its indices, so a step's batch depends only on the step.
    """

    def __init__(self, sampler: DistributedSampler, batch_size: int, start: int, stop: int):
        self.sampler = sampler
        self.batch_size = batch_size
        self.start, self.stop = start, stop

    @property
    def batches_per_epoch(self) -> int:
        return math.ceil(len(self.sampler) / self.batch_size)

    def position(self, step: int) -> tuple[int, int]:
        """(epoch, batches of that epoch done) after ``step`` steps."""
        return divmod(step, self.batches_per_epoch)

    def __len__(self) -> int:
        return self.stop - self.start

    def __iter__(self):
        step = self.start
        epoch, first = self.position(step)
        while step < self.stop:
            self.sampler.set_epoch(epoch)
            order = list(self.sampler)
            for batch in range(first, self.batches_per_epoch):
                yield [(step, index) for index in order[batch * self.batch_size : (batch + 1) * self.batch_size]]
                step += 1
                if step == self.stop:
                    return
            epoch, first = epoch + 1, 0


class StepCollate:
    """Collates (step, index, item) entries with the task's ``collate`` and per-clip augmentation generators."""

    def __init__(self, task: TrainTask, seed: int):
        self.task = task
        self.seed = seed

    def __call__(self, entries: Sequence[tuple[int, int, Any]]) -> tuple[int, list[int], Any]:
        step = entries[0][0]
        indices = [index for _, index, _ in entries]
        generators = sample_generators(self.seed, step, indices, AUGMENT_STREAM)
        return step, indices, self.task.collate([item for _, _, item in entries], generators)


# ------------------------------------------------------------------------------------------ interruption


class StopRequest:
    """While active, the first SIGINT / SIGTERM asks the loop to stop after the current step; a second one aborts.

    Signal handlers can only be installed from the main thread; elsewhere this never requests a stop.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        console.print("[yellow]stopping after this step (press Ctrl-C again to abort without a checkpoint)[/]")

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def __exit__(self, *exc_info) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


# ------------------------------------------------------------------------------------------ the loop


def _amp_dtype(enabled: bool, device: torch.device) -> torch.dtype | None:
    """bf16 autocast where the device has it (CPUs, recent GPUs), fp16 (with loss scaling) on older GPUs."""
    if not enabled:
        return None
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


class Trainer:
    """One process's part of a run: set up in ``__init__``, train with :meth:`run`."""

    def __init__(self, config: TrainConfig, process: ProcessInfo, resume: bool):
        self.config = config
        self.process = process
        self.run_dir = config.run_dir
        self.log = JsonlLog(self.run_dir / LOG_FILE)
        self.task = build_task(config.model, config)  # checks data and split before anything is written
        state = self._resume_state() if resume else self._check_new_run()

        torch.manual_seed(config.seed)  # the model's initial weights
        with main_process_first():  # rank 0 converts an --init file into the run folder, the others reuse it
            self.model = self.task.build_model().to(process.device)
        self.optimizer = build_optimizer(self.model, config.recipe.optimizer)
        self.scheduler = build_lr_scheduler(self.optimizer, config.schedule)
        self.amp_dtype = _amp_dtype(config.amp, process.device)
        self.scaler = torch.amp.GradScaler(process.device.type) if self.amp_dtype == torch.float16 else None
        self.start_step = 0
        if state is not None:
            self._load_state(state)

        self.dataset = self.task.train_dataset()
        if state is not None and state.num_clips != len(self.dataset):
            raise OvavssError(
                f"the run trained on {state.num_clips} clips but the data now gives {len(self.dataset)}: "
                "resume with the dataset and split the run started with",
                path=config.data,
            )
        sampler = DistributedSampler(
            self.dataset, num_replicas=process.world_size, rank=process.rank, shuffle=True, seed=config.seed
        )
        self.batches = StepBatches(sampler, config.batch_size, self.start_step, config.max_steps)
        # Only now, with model and data ready, does the folder become a run: a failed start leaves no run behind.
        self._write_run_start(state)

    # ---------------------------------------------------------------------------------------- run folder

    def _resume_state(self) -> TrainingState:
        path = latest_checkpoint(self.run_dir)
        if path is None:
            raise OvavssError("no checkpoint to resume from (checkpoints/ is empty)", path=self.run_dir)
        state = load_training_state(path)
        # The checkpoint's own config must agree with the run's (config.json may only have grown max_steps).
        resumed_config(config_from_dict(state.config, str(path)), _compared_fields(self.config))
        if state.step >= self.config.max_steps:
            raise OvavssError(
                f"the run has already done its {state.step} steps; pass a larger --max-steps to train longer",
                path=self.run_dir,
            )
        if state.world_size != self.process.world_size:
            raise OvavssError(
                f"the run was trained by {state.world_size} process(es), this is {self.process.world_size}: resume "
                "with the same number (torchrun --nproc_per_node), or the data order would change",
                path=path,
            )
        return state

    def _check_new_run(self) -> None:
        """A new run never overwrites a run's files: they may only be missing from ``--out``."""
        existing = [name for name in RUN_FILES if (self.run_dir / name).exists()]
        if existing:
            raise OvavssError(
                f"already holds a run ({existing[0]}): continue it with --resume, or choose another --out",
                path=self.run_dir,
            )
        barrier()  # every process has looked before rank 0 writes anything

    def _write_run_start(self, state: TrainingState | None) -> None:
        if self.process.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.run_dir / CONFIG_FILE, config_json(self.config))
            if state is not None:
                self.log.keep_until(state.step)
            event = {
                "event": "start" if state is None else "resume",
                "world_size": self.process.world_size,
                "device": str(self.process.device),
            }
            self.log.append({"step": 0 if state is None else state.step, **event})
        barrier()

    def _load_state(self, state: TrainingState) -> None:
        self.model.load_state_dict(state.model)
        self.optimizer.load_state_dict(state.optimizer)
        self.scheduler.load_state_dict(state.scheduler)
        if self.scaler is not None and state.scaler is not None:
            self.scaler.load_state_dict(state.scaler)
        self.start_step = state.step

    def _save(self, step: int) -> None:
        """Checkpoint and model export of ``step`` (rank 0); every process waits until they are written."""
        if self.process.is_main:
            epoch, position = self.batches.position(step)
            state = TrainingState(
                step=step,
                model=self.model.state_dict(),
                optimizer=self.optimizer.state_dict(),
                scheduler=self.scheduler.state_dict(),
                scaler=None if self.scaler is None else self.scaler.state_dict(),
                config=config_to_dict(self.config),
                world_size=self.process.world_size,
                num_clips=len(self.dataset),
                epoch=epoch,
                position=position,
            )
            save_training_state(self.run_dir, state, self.config.keep_checkpoints)
            weights, checkpoint_config = self.task.export(self.model)
            info = {"training": {"run": str(self.run_dir), "step": step, "preset": self.config.preset}}
            save_checkpoint(self.run_dir / MODEL_FILE, weights, kind="model", config=checkpoint_config, info=info)
        barrier()

    def _validate(self, step: int) -> dict[str, float]:
        metrics: dict[str, float] = {}
        if self.process.is_main:
            self.model.eval()
            with torch.no_grad():
                metrics = self.task.validate(self.model)
            self.model.train()
            if metrics:
                self.log.append({"step": step, "val": metrics})
                console.print(f"step {step} validation: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        barrier()
        return metrics

    # ---------------------------------------------------------------------------------------- steps

    def _non_finite(self, step: int, what: str, value: float, terms: Mapping[str, float]) -> OvavssError:
        last = latest_checkpoint(self.run_dir)
        parts = ", ".join(f"{name} {term:.4g}" for name, term in terms.items())
        return OvavssError(
            f"step {step}: {what} is {value} ({parts}); stopped without saving; "
            f"last good checkpoint: {last if last is not None else 'none yet'}"
        )

    def _step(self, model: nn.Module, step: int, indices: list[int], batch: Any) -> dict[str, Any]:
        """One optimiser step; returns its log record."""
        config, device = self.config, self.process.device
        torch.manual_seed(derive_seed(config.seed, step, self.process.rank, MODEL_STREAM))
        generators = sample_generators(config.seed, step, indices, LOSS_STREAM)
        autocast = torch.autocast(device.type, dtype=self.amp_dtype or torch.float32, enabled=bool(self.amp_dtype))
        with autocast:
            output = self.task.loss(model, batch, generators)
        loss = mean_over_processes(output.total.detach().float()).item()
        if not math.isfinite(loss):
            raise self._non_finite(step + 1, "the loss", loss, output.terms)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(output.total).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            output.total.backward()
        grad_norm = clip_full_model_gradients(self.optimizer, config.recipe.optimizer.grad_clip_norm).item()
        if self.scaler is not None:
            self.scaler.step(self.optimizer)  # skips the update when fp16 gradients overflowed
            self.scaler.update()
        elif any_process(not math.isfinite(grad_norm), device):
            raise self._non_finite(step + 1, "the gradient norm", grad_norm, output.terms)
        else:
            self.optimizer.step()
        lr = max(group["lr"] for group in self.optimizer.param_groups)  # the head's lr (the backbone's is lower)
        self.scheduler.step()
        return {"step": step + 1, "epoch": self.batches.position(step)[0], "loss": loss, **output.terms,
                "lr": lr, "grad_norm": grad_norm}  # fmt: skip

    def run(self) -> TrainResult:
        config, process = self.config, self.process
        self._announce()
        loader = DataLoader(
            StepItems(self.dataset),
            batch_sampler=self.batches,
            collate_fn=StepCollate(self.task, config.seed),
            num_workers=config.workers,
        )
        model: nn.Module = self.model
        if process.distributed:
            device_ids = [process.device] if process.device.type == "cuda" else None
            model = DistributedDataParallel(self.model, device_ids=device_ids)
        self.model.train()
        step, record, validation = self.start_step, None, {}
        started = time.perf_counter()
        progress = training_progress() if process.is_main else contextlib.nullcontext()
        with StopRequest() as stop, progress:
            if process.is_main:
                bar = progress.add_task("training", total=config.max_steps, completed=step, loss="-", lr="-")
            for batch_step, indices, batch in loader:
                record = self._step(model, batch_step, indices, batch)
                step = record["step"]
                record["seconds"] = round(time.perf_counter() - started, 3)
                if process.is_main:
                    if step % config.log_every == 0 or step == config.max_steps:
                        self.log.append(record)
                    progress.update(bar, completed=step, loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}")
                stopping = any_process(stop.requested, process.device)
                if step % config.checkpoint_every == 0 or step == config.max_steps or stopping:
                    self._save(step)
                if config.val_every and (step % config.val_every == 0 or step == config.max_steps):
                    validation = self._validate(step)
                if stopping:
                    break
        finished = step == config.max_steps
        hashes = gather_objects(weights_fingerprint(self.model))
        if process.is_main:
            event = "end" if finished else "interrupted"
            self.log.append({"step": step, "event": event, "weights_sha256": hashes})
        return TrainResult(
            run_dir=self.run_dir,
            step=step,
            finished=finished,
            checkpoint=latest_checkpoint(self.run_dir),
            model_path=self.run_dir / MODEL_FILE,
            loss=None if record is None else record["loss"],
            validation=validation,
            weights_sha256=hashes,
        )

    def _announce(self) -> None:
        if not self.process.is_main:
            return
        config, process = self.config, self.process
        where = str(process.device)
        if process.distributed:
            where = f"{process.world_size} processes on {process.device.type}"
        console.print(
            f"training {config.preset} on {len(self.dataset)} clips, batch {config.batch_size} per process, {where}; "
            f"steps {self.start_step + 1}..{config.max_steps}; run folder {self.run_dir}"
        )
        for line in describe_recipe(config):
            console.print(f"  {line}")


def _compared_fields(config: TrainConfig) -> dict[str, Any]:
    """The config as ``resumed_config`` options (every field given)."""
    return {field.name: getattr(config, field.name) for field in dataclasses.fields(config)}


def run_training(config: TrainConfig, *, resume: bool = False) -> TrainResult:
    """Train (or, with ``resume``, continue) the run described by ``config``; see the module docstring."""
    process = start_processes(config.device)
    threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        return Trainer(config, process, resume).run()
    finally:
        torch.set_num_threads(threads)  # a caller's (e.g. a test session's) setting is theirs
        stop_processes(process)


def train(options: Mapping[str, Any], *, resume: bool = False) -> TrainResult:
    """``ovavss train``: the config from the command-line options (``None`` = not given), then the run."""
    return run_training(command_config(options, resume), resume=resume)
