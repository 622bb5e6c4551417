"""Decoding: JPEG frame folders via PIL, videos via decord (default) or PyAV.

Every reader returns ``uint8`` tensors of shape ``(N, 3, H, W)`` in RGB order. Decoder
packages are imported on first use, with an install hint if missing. Any decoding failure
becomes a :class:`VideoDecodeError` naming the file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..exceptions import ConfigError, VideoDecodeError

BACKENDS = ("decord", "pyav")


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ConfigError(f"unknown video backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return backend


def _import_decord():
    try:
        # decord bundles its own FFmpeg; loading PyAV's first keeps PyAV's encoders (libvpx)
        # working in the same process.
        import av  # noqa: F401
    except ImportError:
        pass
    try:
        import decord
    except ImportError:
        raise ConfigError("video backend 'decord' is not installed: pip install decord (or use backend 'pyav')") from None
    return decord


def _import_av():
    try:
        import av
    except ImportError:
        raise ConfigError("video backend 'pyav' is not installed: pip install av (or use backend 'decord')") from None
    return av


# ---------------------------------------------------------------------------- frames
def template_regex(template: str) -> re.Pattern:
    """``"{:05d}.jpg"`` -> a regex matching ``00001.jpg`` and capturing the number."""
    head, _, tail = template.partition("{")
    spec, _, rest = tail.partition("}")
    width = re.search(r"0?(\d+)d", spec)
    digits = rf"\d{{{width.group(1)}}}" if width and spec.startswith(":0") else r"\d+"
    return re.compile(re.escape(head) + f"({digits})" + re.escape(rest) + "$")


def count_frame_files(folder: Path, *, template: str, start_index: int) -> int:
    """Number of frames ``start_index, start_index+1, ...`` present in ``folder``.

    Raises:
        VideoDecodeError: the folder is missing, empty, or its numbering has a gap.
    """
    if not folder.is_dir():
        raise VideoDecodeError(f"missing frame folder {folder}")
    pattern = template_regex(template)
    numbers = sorted(int(m.group(1)) for name in os.listdir(folder) if (m := pattern.match(name)))
    if not numbers:
        raise VideoDecodeError(f"empty frame folder {folder} (no files named like {template.format(start_index)})")
    if numbers[0] != start_index or numbers[-1] - numbers[0] + 1 != len(numbers):
        raise VideoDecodeError(f"frame numbering in {folder} has gaps or does not start at {start_index}")
    return len(numbers)


def read_frame_files(folder: Path, indices: Sequence[int], *, template: str, start_index: int) -> torch.Tensor:
    """Load frames ``indices`` (0-based) of a frame folder.

    Returns:
        ``uint8`` tensor ``(len(indices), 3, H, W)``.
    """
    from PIL import Image

    unique = sorted(set(int(i) for i in indices))
    decoded = {}
    for index in unique:
        path = folder / template.format(index + start_index)
        try:
            with Image.open(path) as image:
                decoded[index] = np.asarray(image.convert("RGB"))
        except (OSError, ValueError) as exc:
            raise VideoDecodeError(f"cannot read frame {path}: {exc}") from None
    return _stack([decoded[int(i)] for i in indices], folder)


def _stack(frames: list[np.ndarray], source: Path) -> torch.Tensor:
    try:
        array = np.stack(frames)
    except ValueError:
        raise VideoDecodeError(f"frames of {source} differ in size; re-extract them") from None
    return torch.from_numpy(array).permute(0, 3, 1, 2).contiguous()


# ---------------------------------------------------------------------------- videos
def _check_file(path: Path) -> None:
    if not path.is_file():
        raise VideoDecodeError(f"missing video {path}")
    if path.stat().st_size == 0:
        raise VideoDecodeError(f"zero-byte video {path}")


def read_video(path: Path, indices: Sequence[int], *, backend: str = "decord") -> torch.Tensor:
    """Decode frames ``indices`` (0-based) of a video file.

    Returns:
        ``uint8`` tensor ``(len(indices), 3, H, W)``.
    """
    path = Path(path)
    _check_file(path)
    if check_backend(backend) == "decord":
        decord = _import_decord()
        try:
            reader = decord.VideoReader(str(path), num_threads=1)
            array = reader.get_batch(list(int(i) for i in indices)).asnumpy()
        except Exception as exc:  # decord raises its own DECORDError and RuntimeError subclasses
            raise VideoDecodeError(f"cannot decode {path} with decord: {_short(exc)}") from None
        return torch.from_numpy(array).permute(0, 3, 1, 2).contiguous()
    return _read_video_pyav(path, indices)


def _read_video_pyav(path: Path, indices: Sequence[int]) -> torch.Tensor:
    av = _import_av()
    wanted = set(int(i) for i in indices)
    last = max(wanted)
    decoded: dict[int, np.ndarray] = {}
    try:
        # Sequential decoding: frame-accurate seeking is unreliable across containers.
        with av.open(str(path)) as container:
            for number, frame in enumerate(container.decode(video=0)):
                if number in wanted:
                    decoded[number] = frame.to_ndarray(format="rgb24")
                if number >= last:
                    break
    except (av.error.FFmpegError, ValueError, IndexError) as exc:
        raise VideoDecodeError(f"cannot decode {path} with PyAV: {_short(exc)}") from None
    missing = sorted(wanted - decoded.keys())
    if missing:
        raise VideoDecodeError(f"{path} ends before frame {missing[0]} (only {len(decoded) and max(decoded) + 1} decodable)")
    return _stack([decoded[int(i)] for i in indices], path)


def count_video_frames(path: Path, *, backend: str = "decord") -> int:
    """Frames of a video, verified: the last one must decode.

    decord's count is trusted when its last frame decodes; otherwise (or with the ``pyav``
    backend) the frames are counted by decoding them all with PyAV. A file that yields
    noticeably fewer frames (more than 10%, at least 3) than its container promises (frame
    count, or duration x frame rate for WebM) is reported as truncated.

    Raises:
        VideoDecodeError: missing, zero-byte, undecodable or truncated file.
    """
    path = Path(path)
    _check_file(path)
    header = _pyav_header_count(path)
    count = None
    if check_backend(backend) == "decord":
        decord = _import_decord()
        try:
            reader = decord.VideoReader(str(path), num_threads=1)
            if len(reader) > 0:
                reader[len(reader) - 1]
                count = len(reader)
        except Exception:
            pass  # fall through to the exact count below
    if count is None:
        count = _pyav_decode_count(path)
    if count == 0:
        raise VideoDecodeError(f"no decodable video frames in {path}")
    if header and count < header - max(2, round(0.1 * header)):
        raise VideoDecodeError(f"truncated video {path}: its header promises ~{header} frames, {count} decode")
    return count


def _pyav_header_count(path: Path) -> int | None:
    """Frames the container promises: its frame count, else duration x frame rate (WebM)."""
    av = _import_av()
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            if stream.frames:
                return int(stream.frames)
            if container.duration and stream.average_rate:
                return round(container.duration / 1_000_000 * float(stream.average_rate))
            return None
    except (av.error.FFmpegError, IndexError, ValueError) as exc:
        raise VideoDecodeError(f"cannot open {path} as a video: {_short(exc)}") from None


def _pyav_decode_count(path: Path) -> int:
    av = _import_av()
    count = 0
    try:
        with av.open(str(path)) as container:
            for _ in container.decode(video=0):
                count += 1
    except (av.error.FFmpegError, IndexError, ValueError) as exc:
        if count == 0:
            raise VideoDecodeError(f"cannot open {path} as a video: {_short(exc)}") from None
    return count


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
