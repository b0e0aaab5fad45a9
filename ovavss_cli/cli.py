"""The ``ovavss`` command line: parse arguments, call one package function, print. No logic here."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.core import TyperGroup

from .errors import OvavssError
from .version import __version__


class _OvavssGroup(TyperGroup):
    """Turns a user error raised anywhere below a command into one line on stderr and exit 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except OvavssError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(code=1) from None


app = typer.Typer(
    name="ovavss",
    cls=_OvavssGroup,
    help="Open-vocabulary audio-visual segmentation: AVSBench data, OV-AVSS, train / eval / predict.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

DEVICE_HELP = "auto | cpu | cuda | cuda:N (auto = first GPU if any, else CPU)."
# Model run options shared by predict and eval (models/run_options.py).
PRECISION_OPTION = typer.Option(
    "auto", "--precision", help="fp32 | bf16 | fp16 | auto (fp32 on CPU: the parity path; fp16 on CUDA, as the "
    "official evaluation)."
)  # fmt: skip
INIT_MODE_OPTION = typer.Option(
    None, "--init-mode", help="Mask2Former .pkl only: reference (default; fill what the official checkpointer fills "
    "for the file's key layout: with current key names the pixel decoder stays random) | full (every tensor that fits)."
)  # fmt: skip
CLIP_QUERIES_OPTION = typer.Option(
    "all", "--clip-queries", help="Fast mode (OV-AVSS): only the K queries most likely to sound go to CLIP per "
    "window (e.g. 10: ~10x faster on CPU); all = the reference."
)  # fmt: skip


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"ovavss {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Open-vocabulary audio-visual segmentation toolkit."""
    from .console import hide_open_clip_random_init_warning

    hide_open_clip_random_init_warning()


@app.command("make-split")
def make_split_cmd(
    root: str = typer.Argument(..., help="AVSBench-semantic root (metadata.csv, label2idx.json)."),
    out: str = typer.Option("avsbench-ov-split.json", "--out", "-o", help="Split JSON to write."),
    rule: str = typer.Option(
        "exclude-novel",
        "--rule",
        help="exclude-novel: train drops every clip with a novel sounding object (never seen nor heard). "
        "ignore-novel: train also keeps clips with a base object and lists their novel classes as ignored. "
        "val/test keep every clip. The paper's exact rule is unknown (see ovavss_cli/data/split.py).",
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing --out file."),
) -> None:
    """Write the AVSBench-OV split (base/novel classes, train/val/test clip uids) as JSON."""
    from .data.split import make_split_file

    split = make_split_file(root, out, rule=rule, force=force)
    counts = split.counts
    typer.echo(
        f"wrote {out} (rule {split.rule}): train {counts['train']} (dropped {counts['train_dropped']}, "
        f"{counts['train_with_ignored_novel']} with ignored novel masks), val {counts['val']}, test {counts['test']}; "
        f"{len(split.base_ids)} base / {len(split.novel_ids)} novel classes"
    )


@app.command("check")
def check_cmd(
    root: str = typer.Argument(
        ..., help="AVSBench-semantic root (metadata.csv) or AVSBench-object root (Single-source/, Multi-sources/)."
    ),
    fast: bool = typer.Option(
        False, "--fast", help="Decode only the first annotated frame per clip (every file is still looked for)."
    ),
    json_out: str | None = typer.Option(None, "--json", help="Also write the full report (every finding) as JSON."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing --json file."),
) -> None:
    """Check an AVSBench root: missing files, unknown colours, quirky rows, per-split counts (exit 1 on problems)."""
    from .data import check

    report = check.run_check(root, fast=fast, json_out=json_out, force=force)
    check.print_report(report)
    raise typer.Exit(code=0 if report.ok else 1)


@app.command("generate-data")
def generate_data_cmd(
    out: str = typer.Argument(..., help="New folder to write (must not exist, or be empty)."),
    layout: str = typer.Option(
        "avss",
        "--layout",
        help="avss (AVSBench-semantic) | s4 | ms3 (AVSBench-object: OUT/Single-source, OUT/Multi-sources).",
    ),
    clips: int = typer.Option(9, "--clips", min=1, help="Number of clips (quirks add their own)."),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed gives the same files."),
    silent: int = typer.Option(0, "--silent-distractors", min=0, help="Visible but silent objects per clip."),
    world: str = typer.Option(
        "classic", "--world", help="classic | graded: graded ties each class's hue and tone pitch to one grade."
    ),
    quirks: str = typer.Option(
        "", "--quirks", help="avss only: comma-separated real-data quirks (typo, background-row, ...) or 'all'."
    ),
) -> None:
    """Write a small synthetic AVSBench tree (real on-disk format) for trying the tools without the dataset."""
    from .data.synthetic import generate_tree

    info = generate_tree(layout, out, clips, seed=seed, silent_distractors=silent, quirks=quirks, world=world)
    typer.echo(f"wrote {info.root}: {len(info.clips)} clips ({layout})")


@app.command("eval")
def eval_cmd(
    data: str = typer.Option(
        ...,
        "--data",
        help="AVSBench-semantic root (metadata.csv, label2idx.json, v1s/v1m/v2); for s4 / ms3 the AVSBench-object "
        "root (Single-source/, Multi-sources/).",
    ),
    benchmark: str = typer.Option(
        "avsbench-ov",
        "--benchmark",
        help="avsbench-ov: OV-AVSS metrics on AVSBench-semantic. s4 | ms3: AVSBench-object mJ / mF (official "
        "per-batch and clean); --pred PRED_DIR/<name>/<name>_<k>.png masks, or --weights an AVSC model.",
    ),
    batch_size: int | None = typer.Option(
        None, "--batch-size", help="s4 / ms3: clips per official batch (default 4, as test.sh; F is a per-batch max)."
    ),
    pred: str | None = typer.Option(
        None,
        "--pred",
        help="Predictions PRED_DIR/<uid>/<frame>.png (index maps 0..70 or palette RGB, any size) to score; "
        "with --weights: the new folder the model's predictions are saved to.",
    ),
    weights: str | None = typer.Option(
        None,
        "--weights",
        help="Run this model over the test clips and score it (registry name, .safetensors or hf://). "
        "Default when --pred is not given: the registry's default model.",
    ),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    threshold: float | None = typer.Option(
        None, "--threshold", help="avsbench-ov with --weights: minimum score of a painted mask (default 0.3)."
    ),
    split_file: str | None = typer.Option(
        None, "--split-file", help="Split JSON from make-split: score its splits.test (default: metadata test rows)."
    ),
    base: bool = typer.Option(False, "--base", help="Show the 40 base classes only (the JSON keeps everything)."),
    novel: bool = typer.Option(False, "--novel", help="Show the 30 novel classes only (the JSON keeps everything)."),
    gt_source: str = typer.Option(
        "auto", "--gt-source", help="auto (labels_rgb as OV-AVSS reads, else labels_semantic) | rgb | semantic."
    ),
    filter_gt: bool = typer.Option(
        True, "--filter-gt/--no-filter-gt", help="Zero GT classes not in the clip's a_obj, as OV-AVSS does."
    ),
    allow_missing: bool = typer.Option(
        False, "--allow-missing", help="Score GT frames without a prediction as background instead of failing."
    ),
    json_out: str | None = typer.Option(
        None, "--json", help="Write all metrics and the per-class table to this JSON file."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing --json file."),
    precision: str = PRECISION_OPTION,
    clip_queries: str = CLIP_QUERIES_OPTION,
) -> None:
    """Score predictions on the AVSBench-OV test split with the OV-AVSS metrics (mIoU all/base/novel/harmonic, F),
    or on S4 / MS3 with the AVSBench-object J and F (torchrun: --weights sharded over the processes)."""
    from .inference.evaluate import EvalOptions, run_eval
    from .metrics import object_eval, report
    from .models.run_options import parse_clip_queries

    options = EvalOptions(
        data, benchmark, pred, weights, device, precision, json_out, force, allow_missing, split_file,
        report.class_set_from_flags(base, novel), gt_source, filter_gt, threshold, parse_clip_queries(clip_queries),
        batch_size,
    )  # fmt: skip
    payload = run_eval(options)
    if payload is None:  # a torchrun rank other than 0: rank 0 prints
        return
    if benchmark == "avsbench-ov":
        report.show_results(payload)
        typer.echo(report.summary_line(payload))
    else:
        typer.echo(object_eval.summary_line(payload))


@app.command("probe-audio")
def probe_audio_cmd(
    root: str = typer.Argument(..., help="Dataset root, as eval's --data (AVSBench-semantic, or AVSBench-object)."),
    weights: str = typer.Option(..., "--weights", help="The model to probe (registry name, .safetensors or hf://)."),
    model: str | None = typer.Option(None, "--model", help="ovavss | avsc: check that the weights hold this model."),
    benchmark: str = typer.Option(
        "avsbench-ov", "--benchmark", help="avsbench-ov (mIoU base/novel, F) | s4 | ms3 (mJ / mF; AVSC models)."
    ),
    split_file: str | None = typer.Option(
        None, "--split-file", help="avsbench-ov: split JSON from make-split (its splits.test)."
    ),
    audio_conditions: str = typer.Option(
        "original,silence,noise,misaligned",
        "--audio-conditions",
        help="Comma-separated subset of original, silence, noise (white, RMS 0.1), misaligned (another test "
        "clip's sound, sharing no sounding class).",
    ),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    threshold: float | None = typer.Option(
        None, "--threshold", help="avsbench-ov: minimum score of a painted mask (default 0.3)."
    ),
    batch_size: int | None = typer.Option(None, "--batch-size", help="s4 / ms3: clips per official batch (default 4)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the noise and of the misaligned assignment."),
    json_out: str | None = typer.Option(None, "--json", help="Write the report (keys in the README) as JSON."),
    chart: str | None = typer.Option(None, "--chart", help="Write a PNG bar chart of the metrics per condition."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing --json / --chart files."),
) -> None:
    """Does the model listen? Score it on the test clips with their sound kept, muted, noised and swapped
    (torchrun: sharded over the processes)."""
    from .inference.audio_probe import run_probe_audio, summary_line

    report = run_probe_audio(
        root, weights=weights, model_name=model, benchmark=benchmark, split_file=split_file,
        conditions=audio_conditions, device=device, threshold=threshold, batch_size=batch_size, seed=seed,
        json_out=json_out, chart_out=chart, force=force,
    )  # fmt: skip
    if report is not None:  # None on the torchrun ranks other than 0
        typer.echo(summary_line(report))


@app.command("train")
def train_cmd(
    data: str | None = typer.Option(None, "--data", help="Dataset root (AVSBench-semantic for ovavss)."),
    split: str | None = typer.Option(None, "--split", help="AVSBench-OV split JSON from make-split (ovavss)."),
    model: str | None = typer.Option(None, "--model", help="ovavss (default) | avsc."),
    preset: str | None = typer.Option(None, "--preset", help="tiny | r50 (default) | swinb: model and recipe."),
    init: str | None = typer.Option(
        None, "--init", help="Initial weights: Mask2Former COCO .pkl, official .pth, or an ovavss .safetensors."
    ),
    init_mode: str | None = INIT_MODE_OPTION,
    vggish: str | None = typer.Option(None, "--vggish", help="VGGish weights (vggish-10086976.pth); r50/swinb."),
    out: str | None = typer.Option(None, "--out", "-o", help="Run folder (default runs/<model>-<preset>)."),
    device: str | None = typer.Option(None, "--device", help=DEVICE_HELP),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Clips per step and process (default 1)."),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Steps to train (default: the recipe's)."),
    checkpoint_every: int | None = typer.Option(None, "--checkpoint-every", help="Steps between checkpoints."),
    keep_checkpoints: int | None = typer.Option(None, "--keep-checkpoints", help="Newest checkpoints kept (3)."),
    seed: int | None = typer.Option(None, "--seed", help="Run seed: weights, data order, augmentation (42)."),
    amp: bool | None = typer.Option(None, "--amp/--no-amp", help="Mixed precision (bf16; fp16 on older GPUs)."),
    workers: int | None = typer.Option(None, "--workers", help="DataLoader worker processes (default 0)."),
    log_every: int | None = typer.Option(None, "--log-every", help="Steps between log records (default 1)."),
    val_every: int | None = typer.Option(None, "--val-every", help="Steps between validations (0: none)."),
    val_clips: int | None = typer.Option(None, "--val-clips", help="Validate on the first N val clips (0: all)."),
    threads: int | None = typer.Option(None, "--threads", help="CPU threads for torch (default: torch's)."),
    task_options: list[str] | None = typer.Option(
        None, "--task-option", help="Model-specific KEY=VALUE (VALUE read as JSON when it parses); repeatable."
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Continue the run in --out from its newest checkpoint, with its saved config."
    ),
) -> None:
    """Train OV-AVSS (or AVSC): one process, or many under torchrun (DistributedDataParallel)."""
    from .engine.run_config import parse_task_options
    from .engine.train import train

    options = dict(
        data=data, split=split, model=model, preset=preset, init=init, init_mode=init_mode, vggish=vggish, out=out,
        device=device,
        batch_size=batch_size, max_steps=max_steps, checkpoint_every=checkpoint_every,
        keep_checkpoints=keep_checkpoints, seed=seed, amp=amp, workers=workers, log_every=log_every,
        val_every=val_every, val_clips=val_clips, threads=threads, task_options=parse_task_options(task_options),
    )  # fmt: skip
    result = train(options, resume=resume)
    if not result.finished:
        typer.echo(f"stopped at step {result.step}: {result.checkpoint}; continue with --resume", err=True)
        raise typer.Exit(code=130)
    typer.echo(result.model_path)


@app.command("predict")
def predict_cmd(
    inputs: list[Path] = typer.Argument(..., help="Video files (mp4, mkv, webm, mov, ...) or folders of them."),
    vocab: str = typer.Option(
        ..., "--vocab", help='Names to look for: "dog, siren, church bell" or @names.txt (one per line).'
    ),
    weights: str | None = typer.Option(
        None, "--weights", help="Registry name, checkpoint path or hf://org/repo\\[/file] (default: the registry's)."
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="Output folder (one input file) or parent folder (several). Default: a new ./<name>_ovavss per input.",
    ),
    fps: float = typer.Option(1.0, "--fps", help="Frames sampled per second (AVSBench uses 1)."),
    threshold: float = typer.Option(0.3, "--threshold", help="Minimum score of a painted (query, name) pair."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    allow_silent: bool = typer.Option(False, "--allow-silent", help="Run videos without an audio track on silence."),
    no_video: bool = typer.Option(False, "--no-video", help="Skip overlay.mp4 (masks and JSON only)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing --out folder (once the new one is done)."),
    model: str | None = typer.Option(
        None, "--model", help="ovavss | avsc: check that the weights hold this model (they decide it anyway)."
    ),
    audio: str | None = typer.Option(
        None,
        "--audio",
        help="Run on other sound: silence | noise (white, RMS 0.1) | PATH of any media file (its audio, cut or "
        "zero-padded to the video). overlay.mp4 carries it; predictions.json records it.",
    ),
    precision: str = PRECISION_OPTION,
    clip_queries: str = CLIP_QUERIES_OPTION,
    resume: bool = typer.Option(
        False, "--resume", help="Skip inputs whose complete output (same weights and options) exists; redo the rest."
    ),
    report_file: Path | None = typer.Option(
        None, "--report", help="Job report JSON (default with several inputs: <out>/predict-report.json)."
    ),
) -> None:
    """Segment and name the sounding objects of video files with an open vocabulary (torchrun: sharded)."""
    from .inference.predict_jobs import PredictOptions, run_predict
    from .models.run_options import parse_clip_queries

    options = PredictOptions(
        vocab, weights, out, fps, threshold, device, allow_silent, not no_video, force, model, audio=audio,
        precision=precision, clip_queries=parse_clip_queries(clip_queries), resume=resume, report=report_file,
    )  # fmt: skip
    report = run_predict(inputs, options)
    for _, folder in report.outputs if report.main_process else ():
        typer.echo(folder)
    if report.failures:
        raise typer.Exit(code=report.exit_code)


@app.command("visualize")
def visualize_cmd(
    predictions: Path = typer.Argument(
        ..., help="An 'ovavss predict' output folder, or (with --data) a PRED_DIR/<uid>/<frame>.png folder."
    ),
    data: Path | None = typer.Option(
        None, "--data", help="AVSBench-semantic root: draw ground truth | prediction for its clips."
    ),
    clips: list[str] | None = typer.Option(None, "--clip", help="With --data: only this clip uid (repeatable)."),
    video: Path | None = typer.Option(
        None, "--video", help="The predicted video, if it moved since 'ovavss predict' ran."
    ),
    out: Path | None = typer.Option(None, "--out", "-o", help="Folder to write (default: a new <PREDICTIONS>_viz)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing --out folder."),
) -> None:
    """Turn predictions into overlays, side-by-side GT comparisons and a sound timeline."""
    from .viz.visualize import run_visualize

    typer.echo(run_visualize(predictions, data, clips or (), video, out, force))


@app.command("convert")
def convert_cmd(
    src: Path = typer.Argument(
        ..., help="model_ov_avss_r50.pth / _swinb.pth, Mask2Former model_final_*.pkl or VGGish .pth."
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Converted checkpoint (.safetensors; a .json sidecar is written)."
    ),
    kind: str = typer.Option("auto", "--kind", help="auto | ovavss | mask2former (training init) | vggish."),
    preset: str | None = typer.Option(None, "--preset", help="ovavss-r50 | ovavss-swinb (default: from the keys)."),
    vggish: Path | None = typer.Option(None, "--vggish", help="VGGish .pth to add when the source has no VGGish."),
    allow_unmapped: bool = typer.Option(False, "--allow-unmapped", help="Convert even if source keys are unmapped."),
    allow_missing: bool = typer.Option(False, "--allow-missing", help="Convert even if model keys are missing."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing --out."),
    init_mode: str | None = INIT_MODE_OPTION,
) -> None:
    """Convert official OV-AVSS / Mask2Former / VGGish checkpoints to ovavss safetensors."""
    from .models.convert import convert_checkpoint, print_report

    report = convert_checkpoint(
        src, out, kind=kind, preset=preset, vggish=vggish,
        allow_unmapped=allow_unmapped, allow_missing=allow_missing, force=force, init_mode=init_mode,
    )  # fmt: skip
    print_report(report)


weights_app = typer.Typer(help="Known checkpoints: list, download from the Hub, import official files.")
app.add_typer(weights_app, name="weights")


@weights_app.command("list")
def weights_list_cmd() -> None:
    """List the registry (weights/registry.json) and where each checkpoint is available."""
    from .hub import print_registry

    print_registry()


@weights_app.command("download")
def weights_download_cmd(
    name: str = typer.Argument(..., help="Registry name or hf://org/repo[/file]."),
) -> None:
    """Fetch a checkpoint into the Hugging Face cache (verified by sha256) and print its path."""
    from .hub import resolve_weights, verify_weights

    resolved = resolve_weights(name)
    verify_weights(resolved)
    typer.echo(resolved.path)


@weights_app.command("import")
def weights_import_cmd(
    src: Path = typer.Argument(..., help="An official checkpoint, e.g. model_ov_avss_r50.pth."),
    name: str = typer.Option(..., "--name", help="Registry name to store it under (e.g. ovavss-r50)."),
    vggish: Path | None = typer.Option(None, "--vggish", help="VGGish .pth to add when the source has no VGGish."),
    force: bool = typer.Option(False, "--force", help="Replace an already imported checkpoint."),
) -> None:
    """Convert an official checkpoint into the local store, so --weights NAME finds it offline."""
    from .models.convert import import_weights, print_report

    print_report(import_weights(src, name, vggish=vggish, force=force))


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
