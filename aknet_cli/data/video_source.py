"""Anyone's video or frame folder, read for a model: what `aknet visualize` and `aknet predict` decode.

A source is a video file (through :mod:`aknet_cli.data.video_io`) or a folder of frames (Sth-Sth
V1's ``00001.jpg``, TSN/mmaction2's ``img_00001.jpg``, or any images in natural order).

Frames that no model input can be made of are refused here, once for both commands, and very
elongated frames are cut to a usable shape (:func:`fit_frames`):

* a side under :data:`MIN_FRAME_SIDE` pixels (a 1×1 video) is refused in one line: resizing it
  to 256 would invent nearly every pixel the model sees, and the keypoint cells of `visualize`
  would be smaller than one pixel of the frame;
* an aspect ratio beyond :data:`MAX_ASPECT` (a 10000×64 strip) is cut to its centre
  ``MAX_ASPECT·short × short`` window before resizing. The centre crop the model reads lies
  inside that window and is resampled at the same scale, so a 1×1 view sees the same pixels
  (to resampling rounding), while the frame is no longer blown up by the resize (a 10000×16
  video became 160000×256 pixels and took 25 s). The outer crops of a 3-crop view and a
  ``square`` resize do change: they see the window, not the whole strip. The window is reported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..exceptions import VideoDecodeError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
#: Frame-folder naming schemes tried in order (Sth-Sth V1, then TSN/mmaction's ``img_``).
FRAME_TEMPLATES = (("{:05d}.jpg", 1), ("img_{:05d}.jpg", 1), ("{:06d}.jpg", 1), ("{:05d}.png", 1))
#: The smallest frame side read: ResNets reduce 32 pixels to one cell of their last map.
MIN_FRAME_SIDE = 32
#: Frames longer than this many times their short side are cut to their centre.
MAX_ASPECT = 4.0


@dataclass(frozen=True)
class Window:
    """The part of a frame kept by :func:`fit_frames`, in the frame's pixels."""

    top: int
    left: int
    height: int
    width: int
    frame_height: int
    frame_width: int

    @property
    def cut(self) -> bool:
        return (self.height, self.width) != (self.frame_height, self.frame_width)

    def describe(self) -> str:
        return (f"{self.frame_width}×{self.frame_height} frames cut to their centre {self.width}×{self.height} "
                f"(aspect ratio capped at {MAX_ASPECT:g}:1)")


def fit_frames(frames: torch.Tensor, source: Path) -> tuple[torch.Tensor, Window]:
    """Refuse frames too small for a model, cut overly long ones to their centre.

    Args:
        frames: ``uint8 (N, 3, H, W)``.
        source: the file or folder, named in the error.

    Returns:
        ``(frames (N, 3, H', W'), window)``: the frames kept and where they lie in the originals.

    Raises:
        VideoDecodeError: a side shorter than :data:`MIN_FRAME_SIDE`.
    """
    h, w = int(frames.shape[-2]), int(frames.shape[-1])
    if min(h, w) < MIN_FRAME_SIDE:
        raise VideoDecodeError(f"{source} has {w}×{h}-pixel frames, too small for the model's input: both sides "
                               f"must be at least {MIN_FRAME_SIDE} pixels")
    keep_h, keep_w = min(h, round(MAX_ASPECT * w)), min(w, round(MAX_ASPECT * h))
    top, left = (h - keep_h) // 2, (w - keep_w) // 2
    window = Window(top, left, keep_h, keep_w, h, w)
    if window.cut:
        frames = frames[..., top:top + keep_h, left:left + keep_w].contiguous()
    return frames, window


@dataclass
class Source:
    """A readable video or frame folder and its frame count."""

    path: Path
    kind: str  # "video" | "frames" | "images"
    num_frames: int
    template: str | None = None
    start_index: int = 1
    files: list[Path] | None = None

    def read(self, indices: Sequence[int], backend: str) -> torch.Tensor:
        """``uint8 (len(indices), 3, H, W)``, as decoded."""
        from ..data.video_io import read_frame_files, read_video

        if self.kind == "video":
            return read_video(self.path, indices, backend=backend)
        if self.kind == "frames":
            return read_frame_files(self.path, indices, template=self.template, start_index=self.start_index)
        return _read_images([self.files[int(i)] for i in indices], self.path)

    def read_for_model(self, indices: Sequence[int], backend: str) -> tuple[torch.Tensor, Window]:
        """:meth:`read`, then :func:`fit_frames`: what a model is shown, and where it lies."""
        return fit_frames(self.read(indices, backend), self.path)


def _read_images(files: list[Path], folder: Path) -> torch.Tensor:
    from PIL import Image

    arrays = []
    for f in files:
        try:
            with Image.open(f) as im:
                arrays.append(np.asarray(im.convert("RGB")))
        except (OSError, ValueError) as exc:
            raise VideoDecodeError(f"cannot read frame {f}: {exc}") from None
    if len({a.shape for a in arrays}) > 1:
        raise VideoDecodeError(f"frames of {folder} differ in size; re-extract them")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def is_frame_folder(path: Path) -> bool:
    """Whether ``path`` is a folder of frames (one video), not a folder of videos."""
    if not path.is_dir():
        return False
    names = {p.name for p in path.iterdir()}
    return any(template.format(start) in names for template, start in FRAME_TEMPLATES) or any(
        p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir())


def open_source(path: str | Path, *, backend: str | None = None) -> Source:
    """Inspect a video file or a frame folder, and decode its first frame to check its size.

    Raises:
        VideoDecodeError: missing, empty, not a video, truncated, or with frames too small for
            a model (one line naming it).
    """
    from .video_io import check_backend, count_frame_files, count_video_frames

    path = Path(path)
    backend = check_backend(backend)  # None: the fastest exact decoder installed
    if path.is_dir():
        names = set(p.name for p in path.iterdir())
        for template, start in FRAME_TEMPLATES:
            if template.format(start) in names:
                n = count_frame_files(path, template=template, start_index=start)
                return _checked(Source(path, "frames", n, template=template, start_index=start), backend)
        files = sorted((p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES),
                       key=lambda p: [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", p.name)])
        if not files:
            raise VideoDecodeError(f"frame folder {path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        return _checked(Source(path, "images", len(files), files=files), backend)
    if not path.exists():
        raise VideoDecodeError(f"missing video {path}")
    return _checked(Source(path, "video", count_video_frames(path, backend=backend)), backend)


def _checked(source: Source, backend: str) -> Source:
    """``source``, once its first frame shows that a model can read it (before any other work)."""
    fit_frames(source.read([0], backend), source.path)
    return source
