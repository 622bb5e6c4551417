"""Builds the ``aknet`` Typer app: every subcommand lives in its own module."""

from __future__ import annotations

import typer

from . import ablate, backbones, bench, convert_1d, evaluate, export, flops, predict, prepare, train, visualize
from ._common import OneLineErrors, domain_errors, quiet_when_the_reader_leaves

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


@app.callback(invoke_without_command=True)
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    """AK-Net toolkit. Run `aknet COMMAND --help` for a command's options and an example."""
    if version:
        from .. import __version__

        typer.echo(f"aknet {__version__}")
        raise typer.Exit()


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


def run() -> None:
    """Console-script entry point."""
    import sys

    if len(sys.argv) > 1 and sys.argv[1] == "train":
        sys.argv[1:] = train.optional_resume_value(sys.argv[1:])
    with quiet_when_the_reader_leaves():
        app()


if __name__ == "__main__":
    run()
