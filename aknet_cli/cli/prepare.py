"""``aknet prepare {sthv1,sthv2,diving48,synthetic,folder,list}``: build a dataset folder.

From an official release, the synthetic generator, or a user's own clips (a folder per class,
or mmaction2 lists); all go through the same prepare step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from ._common import console, domain_errors, err_console, print_json

app = typer.Typer(
    name="prepare",
    help="Prepare an official release, the synthetic data, or your own clips into a dataset folder.",
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
FRAME_TEMPLATE = typer.Option(None, "--frame-template", help="Frame file naming of frame folders, e.g. img_{:05d}.jpg [default: read off the files].", show_default=False)
START_INDEX = typer.Option(None, "--start-index", help="Number of the first frame file [default: read off the files; 1 with --frame-template].", show_default=False)
FLIP_MAP = typer.Option(None, "--flip-map", help="File of class-name pairs a horizontal flip swaps (JSON [[a, b], ...] or CSV 'a,b' lines) [default: no flip map].", show_default=False)
#: Classes shown in the per-class table before it is cut short.
CLASS_ROWS = 40


def _report(summary, *, json_out: bool, note: str | None = None, per_class: bool = False) -> None:
    payload = summary.to_dict()
    if note:
        payload["note"] = note
    if json_out:
        print_json(payload)
        return
    console.print(f"Prepared [bold]{summary.out}[/] ({summary.num_classes} classes)", soft_wrap=True)
    for line in summary.notes:
        console.print(f"  {line}", soft_wrap=True, markup=False, highlight=False)
    console.print(_class_table(summary) if per_class else _split_table(summary))
    if summary.skipped:
        count = len(summary.skipped)
        err_console.print(f"[yellow]skipped {count} clip{'s' if count != 1 else ''}[/] "
                          f"(details in {summary.out / 'skipped.csv'}):", soft_wrap=True, highlight=False)
        for kind, count in payload["skipped_reasons"].items():
            err_console.print(f"  {count:>7}  {kind}  e.g. {next(r['reason'] for r in summary.skipped if r['kind'] == kind)}",
                              soft_wrap=True, markup=False, highlight=False)
    for warning in summary.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True, highlight=False)
    if note:
        err_console.print(f"[yellow]note:[/] {note}")


def _split_table(summary) -> Table:
    table = Table()
    table.add_column("split")
    table.add_column("clips", justify="right")
    for split, count in summary.splits.items():
        table.add_row(split, str(count))
    return table


def _class_table(summary) -> Table:
    """Clips per class and split (label order), cut after :data:`CLASS_ROWS` classes, with totals."""
    splits = list(summary.per_class)
    table = Table()
    table.add_column("label", justify="right")
    table.add_column("class")
    for split in splits:
        table.add_column(split, justify="right")
    for index, name in enumerate(summary.classes[:CLASS_ROWS]):
        table.add_row(str(index), escape(name), *(str(summary.per_class[split][index]) for split in splits))
    if len(summary.classes) > CLASS_ROWS:
        table.add_row("...", f"{len(summary.classes) - CLASS_ROWS} more classes", *("" for _ in splits))
    table.add_row("", "[bold]total[/]", *(f"[bold]{summary.splits[split]}[/]" for split in splits), end_section=True)
    return table


def _run(fmt: str, root: Path, out: Path, *, label_order, workers, strict, force, backend, json_out, **reader_kw) -> None:
    from .._atomic import check_output_dir
    from ..data.formats import READERS
    from ..data.prepare import prepare_release

    check_output_dir(out, option="--out")
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
    kind: str = typer.Option("motion", "--kind", help="motion: synth-sth, one object acting alone (14 classes, the demo's); relations: two objects relative to each other, where the layout of the points matters (11 classes)."),
    classes: Optional[int] = typer.Option(None, "--classes", help="Number of classes, the first ones of the kind's list [default: 12 of motion's 14, all 11 of relations].", show_default=False),
    train_per_class: int = typer.Option(40, "--train-per-class", help="Training clips per class."),
    val_per_class: int = typer.Option(10, "--val-per-class", help="Validation clips per class (training selects best.pt on them)."),
    test_per_class: int = typer.Option(50, "--test-per-class", help="Held-out test clips per class, labelled, for reported numbers (0: none)."),
    size: Optional[int] = typer.Option(None, "--size", help="Frame side in pixels [default: 112].", show_default=False),
    frames: int = typer.Option(16, "--frames", help="Frames per clip."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives identical files."),
    workers: Optional[int] = WORKERS, force: bool = FORCE, json_out: bool = JSON,
) -> None:
    """Generate a small Sth-Sth-like synthetic dataset with time-reversed action pairs, and prepare it.

    Example:

        aknet prepare synthetic --out data/synth --classes 12 --size 112 --frames 16

        aknet prepare synthetic --kind relations --out data/relations
    """
    from .._atomic import check_output_dir
    from ..data.synthetic import SynthConfig, prepare_synthetic

    check_output_dir(out, option="--out")
    if raw is not None:
        check_output_dir(raw, option="--raw")
    config = SynthConfig(classes=classes, train_per_class=train_per_class, val_per_class=val_per_class,
                         test_per_class=test_per_class,
                         size=size, frames=frames, seed=seed, format=fmt, kind=kind)
    summary, note = prepare_synthetic(config, out=out, raw=raw, force=force, workers=workers,
                                      console=None if json_out else err_console)
    _report(summary, json_out=json_out, note=note)


@app.command("folder")
@domain_errors
def folder_command(
    root: Path = typer.Option(..., "--root", help="Folder of class sub-folders (read only): `ROOT/<class>/<clip>.mp4`, or `ROOT/<class>/<clip>/<frames>`.", show_default=False),
    out: Path = OUT,
    val_fraction: Optional[float] = typer.Option(None, "--val-fraction", help="Share of each class's clips that go to val (stratified, seeded) [default: 0.2].", show_default=False),
    val_root: Optional[Path] = typer.Option(None, "--val-root", help="A second class-per-folder tree holding the val clips, instead of --val-fraction.", show_default=False),
    seed: int = typer.Option(0, "--seed", help="Seed of the train/val split."),
    frame_template: Optional[str] = FRAME_TEMPLATE, start_index: Optional[int] = START_INDEX,
    flip_map: Optional[Path] = FLIP_MAP, workers: Optional[int] = WORKERS, strict: bool = STRICT, force: bool = FORCE,
    backend: str = BACKEND, json_out: bool = JSON,
) -> None:
    """Your own clips, one sub-folder per class (video files or frame folders); classes are the sorted folder names.

    Example:

        aknet prepare folder --root ~/clips --out data/myclips --val-fraction 0.2 --seed 0
    """
    from ..data.formats import read_folder
    from ..data.prepare import prepare_release

    release = read_folder(root, val_root=val_root, val_fraction=val_fraction, seed=seed,
                          frame_template=frame_template, start_index=start_index, flip_map=flip_map)
    summary = prepare_release(release, out=out, workers=workers, strict=strict, force=force, backend=backend,
                              console=None if json_out else err_console)
    _report(summary, json_out=json_out, per_class=True)


@app.command("list")
@domain_errors
def list_command(
    train: Path = typer.Option(..., "--train", help="Training list: 'path label' (videos) or 'frame_dir total_frames label' (frames) lines.", show_default=False),
    val: Path = typer.Option(..., "--val", help="Validation list, same format.", show_default=False),
    test: Optional[Path] = typer.Option(None, "--test", help="Test list, same format (optional).", show_default=False),
    media_root: Path = typer.Option(..., "--media-root", help="Folder the list paths are relative to (read only).", show_default=False),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Class names of label 0, 1, ...: one a line, a JSON list, or JSON {name: index} [default: the numbers].", show_default=False),
    out: Path = typer.Option(..., "--out", help="Output dataset folder (must not be inside --media-root).", show_default=False),
    frame_template: Optional[str] = FRAME_TEMPLATE, start_index: Optional[int] = START_INDEX,
    flip_map: Optional[Path] = FLIP_MAP, workers: Optional[int] = WORKERS, strict: bool = STRICT, force: bool = FORCE,
    backend: str = BACKEND, json_out: bool = JSON,
) -> None:
    """mmaction2-style list files (Kinetics, UCF101, HMDB51 ...): video lists or frame lists, integer labels.

    Example:

        aknet prepare list --train ucf101_train_split_1_videos.txt --val ucf101_val_split_1_videos.txt --media-root data/ucf101/videos --labels classInd.txt --out data/ucf101
    """
    from ..data.formats import read_lists
    from ..data.prepare import prepare_release

    release = read_lists(train=train, val=val, test=test, media_root=media_root, labels=labels,
                         frame_template=frame_template, start_index=start_index, flip_map=flip_map)
    summary = prepare_release(release, out=out, workers=workers, strict=strict, force=force, backend=backend,
                              console=None if json_out else err_console)
    _report(summary, json_out=json_out, per_class=True)
