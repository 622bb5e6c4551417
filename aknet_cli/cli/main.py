"""Builds the ``aknet`` Typer app: every subcommand lives in its own module."""

from __future__ import annotations

import os
from typing import Optional

import typer

from ..exceptions import AKNetError
from . import ablate, backbones, bench, convert_1d, evaluate, export, flops, predict, prepare, train, visualize
from ._common import OneLineErrors, domain_errors, print_error, quiet_when_the_reader_leaves

app = typer.Typer(
    name="aknet",
    cls=OneLineErrors,
    help=(
        "AK-Net (Action Keypoint Network) toolkit: prepare video datasets, train and evaluate "
        "TSM/TDN and AK-Net, count FLOPs like the paper, run its ablations, and look at the "
        "keypoints a model picks."
    ),
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    rich_markup_mode="markdown",  # reflow docstring paragraphs; indented lines stay code
)


#: The root's options that take a value (given before the command: `aknet --progress plain train ...`).
ROOT_VALUE_OPTIONS = ("--progress", "--log-seconds")


@app.callback(invoke_without_command=True)
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
    progress: Optional[str] = typer.Option(None, "--progress", help="Progress of long loops (train, eval, prepare, ablate, bench): auto = a bar in a terminal, plain lines in a file or pipe; plain = plain lines always. Sets AKNET_PROGRESS [default: auto].", show_default=False),
    log_seconds: Optional[float] = typer.Option(None, "--log-seconds", help="Plain lines: at least one every this many seconds (0: every step). Sets AKNET_LOG_SECONDS [default: 30].", show_default=False),
) -> None:
    """AK-Net toolkit. Run `aknet COMMAND --help` for a command's options and an example."""
    if version:
        from .. import __version__

        typer.echo(f"aknet {__version__}")
        raise typer.Exit()
    _progress_settings(progress, log_seconds)


def _progress_settings(mode: str | None, seconds: float | None) -> None:
    """Put the progress options in the environment, where every loop (and every process torchrun
    starts) reads them, and check them there before any work: a bad value is one line, exit 1."""
    from .. import _progress

    if mode is not None:
        os.environ[_progress.MODE_ENV] = mode
    if seconds is not None:
        os.environ[_progress.SECONDS_ENV] = repr(seconds)
    try:
        _progress.settings()
    except AKNetError as exc:
        print_error(str(exc))
        raise typer.Exit(1) from None


def _register(name: str, func, help_panel: str | None = None) -> None:
    app.command(name, rich_help_panel=help_panel)(domain_errors(func))


_register("backbones", backbones.backbones_command, "Models")
app.add_typer(prepare.app, name="prepare", rich_help_panel="Data")
_register("train", train.train_command, "Training")
_register("eval", evaluate.eval_command, "Training")
_register("convert-1d", convert_1d.convert_1d_command, "Models")
_register("flops", flops.flops_command, "Analysis")
_register("bench", bench.bench_command, "Analysis")
_register("ablate", ablate.ablate_command, "Analysis")
_register("visualize", visualize.visualize_command, "Analysis")
_register("predict", predict.predict_command, "Analysis")
_register("export", export.export_command, "Models")


def command_index(args: list[str]) -> int:
    """Where the command is in ``args`` (``aknet [ROOT OPTIONS] COMMAND ...``); ``len(args)`` if none."""
    i = 0
    while i < len(args) and args[i].startswith("-"):
        i += 2 if args[i] in ROOT_VALUE_OPTIONS else 1
    return min(i, len(args))


def run() -> None:
    """Console-script entry point."""
    import sys

    command = command_index(sys.argv[1:]) + 1
    if command < len(sys.argv) and sys.argv[command] == "train":
        sys.argv[command:] = train.optional_resume_value(sys.argv[command:])
    with quiet_when_the_reader_leaves():
        app()


if __name__ == "__main__":
    run()
