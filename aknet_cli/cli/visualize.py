"""``aknet visualize``: the keypoints AK-Net picks, drawn on the original frames (Fig. 6)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._common import console, err_console, print_json


def visualize_command(
    video: Path = typer.Option(..., "--video", "-v", help="A video file (any size, aspect ratio, frame rate) or a folder of frames."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", "-c", help="AK-Net checkpoint (from `aknet convert-1d` or training). Without it the weights are untrained."),
    out: Path = typer.Option(Path("visualize"), "--out", "-o", help="Folder for the PNGs, the animation and keypoints JSON."),
    frames: Optional[int] = typer.Option(None, "--frames", "-t", help="Segments T (default: the checkpoint's, else 8)."),
    split: Optional[str] = typer.Option(None, help="Split res2|res3|res4 of an untrained model (a checkpoint records its own)."),
    alpha: Optional[float] = typer.Option(None, help="Point sampling rate α (default: the checkpoint's, else 0.3; another α than a checkpoint's shows the keypoints its weights pick at that α)."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Class names: one per line, a JSON list, or Sth-Sth V2's {name: index} JSON."),
    backbone: str = typer.Option("tsm_resnet50", "--backbone", "-b", help="Backbone of the untrained model (ignored with --checkpoint)."),
    resize: Optional[int] = typer.Option(None, help="Resize target of evaluation (default: the checkpoint's data config, else 256)."),
    crop: Optional[int] = typer.Option(None, help="Centre-crop side (default: the checkpoint's, else 224)."),
    resize_mode: Optional[str] = typer.Option(None, help="short (keep aspect ratio, TSM) or square (the paper) [default: short]."),
    backend: Optional[str] = typer.Option(None, help="Video decoder: torchcodec, decord or pyav [default: the fastest exact one installed: torchcodec where FFmpeg's libraries are found, else decord].", show_default=False),
    video_format: str = typer.Option("mp4", "--video-format", help="Animation format: mp4 (PyAV) or gif."),
    json_out: bool = typer.Option(False, "--json", help="Print the keypoints and file names as JSON."),
) -> None:
    """Draw the action keypoints AK-Net selects on the original frames of a video.

    The clip is sampled and cropped as evaluation does (T segment centres, resize, centre
    crop); every keypoint (t, y, x) is mapped back through that crop and resize onto the
    pixels it came from. Writes OUT/keypoints.png (Fig. 6-style grid, keypoints per frame in
    each caption), OUT/keypoints_heatmap.png, OUT/keypoints.mp4 (or .gif) and
    OUT/keypoints.json, and prints the top-5 classes. Examples:

        aknet visualize --video clip.mp4 --checkpoint work_dirs/aknet/best.pt --out vis/

        aknet visualize --video 20bn-something-something-v1/1234/ --checkpoint aknet.pt --labels labels.csv
    """
    from ..exceptions import ConfigError

    _check_choices(resize_mode=resize_mode, video_format=video_format, split=split)
    from .._atomic import check_output_dir

    check_output_dir(out, option="--out")

    from ..analysis import overlay as O
    from ..data.video_source import open_source

    names = O.load_labels(labels) if labels is not None else None
    source = open_source(video, backend=backend)
    loaded = O.load_overlay_model(checkpoint, backbone=backbone, split=split, alpha=alpha, frames=frames,
                                  **({"num_classes": len(names)} if names and checkpoint is None else {}))
    if names is not None:
        names = O.fit_labels(names, loaded.num_classes, labels)
    _warn_about_weights(loaded, checkpoint)
    resize = resize or int(loaded.data.get("resize", 256))
    crop = crop or int(loaded.data.get("crop", 224))
    resize_mode = resize_mode or str(loaded.data.get("resize_mode", "short"))
    if not 32 <= crop <= resize:
        raise ConfigError(f"--crop must be between 32 and --resize ({resize}), got {crop}")

    from rich.progress import Progress

    with Progress(console=err_console, transient=True, disable=json_out) as prog:
        task = prog.add_task("running the model", total=loaded.frames + 1)
        vis, shown, heat = O.visualize(source, loaded, resize=resize, crop=crop, resize_mode=resize_mode,
                                       backend=backend, labels=names)
        prog.update(task, advance=1, description="drawing")
        paths = O.render(vis, shown, heat, out, video_format=video_format,
                         progress=lambda: prog.update(task, advance=1))

    if json_out:
        print_json({**vis.as_dict(), "files": paths})
        return
    _print_summary(video, vis, trained=loaded.trained)
    for key, path in paths.items():
        console.print(f"wrote {path}")


def _check_choices(*, resize_mode: Optional[str], video_format: str, split: Optional[str]) -> None:
    """Refuse a misspelt choice before the video is opened or a model built."""
    from ..exceptions import ConfigError

    if resize_mode is not None and resize_mode not in ("short", "square"):
        raise ConfigError(f"--resize-mode must be short or square, got {resize_mode!r}")
    if video_format not in ("mp4", "gif"):
        raise ConfigError(f"--video-format must be mp4 or gif, got {video_format!r}")
    if split is not None and split not in ("res2", "res3", "res4"):
        raise ConfigError(f"--split must be res2, res3 or res4, got {split!r}")


def _warn_about_weights(loaded, checkpoint: Optional[Path]) -> None:
    """Say when the keypoints shown are not what a trained model at its own α picks."""
    if not loaded.trained:
        err_console.print("[yellow]warning:[/] no --checkpoint: the weights are untrained (random), so the keypoints "
                          "show the pipeline, not what a trained model looks at", soft_wrap=True)
    elif loaded.alpha_changed:
        err_console.print(f"[yellow]note:[/] α = {loaded.alpha:g} differs from the α = {loaded.trained_alpha:g} "
                          f"{checkpoint} records (its training's): these are the keypoints its weights pick at α = "
                          f"{loaded.alpha:g}, an accuracy nobody measured", soft_wrap=True, highlight=False)


def _print_summary(video: Path, vis, *, trained: bool) -> None:
    """The clip, the frames shown, the keypoints per frame and the top-5 classes."""
    g = vis.geometry
    console.print(f"{video}: {vis.num_frames} frames, {g.width}×{g.height}; showing frames "
                  f"{', '.join(str(i + 1) for i in vis.frame_indices)}")
    if vis.window is not None:
        from ..data.video_source import Window

        console.print(Window(**vis.window).describe(), highlight=False)
    console.print(f"{len(vis.keypoints)} keypoints on the {vis.feature_size[0]}×{vis.feature_size[1]} {vis.split} map "
                  f"(cell = {vis.stride}×{vis.stride} crop pixels); per frame: {', '.join(map(str, vis.counts))}")
    if vis.top5[0]["name"] is not None:
        console.print("top-5: " + "; ".join(f"{p['name']} ({100 * p['prob']:.1f}%)" for p in vis.top5))
    elif trained:
        console.print("top-5 class indices (the checkpoint carries no class names; pass --labels): "
                      + ", ".join(f"{p['index']} ({100 * p['prob']:.1f}%)" for p in vis.top5))
