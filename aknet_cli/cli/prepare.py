"""``aknet prepare {sthv1,sthv2,diving48,synthetic}``: build a dataset folder from a release."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ._common import console, domain_errors, err_console, print_json

app = typer.Typer(
    name="prepare",
    help="Prepare an official release (or generate the synthetic one) into a dataset folder.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

ROOT = typer.Option(..., "--root", help="Folder of the official release (read only).", show_default=False)
OUT = typer.Option(..., "--out", help="Output dataset folder (must not be inside --root).", show_default=False)
LABEL_ORDER = typer.Option(None, "--label-order", help="'file' (mmaction2) or 'sorted' (TSM/TDN). Default: sorted for Sth-Sth, file for Diving48.")
WORKERS = typer.Option(None, "--workers", help="Processes counting frames [default: every CPU].", show_default=False)
STRICT = typer.Option(False, "--strict", help="Fail on the first unusable clip instead of skipping it.")
FORCE = typer.Option(False, "--force", help="Replace an --out folder holding a different dataset.")
BACKEND = typer.Option(None, "--backend", help="Video decoder for counting frames: torchcodec, decord or pyav [default: the fastest exact one installed: torchcodec where FFmpeg's libraries are found, else decord].", show_default=False)
JSON = typer.Option(False, "--json", help="Print a machine-readable summary.")


def _report(summary, *, json_out: bool, note: str | None = None) -> None:
    payload = summary.to_dict()
    if note:
        payload["note"] = note
    if json_out:
        print_json(payload)
        return
    console.print(f"Prepared [bold]{summary.out}[/] ({summary.num_classes} classes)", soft_wrap=True)
    table = Table()
    table.add_column("split")
    table.add_column("clips", justify="right")
    for split, count in summary.splits.items():
        table.add_row(split, str(count))
    console.print(table)
    if summary.skipped:
        count = len(summary.skipped)
        err_console.print(f"[yellow]skipped {count} clip{'s' if count != 1 else ''}[/] "
                          f"(details in {summary.out / 'skipped.csv'}):", soft_wrap=True, highlight=False)
        for kind, count in payload["skipped_reasons"].items():
            err_console.print(f"  {count:>7}  {kind}  e.g. {next(r['reason'] for r in summary.skipped if r['kind'] == kind)}",
                              soft_wrap=True, markup=False, highlight=False)
    if note:
        err_console.print(f"[yellow]note:[/] {note}")


def _run(fmt: str, root: Path, out: Path, *, label_order, workers, strict, force, backend, json_out, **reader_kw) -> None:
    from ..data.formats import READERS
    from ..data.prepare import prepare_release

    release = READERS[fmt](root, **{k: v for k, v in reader_kw.items() if v is not None})
    summary = prepare_release(release, out=out, label_order=label_order, workers=workers, strict=strict,
                              force=force, backend=backend, console=None if json_out else err_console)
    _report(summary, json_out=json_out)


@app.command("sthv1")
@domain_errors
def sthv1_command(
    root: Path = ROOT, out: Path = OUT,
    frames_dir: Optional[str] = typer.Option(None, "--frames-dir", help="Subfolder of --root holding the `<id>/` frame folders, e.g. 20bn-something-something-v1."),
    label_order: Optional[str] = LABEL_ORDER, workers: Optional[int] = WORKERS, strict: bool = STRICT, force: bool = FORCE,
    json_out: bool = JSON,
) -> None:
    """Something-Something V1 (JPEG frame folders + ';' CSVs).

    Example:

        aknet prepare sthv1 --root /data/sthv1 --frames-dir 20bn-something-something-v1 --out data/sthv1
    """
    _run("sthv1", root, out, label_order=label_order, workers=workers, strict=strict, force=force,
         backend=None, json_out=json_out, frames_dir=frames_dir)


@app.command("sthv2")
@domain_errors
def sthv2_command(
    root: Path = ROOT, out: Path = OUT,
    videos_dir: Optional[str] = typer.Option(None, "--videos-dir", help="Subfolder of --root holding the `<id>.webm` files, e.g. 20bn-something-something-v2."),
    label_order: Optional[str] = LABEL_ORDER, workers: Optional[int] = WORKERS, strict: bool = STRICT, force: bool = FORCE,
    backend: Optional[str] = BACKEND, json_out: bool = JSON,
) -> None:
    """Something-Something V2 (WebM videos + JSON annotations).

    Example:

        aknet prepare sthv2 --root /data/sthv2 --videos-dir 20bn-something-something-v2 --out data/sthv2 --workers 16
    """
    _run("sthv2", root, out, label_order=label_order, workers=workers, strict=strict, force=force,
         backend=backend, json_out=json_out, videos_dir=videos_dir)


@app.command("diving48")
@domain_errors
def diving48_command(
    root: Path = ROOT, out: Path = OUT,
    videos_dir: str = typer.Option("rgb", "--videos-dir", help="Subfolder of --root holding the `<vid_name>.mp4` files."),
    label_order: Optional[str] = LABEL_ORDER, workers: Optional[int] = WORKERS, strict: bool = STRICT, force: bool = FORCE,
    backend: Optional[str] = BACKEND, json_out: bool = JSON,
) -> None:
    """Diving48 V2 (MP4 clips + corrected V2 JSON annotations; the test list is the val split).

    Example:

        aknet prepare diving48 --root /data/Diving48 --out data/diving48
    """
    _run("diving48", root, out, label_order=label_order, workers=workers, strict=strict, force=force,
         backend=backend, json_out=json_out, videos_dir=videos_dir)


@app.command("synthetic")
@domain_errors
def synthetic_command(
    out: Path = OUT,
    raw: Optional[Path] = typer.Option(None, "--raw", help="Where the raw release is written. Default: OUT/raw."),
    fmt: str = typer.Option("sthv1", "--format", help="Raw layout: sthv1 (JPEG), sthv2 (WebM) or diving48 (MP4)."),
    classes: int = typer.Option(12, "--classes", help="Number of classes (2-14)."),
    train_per_class: int = typer.Option(40, "--train-per-class", help="Training clips per class."),
    val_per_class: int = typer.Option(10, "--val-per-class", help="Validation clips per class."),
    size: int = typer.Option(112, "--size", help="Frame side in pixels."),
    frames: int = typer.Option(16, "--frames", help="Frames per clip."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives identical files."),
    workers: Optional[int] = WORKERS, force: bool = FORCE, json_out: bool = JSON,
) -> None:
    """Generate synth-sth, a small Sth-Sth-like dataset of time-reversed action pairs, and prepare it.

    Example:

        aknet prepare synthetic --out data/synth --classes 12 --size 112 --frames 16
    """
    from ..data.synthetic import SynthConfig, prepare_synthetic

    config = SynthConfig(classes=classes, train_per_class=train_per_class, val_per_class=val_per_class,
                         size=size, frames=frames, seed=seed, format=fmt)
    summary, note = prepare_synthetic(config, out=out, raw=raw, force=force, workers=workers,
                                      console=None if json_out else err_console)
    _report(summary, json_out=json_out, note=note)
