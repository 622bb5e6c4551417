"""Tiny fake official releases (and broken ones) for the data tests; built under tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from aknet_cli.data.synthetic import write_video

V1_NAMES = ["Pushing something from right to left", "Moving something up", "Pushing something from left to right"]


def write_frames(folder: Path, count: int, *, size: int = 16, value: int | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        pixel = value if value is not None else (i * 20) % 256
        Image.fromarray(np.full((size, size + 4, 3), pixel, np.uint8)).save(folder / f"{i + 1:05d}.jpg")


def make_sthv1(root: Path, *, frames: int = 6) -> Path:
    """3 classes; train: clips 1, 2, 3; val: clip 4. Frames under ``root/frames``."""
    (root / "frames").mkdir(parents=True)
    (root / "something-something-v1-labels.csv").write_text("".join(n + "\n" for n in V1_NAMES))
    (root / "something-something-v1-train.csv").write_text(
        f"1;{V1_NAMES[0]}\n2;{V1_NAMES[1]}\n3;{V1_NAMES[2]}\n")
    (root / "something-something-v1-validation.csv").write_text(f"4;{V1_NAMES[1]}\n")
    for vid in "1234":
        write_frames(root / "frames" / vid, frames)
    return root


def tiny_clip(frames: int = 8, size: int = 32) -> np.ndarray:
    clip = np.zeros((frames, size, size, 3), np.uint8)
    for f in range(frames):
        clip[f, :, : 4 + 3 * f] = 200  # a growing bar, so frames differ
    return clip


def make_sthv2(root: Path, *, frames: int = 8) -> Path:
    root.mkdir(parents=True)
    names = ["Moving something up", "Putting something onto something"]
    (root / "something-something-v2-labels.json").write_text(json.dumps({n: str(i) for i, n in enumerate(names)}))
    train = [{"id": "10", "label": "moving a pen up", "template": "Moving [something] up", "placeholders": ["a pen"]},
             {"id": "11", "label": "putting a cup onto a box", "template": "Putting [something] onto [something]",
              "placeholders": ["a cup", "a box"]}]
    val = [{"id": "12", "label": "x", "template": "Moving [something] up", "placeholders": ["x"]}]
    (root / "something-something-v2-train.json").write_text(json.dumps(train))
    (root / "something-something-v2-validation.json").write_text(json.dumps(val))
    (root / "something-something-v2-test.json").write_text(json.dumps([{"id": "13"}]))
    for vid in ("10", "11", "12", "13"):
        write_video(root / f"{vid}.webm", tiny_clip(frames), fps=10, codec="libvpx")
    return root


def make_diving48(root: Path, *, frames: int = 8) -> Path:
    (root / "rgb").mkdir(parents=True)
    (root / "Diving48_vocab.json").write_text(json.dumps([["Back", "15som", "05Twis", "FREE"], ["Forward", "25som", "NoTwis", "PIKE"]]))
    train = [{"vid_name": "a", "label": 0, "start_frame": 0, "end_frame": 7},
             {"vid_name": "b", "label": 1, "start_frame": 0, "end_frame": 7}]
    (root / "Diving48_V2_train.json").write_text(json.dumps(train))
    (root / "Diving48_V2_test.json").write_text(json.dumps([{"vid_name": "c", "label": 1, "start_frame": 0, "end_frame": 7}]))
    for vid in "abc":
        write_video(root / "rgb" / f"{vid}.mp4", tiny_clip(frames), fps=10, codec="mpeg4")
    return root


def write_vfr_webm(path: Path, frames: int = 60, *, size: int = 32, codec: str = "libvpx-vp9") -> float:
    """A valid variable-frame-rate WebM: frame gaps alternate irregularly between 20 and 200 ms.

    Declared at 30 fps, so duration x average rate promises far more frames than it holds.
    Returns the container's duration x average frame rate (the old "header" estimate).
    """
    import fractions

    import av

    gaps = np.random.default_rng(0).choice([20, 200], size=frames)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=30)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = fractions.Fraction(1, 1000)
        pts = 0
        for i, clip_frame in enumerate(tiny_clip(frames, size)):
            frame = av.VideoFrame.from_ndarray(clip_frame, format="rgb24")
            frame.pts, frame.time_base = pts, fractions.Fraction(1, 1000)
            pts += int(gaps[i])
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with av.open(str(path)) as container:
        return container.duration / 1_000_000 * float(container.streams.video[0].average_rate)


def video_backends():
    """Every video backend as a ``pytest.param``; one this machine lacks is skipped, saying why."""
    import pytest

    from aknet_cli.data.video_io import BACKENDS, backend_installed

    reasons = {"torchcodec": "torchcodec or FFmpeg's shared libraries missing (pip install 'aknet[torchcodec]'; "
                             "apt-get install ffmpeg)",
               "decord": "decord is not installed (no wheel for this platform)",
               "pyav": "PyAV is not installed"}
    return [pytest.param(b, marks=pytest.mark.skipif(not backend_installed(b), reason=reasons[b])) for b in BACKENDS]
