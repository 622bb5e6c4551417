"""Decoding: JPEG frame folders via PIL, videos via torchcodec, decord or PyAV.

Every reader returns ``uint8`` tensors of shape ``(N, 3, H, W)`` in RGB order, frame ``i``
being the ``i``-th frame that decodes whatever the backend. The default backend is
:func:`default_backend`: the fastest of those exact on every format we read (docs/data.md's
table) that is installed. torch and the decoder packages are imported on first use (so
``aknet prepare`` starts without torch), with an install hint if a decoder is missing. Any decoding failure becomes a
:class:`VideoDecodeError` naming the file. The decoders' own log lines (FFmpeg's
``[matroska,webm @ 0x...] Read error`` and the like) are silenced: problems are reported
through these errors, and so through prepare's skip reasons, only.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from .._stderr import silenced_stderr
from ..exceptions import ConfigError, VideoDecodeError
from . import torchcodec_io
from .file_source import decoder_source

if TYPE_CHECKING:  # numpy and torch are imported inside the readers: counting frames needs neither
    import numpy as np
    import torch

#: Every backend, in the order :func:`default_backend` prefers them: measured clips/s on VP9
#: WebM, H.264 MP4 and VFR WebM, among the backends exact on all of them (docs/data.md).
BACKENDS = ("torchcodec", "decord", "pyav")
_quiet = {"decord": False, "pyav": False}


_NOT_INSTALLED = {
    "decord": "video backend 'decord' is not installed: pip install decord (or use backend 'pyav')",
    "pyav": "video backend 'pyav' is not installed: pip install av (or use backend 'decord')",
}


def _unavailable(backend: str) -> str | None:
    """Why ``backend`` cannot decode here (one line with the fix), or ``None``. Imports nothing."""
    if backend == "torchcodec":
        return torchcodec_io.unavailable_reason()
    import importlib.util

    return None if importlib.util.find_spec({"decord": "decord", "pyav": "av"}[backend]) else _NOT_INSTALLED[backend]


def _known(backend: str) -> str:
    if backend not in BACKENDS:
        raise ConfigError(f"unknown video backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return backend


def backend_installed(backend: str) -> bool:
    """Whether ``backend`` can decode here; imports nothing (a few ms: FFmpeg's libraries are opened)."""
    return _unavailable(_known(backend)) is None


def default_backend() -> str:
    """The fastest exact video backend that is installed: the one every default reads."""
    return next((backend for backend in BACKENDS if backend_installed(backend)), "pyav")


def check_backend(backend: str | None) -> str:
    """``backend`` (``None``: :func:`default_backend`), checked to be known and installed.

    Raises:
        ConfigError: an unknown name, or a backend this machine lacks (the line says what to install).
    """
    backend = default_backend() if backend is None else _known(backend)
    reason = _unavailable(backend)
    if reason:
        raise ConfigError(reason)
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
        raise ConfigError(_NOT_INSTALLED["decord"]) from None
    if not _quiet["decord"]:
        # decord's bundled FFmpeg prints straight to stderr ("Read error", "Unable to parse
        # option value ..."); its level setter is the only switch that reaches it.
        decord.logging.set_level(decord.logging.QUIET)
        _quiet["decord"] = True
    return decord




def _import_av():
    try:
        import av
        import av.logging
    except ImportError:
        raise ConfigError(_NOT_INSTALLED["pyav"]) from None
    if not _quiet["pyav"]:
        # FFmpeg's ERROR-level messages are how a demuxer says a file ended early (a truncated
        # WebM raises nothing, it only logs "File ended prematurely"), so they are enabled and
        # captured per call (see _ffmpeg_errors); anything uncaptured goes nowhere, never to
        # the user's terminal.
        libav = logging.getLogger("libav")
        libav.addHandler(logging.NullHandler())
        libav.propagate = False
        av.logging.set_level(av.logging.ERROR)
        av.logging.set_skip_repeated(False)  # the same error in the next file must be seen too
        _quiet["pyav"] = True
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


def read_frame_files(folder: Path, indices: Sequence[int], *, template: str, start_index: int) -> "torch.Tensor":
    """Load frames ``indices`` (0-based) of a frame folder.

    Returns:
        ``uint8`` tensor ``(len(indices), 3, H, W)``.
    """
    import numpy as np
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


def _stack(frames: "list[np.ndarray]", source: Path) -> "torch.Tensor":
    import numpy as np
    import torch

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


def read_video(path: Path, indices: Sequence[int], *, backend: str | None = None, device: str = "cpu") -> "torch.Tensor":
    """Decode frames ``indices`` (0-based) of a video file.

    Args:
        backend: ``torchcodec``, ``decord`` or ``pyav``; ``None`` for :func:`default_backend`.
        device: ``cuda`` decodes on the GPU (NVDEC; torchcodec only).

    Returns:
        ``uint8`` tensor ``(len(indices), 3, H, W)`` on ``device``.
    """
    path = Path(path)
    _check_file(path)
    backend = check_backend(backend)
    if device != "cpu" and backend != "torchcodec":
        raise ConfigError(f"decoding on {device} needs backend 'torchcodec', not {backend!r}")
    if backend == "torchcodec":
        return torchcodec_io.read(path, indices, device=device)
    if backend == "decord":
        decord = _import_decord()
        try:
            with silenced_stderr(), decoder_source(path) as source:
                reader = decord.VideoReader(source, num_threads=1)
                array = reader.get_batch(list(int(i) for i in indices)).asnumpy()
        except Exception as exc:  # decord raises its own DECORDError and RuntimeError subclasses
            raise VideoDecodeError(f"cannot decode {path} with decord: {_short(exc)}") from None
        import torch

        return torch.from_numpy(array).permute(0, 3, 1, 2).contiguous()
    return _read_video_pyav(path, indices)


def _read_video_pyav(path: Path, indices: Sequence[int]) -> "torch.Tensor":
    av = _import_av()
    wanted = set(int(i) for i in indices)
    last = max(wanted)
    decoded: "dict[int, np.ndarray]" = {}
    seen = 0  # frames decoded, wanted or not
    try:
        # Sequential decoding: frame-accurate seeking is unreliable across containers.
        with av.open(str(path)) as container:
            for number, frame in enumerate(container.decode(video=0)):
                seen = number + 1
                if number in wanted:
                    decoded[number] = frame.to_ndarray(format="rgb24")
                if number >= last:
                    break
    except (av.error.FFmpegError, ValueError, IndexError) as exc:
        raise VideoDecodeError(f"cannot decode {path} with PyAV: {_short(exc)}") from None
    missing = sorted(wanted - decoded.keys())
    if missing:
        raise VideoDecodeError(f"{path} ends before frame {missing[0]} (only {seen} decodable)")
    return _stack([decoded[int(i)] for i in indices], path)


@dataclass(frozen=True)
class _Scan:
    """What demuxing a video's packets (no decoding) says about it."""

    packets: int  # frames present: the index's count, else the non-empty video packets
    indexed: int  # frames the container's index lists (MP4 sample table), 0 if it has none
    error: str | None  # the first FFmpeg error while demuxing (e.g. "File ended prematurely")


def count_video_frames(path: Path, *, backend: str | None = None) -> int:
    """Frames of a video, verified, without trusting any frame-rate estimate.

    A container with a frame index (MP4) gives the count; one without (WebM) has its video
    packets demuxed and counted (cheap: nothing is decoded). A file is *truncated* only when
    it actually fails before the end of its stream: the demuxer reports a read error or a
    premature end (a cut WebM), or decoding stops before the last frame the container lists
    (a cut MP4). A variable-frame-rate file whose duration x average rate promises more
    frames than it has is fine: no frame rate is ever used.

    With ``torchcodec`` or ``decord`` the count is that decoder's own (torchcodec's packet
    scan, decord's one entry per packet), verified by decoding the last frame; if that fails,
    or with ``pyav``, every frame is decoded and counted in one pass. The demuxing scan comes
    first with every backend: only FFmpeg's demuxer log says a WebM ends early (torchcodec
    and decord count such a file's frames without an error).

    Raises:
        VideoDecodeError: missing, zero-byte, undecodable or truncated file.
    """
    path = Path(path)
    _check_file(path)
    backend = check_backend(backend)
    if backend == "pyav":
        # Decoding every frame also demuxes every packet: one pass sees both kinds of failure.
        count, error, indexed = _pyav_decode_count(path)
        if error is not None and (count or indexed):  # frames listed or decoded, then a failure
            raise VideoDecodeError(f"truncated video {path}: decoding stops after {count} frames ({error})")
        if count == 0:
            raise VideoDecodeError(f"no decodable video frames in {path}" + (f" ({error})" if error else ""))
        return count
    scan = _pyav_scan(path)
    if scan.packets == 0:
        raise VideoDecodeError(f"no decodable video frames in {path}" + (f" ({scan.error})" if scan.error else ""))
    if scan.error:
        where = "" if scan.indexed else f" after {scan.packets} frames"
        raise VideoDecodeError(f"truncated video {path}: the file ends{where} ({scan.error})")
    verified_count = torchcodec_io.verified_count if backend == "torchcodec" else _decord_verified_count
    count = verified_count(path)
    if count is None:  # the last frame failed: decode everything to find out why
        count, error, _ = _pyav_decode_count(path)
        if count == 0:
            raise VideoDecodeError(f"no decodable video frames in {path}" + (f" ({error})" if error else ""))
        if error is not None or count < scan.packets:
            raise VideoDecodeError(f"truncated video {path}: decoding stops after {count} of {scan.packets} frames"
                                   + (f" ({error})" if error else ""))
    return count


def _decord_verified_count(path: Path) -> int | None:
    """decord's frame count if its last frame decodes, else ``None``."""
    decord = _import_decord()
    try:
        with silenced_stderr(), decoder_source(path) as source:
            reader = decord.VideoReader(source, num_threads=1)
            if len(reader) > 0:
                reader[len(reader) - 1]
                return len(reader)
    except Exception:  # decord raises DECORDError / RuntimeError subclasses
        pass
    return None


def _pyav_scan(path: Path) -> _Scan:
    """Open the container; demux its video packets only where it has no frame index.

    An index (MP4's sample table) is an exact count, and a cut file fails to decode its last
    frame, which the caller checks; without one (WebM) the packets are the count, and the
    demuxer's own error is the only sign of a cut file.
    """
    av = _import_av()
    with av.logging.Capture() as logs:
        try:
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                indexed = int(stream.frames or 0)
                packets = indexed or sum(1 for packet in container.demux(stream) if packet.size)
        except (av.error.FFmpegError, IndexError, ValueError) as exc:
            raise VideoDecodeError(f"cannot open {path} as a video: {_short(exc)}") from None
    return _Scan(packets=packets, indexed=indexed, error=_first_error(logs))


def _pyav_decode_count(path: Path) -> tuple[int, str | None, int]:
    """``(frames decoded, first error or None, frames the index lists or 0)``: decoding every
    frame of the first video stream.

    An error is FFmpeg's (demuxer or decoder) or the container's index listing more frames
    than decode.

    Raises:
        VideoDecodeError: the file does not open as a video.
    """
    av = _import_av()
    count, error, indexed = 0, None, 0
    with av.logging.Capture() as logs:
        try:
            with av.open(str(path)) as container:
                indexed = int(container.streams.video[0].frames or 0)
                for _ in container.decode(video=0):
                    count += 1
        except (av.error.FFmpegError, IndexError, ValueError) as exc:
            if count == 0 and not indexed:
                raise VideoDecodeError(f"cannot open {path} as a video: {_short(exc)}") from None
            error = _short(exc)
    error = error or _first_error(logs)
    if error is None and count < indexed:
        error = f"its index lists {indexed} frames"
    return count, error, indexed


def _first_error(logs) -> str | None:
    """The first ERROR-or-worse FFmpeg message captured, stripped."""
    import av.logging

    for level, _name, message in logs:
        if level <= av.logging.ERROR and message.strip():
            return message.strip()
    return None


def _short(exc: BaseException) -> str:
    """One short line for a decoder exception (PyAV's repeat the file name and the log)."""
    strerror = getattr(exc, "strerror", None)
    if isinstance(strerror, str) and strerror:
        log = getattr(exc, "log", None)  # PyAV: (level, component, FFmpeg's last message)
        detail = log[2].strip() if isinstance(log, tuple) and len(log) > 2 and log[2] else ""
        return f"{strerror} ({detail})" if detail and detail != strerror else strerror
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
