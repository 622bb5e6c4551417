"""Odd and broken inputs: videos of every awkward shape, truncated and flipped files, a
malicious pickle, text in the wrong encoding."""

from __future__ import annotations

import os
import struct
import zipfile
from pathlib import Path

import numpy as np


def frames(count: int, height: int, width: int, *, seed: int = 0) -> np.ndarray:
    """``uint8 (T, H, W, 3)``: a moving bright square on noise, so every frame differs."""
    rng = np.random.default_rng(seed)
    clip = rng.integers(0, 80, size=(count, height, width, 3), dtype=np.uint8)
    side = max(1, min(height, width) // 3)
    for t in range(count):
        y = (t * max(1, (height - side) // max(1, count - 1))) % max(1, height - side + 1)
        x = (t * max(1, (width - side) // max(1, count - 1))) % max(1, width - side + 1)
        clip[t, y:y + side, x:x + side] = 230
    return clip


def write_video(path: Path, clip: np.ndarray, *, codec: str = "mpeg4", fps: int = 10,
                pix_fmt: str = "yuv420p") -> Path:
    """Encode ``clip`` with PyAV (VP8 for ``.webm``, MPEG-4 Part 2 for ``.mp4`` by default)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = clip.shape[2], clip.shape[1]
        stream.pix_fmt = pix_fmt
        for frame in clip:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_audio_only(path: Path, *, seconds: float = 0.5) -> Path:
    """An audio track (AAC; Opus in a WebM) and no video stream at all."""
    import av

    codec, rate, fmt, chunk = ("libopus", 48000, "flt", 960) if path.suffix == ".webm" else ("aac", 16000, "fltp", 1024)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        tone = np.sin(np.arange(int(seconds * rate)) / 8.0).astype(np.float32)[None]
        for start in range(0, tone.shape[1] - chunk + 1, chunk):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, start:start + chunk]), format=fmt, layout="mono")
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_frames(folder: Path, clip: np.ndarray, *, template: str = "{:05d}.jpg", start: int = 1) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(clip):
        Image.fromarray(frame).save(folder / template.format(start + i))
    return folder


def truncated(src: Path, dst: Path, fraction: float = 0.5) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: max(1, int(len(data) * fraction))])
    return dst


def flip_tensor_bytes(src: Path, dst: Path, count: int = 64) -> Path:
    """Copy a ``torch.save`` file with ``count`` bytes inverted in the middle of its largest
    tensor record: the archive still opens (PyTorch does not check the zip CRCs), the weights
    are silently different."""
    with zipfile.ZipFile(src) as archive:
        record = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    data = bytearray(src.read_bytes())
    name_len, extra_len = struct.unpack("<HH", data[record.header_offset + 26: record.header_offset + 30])
    start = record.header_offset + 30 + name_len + extra_len + record.file_size // 2
    for i in range(start, start + count):
        data[i] ^= 0xFF
    dst.write_bytes(bytes(data))
    return dst


class _RunsCode:
    """Unpickling this runs a shell command: what ``weights_only`` loading must refuse."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def malicious_checkpoint(path: Path, marker: Path) -> Path:
    """A checkpoint-looking file whose unpickling would create ``marker``."""
    import torch

    torch.save({"format": "aknet-checkpoint/2", "kind": "backbone", "state_dict": {"w": _RunsCode(marker)}}, path)
    return path


def latin1(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("latin-1"))
    return path
