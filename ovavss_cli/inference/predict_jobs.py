"""``ovavss predict`` over many inputs: which output each input gets, resuming, sharding, the job report.

* **Inputs.** Files stay as given; a folder contributes its media files (not recursive, sorted):
  videos, and the audio files and still images it holds, which are skipped with their own one-line
  message ("is an audio file", "is a still image") instead of failing the job.
* **Sharding.** Under ``torchrun`` the inputs are split over the ranks by file size
  (``sharding.balanced_shards``); rank 0 plans the output folders once and gives the plan to every
  rank, so the outputs are those of one process.
* **Resume.** With ``resume``, an input whose output folder is complete (it only exists once
  complete: see ``atomic.output_folder``) and was made with the same weights (sha256) and options
  is skipped; temporary folders left by a killed run are removed and the input is done again. An
  output made with other options is a failure naming the first option that differs (``--force``
  replaces it).
* **Report.** Every input gets a record (status ``done`` / ``skipped`` / ``failed``, the one-line
  error, frames, seconds); rank 0 writes them as JSON and the command exits non-zero when one failed.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.text import Text

from ..atomic import atomic_write_text, unique_folder
from ..console import console, make_progress
from ..data.audio_conditions import load_replacement
from ..data.media import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, NotAVideoError, probe
from ..data.predictions import OVERLAY_FILE, PREDICTIONS_FILE
from ..data.vocab import parse_vocab
from ..device import resolve_device
from ..engine.distributed import ProcessInfo, broadcast_object
from ..errors import OvavssError
from ..hub import DEFAULT_WEIGHTS
from ..models.run_options import check_clip_queries, check_fast_mode, resolve_precision
from ..version import __version__
from .predictor import VideoPredictor
from .sharding import JobProgress, balanced_shards, gather_to_main, sharded_processes

REPORT_FORMAT = "ovavss-predict-report/1"
#: Where a multi-input run's report goes without ``--report``: in ``--out``, else the working folder.
DEFAULT_REPORT = "predict-report.json"
#: Header keys of predictions.json that do not decide the outputs (a resumed input may differ in them).
_NOT_COMPARED = ("ovavss_version", "device")

MEDIA_EXTENSIONS = VIDEO_EXTENSIONS | AUDIO_EXTENSIONS | IMAGE_EXTENSIONS


@dataclass(frozen=True)
class PlannedInput:
    """One input of the job and where its output goes."""

    path: Path
    target: Path
    from_folder: bool  # found in a folder (not-a-video files are skipped, not failed)
    size: int  # bytes, to balance the shards


@dataclass
class InputRecord:
    """One line of the job report."""

    input: str
    output: str | None
    status: str  # done | skipped | failed
    error: str | None = None  # the one-line reason (failed, or why it was skipped)
    frames: int = 0
    seconds: float = 0.0


@dataclass
class PredictReport:
    records: list[InputRecord] = field(default_factory=list)
    report_file: Path | None = None
    main_process: bool = True  # False on the ranks other than 0 of a torchrun job: they print nothing

    @property
    def outputs(self) -> list[tuple[Path, Path]]:
        """(input, output folder) of every input done or already done."""
        return [(Path(r.input), Path(r.output)) for r in self.records if r.status != "failed" and r.output]

    @property
    def failures(self) -> list[str]:
        return [r.error for r in self.records if r.status == "failed"]

    @property
    def exit_code(self) -> int:
        return 1 if self.failures else 0


def expand_inputs(inputs: Sequence[Path]) -> tuple[list[tuple[Path, bool]], list[str]]:
    """(path, found in a folder) per input file, and one-line problems for inputs that give nothing."""
    files, problems = [], []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.is_file() and p.suffix.lower() in MEDIA_EXTENSIONS)
            if not found:
                problems.append(str(OvavssError("folder has no video files", path=item)))
            files.extend((path, True) for path in found)
        elif item.exists():
            files.append((item, False))
        else:
            problems.append(str(OvavssError("file not found", path=item)))
    return files, problems


def plan_outputs(videos: Sequence[Path], out: Path | None, single_file: bool, resume: bool = False) -> list[Path]:
    """Where each video's results go.

    * no ``--out``: ``./<stem>_ovavss``, or ``_ovavss-1``, ... (a new folder, never an existing one;
      with ``resume``: ``./<stem>_ovavss`` itself, so a rerun finds what the last run wrote);
    * ``--out`` with one input file: that folder;
    * ``--out`` with several inputs (or a folder): ``<out>/<stem>``, numbered when stems repeat
      (an existing one needs ``--force``, as for a single ``--out``).
    """
    if out is not None and single_file:
        return [out]
    planned: list[Path] = []
    for video in videos:
        if out is None:
            planned.append(unique_folder(Path.cwd(), f"{video.stem}_ovavss", taken=planned, skip_existing=not resume))
        else:
            planned.append(unique_folder(out, video.stem, taken=planned, skip_existing=False))
    return planned


def plan_job(inputs: Sequence[Path], out: Path | None, resume: bool) -> tuple[list[PlannedInput], list[str]]:
    """The inputs of the job with their output folders, and the problems found on the way."""
    files, problems = expand_inputs(inputs)
    single_file = len(inputs) == 1 and not Path(inputs[0]).is_dir()
    targets = plan_outputs([path for path, _ in files], out, single_file, resume)
    planned = [
        PlannedInput(path, target, from_folder, path.stat().st_size)
        for (path, from_folder), target in zip(files, targets, strict=True)
    ]
    return planned, problems


def output_mismatch(target: Path, header: dict, write_video: bool) -> str | None:
    """None when ``target`` is a complete output of this input with this header; else what differs."""
    path = target / PREDICTIONS_FILE
    try:
        done = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return f"no readable {PREDICTIONS_FILE}"
    for key, value in header.items():
        if key not in _NOT_COMPARED and done.get(key) != value:
            return f"'{key}' differs"
    if "summary" not in done:
        return f"{PREDICTIONS_FILE} is incomplete"
    if write_video != (done.get("overlay") == OVERLAY_FILE and (target / OVERLAY_FILE).is_file()):
        return "'overlay' differs"
    return None


def remove_stale_temporaries(target: Path) -> None:
    """The hidden ``.<name>.*.tmp`` folders a killed run left next to ``target`` (never published)."""
    if target.parent.is_dir():
        for stale in target.parent.glob(f".{target.name}.*.tmp"):
            shutil.rmtree(stale, ignore_errors=True)


def _predict_one(
    predictor: VideoPredictor, item: PlannedInput, options, progress: JobProgress, show_files: bool
) -> InputRecord:
    start = time.perf_counter()
    record = InputRecord(str(item.path), str(item.target), "done")
    frames = 0

    def on_frame() -> None:
        nonlocal frames
        frames += 1
        progress.advance("frames")

    try:
        info = probe(item.path)
        force = options.force
        if options.resume and item.target.exists() and not options.force:
            mismatch = output_mismatch(item.target, predictor.header(item.path, info), options.write_video)
            if mismatch is None:
                record.status, record.error = "skipped", "already done (--resume)"
                return record
            raise OvavssError(
                f"output folder exists but was made differently ({mismatch}); pass --force to replace it", item.target
            )
        if options.resume:
            remove_stale_temporaries(item.target)
        files_progress = progress.progress if show_files else make_progress(disable=True)
        predictor.predict_to_folder(item.path, item.target, options.write_video, force, files_progress, on_frame)
    except NotAVideoError as error:
        record.status, record.error = ("skipped" if item.from_folder else "failed"), str(error)
        record.output = None
    except OvavssError as error:
        record.status, record.error, record.output = "failed", str(error), None
    finally:
        record.frames, record.seconds = frames, round(time.perf_counter() - start, 3)
    return record


def run_job(
    predictor: VideoPredictor, planned: Sequence[PlannedInput], options, process: ProcessInfo
) -> list[InputRecord] | None:
    """Predict this rank's share of ``planned``; on rank 0 every input's record in input order (else None)."""
    shard = balanced_shards([item.size for item in planned], process.world_size)[process.rank]
    results: list[tuple[int, InputRecord]] = []
    with JobProgress(process, "predict: inputs", len(planned), ("done", "frames")) as progress:
        for index in shard:
            record = _predict_one(predictor, planned[index], options, progress, show_files=not process.distributed)
            if record.status == "failed" or (record.status == "skipped" and record.error != "already done (--resume)"):
                print_failure(record.error, skipped=record.status == "skipped")
            results.append((index, record))
            progress.advance("done")
    return gather_to_main(results)


def write_report(path: Path, report: PredictReport, options) -> None:
    """The job report (JSON), written atomically; it describes the latest run of the job (an existing one is
    replaced only as :func:`refuse_existing_report` allows)."""
    counts = {status: sum(r.status == status for r in report.records) for status in ("done", "skipped", "failed")}
    payload = {
        "format": REPORT_FORMAT,
        "ovavss_version": __version__,
        "options": {key: (str(value) if isinstance(value, Path) else value) for key, value in asdict(options).items()},
        "world_size": int(os.environ.get("WORLD_SIZE", "1") or 1),
        "counts": counts,
        "inputs": [asdict(record) for record in report.records],
    }
    atomic_write_text(path, json.dumps(payload, indent=2) + "\n")


def report_path(options, multi_input: bool) -> Path | None:
    """``--report``, else for a multi-input run ``<out>/predict-report.json`` (``./`` without ``--out``)."""
    if options.report is not None:
        return Path(options.report)
    if not multi_input:
        return None
    return (Path(options.out) if options.out is not None else Path.cwd()) / DEFAULT_REPORT


def refuse_existing_report(options, multi_input: bool) -> None:
    """Before any work: an existing report (``--report``, or ``<out>/predict-report.json``) is kept unless the
    run continues its job (``--resume``, which rewrites it for the whole job) or replaces it (``--force``).

    The working-folder default of a run without ``--out`` is replaced by every run: such runs write new
    ``<name>_ovavss`` folders, so each is a job of its own and the report describes the latest.
    """
    if options.report is None and options.out is None:
        return
    path = report_path(options, multi_input)
    if path is not None and path.is_dir():
        raise OvavssError("is a directory; give a file name for --report", path=path)
    if path is not None and path.exists() and not (options.resume or options.force):
        raise OvavssError(
            "job report already exists; pass --resume to continue that job (the report is rewritten) or --force",
            path=path,
        )


def finish_report(report: PredictReport, options, multi_input: bool, process: ProcessInfo) -> PredictReport:
    """On rank 0: write the report file and list the failures at the end; every rank gets the exit code's facts."""
    if process.is_main:
        report.report_file = report_path(options, multi_input)
        if report.report_file is not None:
            write_report(report.report_file, report, options)
        if report.failures and multi_input:
            console.print(f"[bold red]{len(report.failures)} of {len(report.records)} inputs failed:")
            for failure in report.failures:
                print_failure(failure)
    report = broadcast_object(report)
    report.main_process = process.is_main
    return report


def print_failure(message: str, skipped: bool = False) -> None:
    label = ("skipped: ", "yellow") if skipped else ("error: ", "bold red")
    console.print(Text.assemble(label, message), soft_wrap=True)  # one line, never wrapped


@dataclass(frozen=True)
class PredictOptions:
    """``ovavss predict``'s options (see cli.py for their help)."""

    vocab: str
    weights: str | None = None
    out: Path | None = None
    fps: float = 1.0
    threshold: float = 0.3
    device: str = "auto"
    allow_silent: bool = False
    write_video: bool = True
    force: bool = False
    model: str | None = None  # "ovavss" | "avsc": must match the weights' own architecture when given
    audio: str | None = None  # "silence" | "noise" | a media file whose audio replaces the videos' own
    precision: str = "auto"  # fp32 | fp16 | bf16 | auto (fp32 on CPU, fp16 on CUDA)
    clip_queries: int | None = None  # the fast mode: queries sent to CLIP per window (None = all)
    resume: bool = False  # skip inputs whose complete output, made the same way, exists (predict_jobs)
    report: Path | None = None  # the job report (default for several inputs: predict_jobs.report_path)


def refuse_fast_mode_without_clip(weights: str, clip_queries: int) -> None:
    """``--clip-queries`` with AVSC weights fails before the model loads, where the weights' family is known
    without loading (a registry name, a local file); an ``hf://`` id is refused at its first window."""
    from ..models.api import family_of_weights

    family = family_of_weights(weights)
    if family is not None:
        check_fast_mode(family.model_class, clip_queries)


def run_predict(inputs: Sequence[Path], options: PredictOptions) -> PredictReport:
    """``ovavss predict``: load the model once, then predict every input (this rank's share under torchrun);
    failures are collected, not fatal, and listed in the job report."""
    vocab = parse_vocab(options.vocab)
    resolve_precision(options.precision, resolve_device(options.device))  # a bad value fails before any work
    check_clip_queries(options.clip_queries)
    if options.clip_queries is not None:
        refuse_fast_mode_without_clip(options.weights or DEFAULT_WEIGHTS, options.clip_queries)
    if options.allow_silent and options.audio is not None:
        raise OvavssError("--allow-silent: not with --audio (every video is run on the --audio sound instead)")
    audio = load_replacement(options.audio) if options.audio is not None else None  # a bad file fails first
    multi_input = len(inputs) > 1 or any(Path(item).is_dir() for item in inputs)
    refuse_existing_report(options, multi_input)
    with sharded_processes(options.device) as process:
        device = process.device
        planned, problems = broadcast_object(plan_job(inputs, options.out, options.resume) if process.is_main else None)
        report = PredictReport([InputRecord(problem.split(": ")[0], None, "failed", problem) for problem in problems])
        if process.is_main:
            for problem in problems:
                print_failure(problem)
        if planned:
            from ..models.api import load_model  # heavy (torch models); only once the inputs make sense

            model = load_model(options.weights or DEFAULT_WEIGHTS, device=device)
            if options.model is not None and options.model != model.architecture:
                raise OvavssError(
                    f"--model {options.model}: the weights '{model.weights_id}' hold a {model.architecture} model"
                )
            predictor = VideoPredictor(
                model, vocab, options.fps, options.threshold, options.allow_silent, device, audio, options.precision,
                options.clip_queries,
            )  # fmt: skip
            records = run_job(predictor, planned, options, process)
            report.records += records or []
        return finish_report(report, options, multi_input, process)
