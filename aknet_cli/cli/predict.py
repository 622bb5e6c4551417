"""``aknet predict``: a thin wrapper over :mod:`aknet_cli.analysis.predict`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from ._common import console, err_console, print_json


def predict_command(
    target: Path = typer.Argument(..., help="A video, a frame folder, a folder of videos/frame folders, or a .txt list of them (one a line)."),
    checkpoint: Path = typer.Option(..., "--checkpoint", "-c", help="Any checkpoint aknet reads: aknet stage 1 or AK-Net, official TSM/TDN, mmaction2 1.x TSM/TSN."),
    views: str = typer.Option("1x1", "--views", help="CLIPSxCROPS as in `aknet eval`: 1x1 = one centre crop, 2x3 = 2 clips × 3 full-resolution crops."),
    protocol: Optional[str] = typer.Option(None, "--protocol", help="tsm, tdn, mmaction2 or aknet: sampling, crops and view averaging as in `aknet eval` [default: the checkpoint's].", show_default=False),
    top_k: int = typer.Option(5, "--top-k", "-k", help="Classes shown per video."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the predictions as CSV (video, status, topN, topN_class, topN_prob)."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Class names for a checkpoint that records none: the labels file in the release's order (one a line, a JSON list, or Sth-Sth V2's {name: index})."),
    label_order: Optional[str] = typer.Option(None, "--label-order", help="file or sorted: the class order of a foreign checkpoint [default: its code base's: mmaction2 file, TSM/TDN sorted]."),
    backbone: Optional[str] = typer.Option(None, "--backbone", help="Checked against the checkpoint (a foreign one is read from its weights)."),
    num_segments: Optional[int] = typer.Option(None, "--num-segments", help="Frames per clip T, for a checkpoint that records none."),
    keypoints: Optional[Path] = typer.Option(None, "--keypoints", help="AK-Net only: write what `aknet visualize` draws for each video into DIR/VIDEO_NAME/."),
    strict: bool = typer.Option(False, "--strict", help="Stop at the first unreadable video (default: skip and count it)."),
    backend: Optional[str] = typer.Option(None, "--backend", help="Video decoder: torchcodec, decord or pyav [default: the fastest exact one installed, as `aknet eval` picks it].", show_default=False),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or auto."),
    json_out: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Predict the action classes of your own videos with a trained model.

    Every video is sampled, resized and cropped as `aknet eval` reads a clip (the checkpoint's
    own preprocessing), so it gets the scores eval would give it. Unreadable videos are skipped
    and counted (--strict stops instead). Examples:

        aknet predict clip.mp4 --checkpoint work_dirs/aknet/best.pt

        aknet predict my_videos/ -c tsm_r50_mmaction2_sthv2.pth --labels something-something-v2-labels.json --out predictions.csv

        aknet predict list.txt -c aknet.pt --views 2x3 --keypoints keypoints/ --json
    """
    from ..analysis import predict as P
    from ..data.video_io import check_backend

    backend = check_backend(backend)
    P.check_outputs(out, keypoints)
    videos = P.collect_inputs(target)
    predictor = P.load_predictor(checkpoint, views=views, labels=labels, backbone=backbone,
                                 num_segments=num_segments, label_order=label_order, device=device,
                                 protocol=protocol)
    draw = P.keypoint_drawer(predictor, keypoints, backend=backend) if keypoints is not None else None
    drawn: dict[str, dict[str, str]] = {}

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("[bold]predicting"), BarColumn(bar_width=24), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"), TextColumn("eta"),
               TimeRemainingColumn())
    with Progress(*columns, console=err_console, transient=True, disable=json_out or len(videos) < 2) as bar:
        task = bar.add_task("predict", total=len(videos), rate="")

        def on_video(result, source) -> None:
            if draw is not None and source is not None:
                drawn[result.video] = draw(source)
            elapsed = bar.tasks[task].elapsed or 0.0
            done = bar.tasks[task].completed + 1
            bar.update(task, advance=1, rate=f"{done / elapsed:.2f} videos/s" if elapsed > 0 else "")

        results = P.predict(predictor, videos, top_k=top_k, backend=backend, strict=strict, on_video=on_video)
    if all(r.error for r in results):
        raise P.unreadable_error(target, results)
    k = min(top_k, int(predictor.description["num_classes"]))
    if out is not None:
        from ..data.atomic import write_csv
        from ..engine.reports import FLOAT_FORMAT

        write_csv(out, P.predictions_table(results, k), float_format=FLOAT_FORMAT)
    skipped = [r for r in results if r.error]
    if json_out:
        print_json({"checkpoint": str(checkpoint), "format": predictor.description["format"], "views": views,
                    "protocol": predictor.protocol.name,
                    "num_videos": len(results), "num_skipped": len(skipped),
                    "videos": [{**r.as_dict(), "keypoints": drawn.get(r.video)} for r in results],
                    "notes": predictor.description["notes"], "out": str(out) if out else None})
    else:
        _print_table(results, k, predictor, checkpoint, views)
        for r in skipped:
            err_console.print(f"[yellow]skipped[/] {escape(r.error)}", soft_wrap=True, highlight=False)
        console.print(f"{len(results) - len(skipped)} of {len(results)} videos predicted"
                      + (f", {len(skipped)} skipped (unreadable)" if skipped else "")
                      + (f"; wrote {out}" if out else "") + (f"; keypoints in {keypoints}" if drawn else ""),
                      highlight=False)


def _print_table(results, k: int, predictor, checkpoint: Path, views: str) -> None:
    for note in predictor.description["notes"]:
        err_console.print(f"[yellow]note:[/] {escape(note)}", soft_wrap=True, highlight=False)
    table = Table(title=f"{checkpoint.name} ({predictor.description['format']}), {views} views, "
                        f"protocol {predictor.protocol.name}")
    table.add_column("video")
    for j in range(k):
        table.add_column(f"top {j + 1}")
    for r in results:
        if r.error:
            continue
        cells = [f"{escape(t['name']) if t['name'] else '#' + str(t['index'])} ({100 * t['prob']:.1f}%)" for t in r.top]
        table.add_row(escape(Path(r.video).name) + (" *" if r.note else ""), *cells)
    console.print(table)
    for r in results:
        if r.note:
            console.print(f"* {escape(Path(r.video).name)}: {escape(r.note)}", highlight=False)
    if predictor.classes is None:
        console.print("class indices only: the checkpoint records no class names (pass --labels FILE)", highlight=False)
