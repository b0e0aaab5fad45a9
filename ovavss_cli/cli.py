"""The ``ovavss`` command line: parse arguments, call one package function, print. No logic here."""

from __future__ import annotations

import typer
from typer.core import TyperGroup

from . import __version__
from .errors import OvavssError


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


def _not_landed(command: str, issue: int) -> None:
    """A subcommand whose issue has not landed: say so in one line and exit 2, never fake output."""
    typer.echo(f"ovavss {command}: not implemented yet (tracked in issue #{issue})", err=True)
    raise typer.Exit(code=2)


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


@app.command("make-split")
def make_split_cmd() -> None:
    """Write the AVSBench-OV split (base/novel classes, train/val/test clip uids) as JSON."""
    _not_landed("make-split", 2)


@app.command("check")
def check_cmd() -> None:
    """Check an AVSBench root: missing files, unknown colours, quirky rows, per-split counts."""
    _not_landed("check", 2)


@app.command("eval")
def eval_cmd() -> None:
    """Score predictions (or a model) on the AVSBench-OV test split with the papers' metrics."""
    _not_landed("eval", 2)


@app.command("train")
def train_cmd() -> None:
    """Train OV-AVSS (or AVSC) on AVSBench."""
    _not_landed("train", 4)


@app.command("predict")
def predict_cmd() -> None:
    """Segment and name the sounding objects of video files with an open vocabulary."""
    _not_landed("predict", 5)


@app.command("visualize")
def visualize_cmd() -> None:
    """Turn predictions into overlays, side-by-side GT comparisons and a sound timeline."""
    _not_landed("visualize", 5)


@app.command("convert")
def convert_cmd() -> None:
    """Convert official OV-AVSS / Mask2Former / VGGish checkpoints to ovavss safetensors."""
    _not_landed("convert", 3)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
