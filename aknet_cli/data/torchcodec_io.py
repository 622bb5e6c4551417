"""The torchcodec reader: PyTorch's own decoder, over the FFmpeg shared libraries of the system.

torchcodec ships no FFmpeg: it loads the system's (majors 4-9 for torchcodec 0.17) when it is
first used. :func:`ffmpeg_major` finds them without importing torch (``aknet prepare`` must
start fast and choose its default backend), by opening the same libraries torchcodec's core
links against; :func:`import_torchcodec` turns both "not installed" and "no FFmpeg" into one
line saying what to install.

Decoders open in ``seek_mode="exact"``: the container's packets are scanned once, so frame
``i`` is the ``i``-th frame that decodes, as PyAV and decord number them. "approximate" mode
trusts duration x frame rate, which on a variable-frame-rate WebM promises several times the
frames there are (measured: 214 for a 60-frame file) and returns the wrong ones.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from ..exceptions import ConfigError, VideoDecodeError
from .file_source import decoder_source

if TYPE_CHECKING:
    import torch

#: The FFmpeg libraries (sonames) that torchcodec 0.17's core for each FFmpeg major needs.
FFMPEG_SONAMES: dict[int, tuple[str, ...]] = {
    4: ("libavutil.so.56", "libavcodec.so.58", "libavformat.so.58", "libavdevice.so.58", "libavfilter.so.7",
        "libswscale.so.5", "libswresample.so.3"),
    5: ("libavutil.so.57", "libavcodec.so.59", "libavformat.so.59", "libavdevice.so.59", "libavfilter.so.8",
        "libswscale.so.6", "libswresample.so.4"),
    6: ("libavutil.so.58", "libavcodec.so.60", "libavformat.so.60", "libavdevice.so.60", "libavfilter.so.9",
        "libswscale.so.7", "libswresample.so.4"),
    7: ("libavutil.so.59", "libavcodec.so.61", "libavformat.so.61", "libavdevice.so.61", "libavfilter.so.10",
        "libswscale.so.8", "libswresample.so.5"),
    8: ("libavutil.so.60", "libavcodec.so.62", "libavformat.so.62", "libavdevice.so.62", "libavfilter.so.11",
        "libswscale.so.9", "libswresample.so.6"),
    9: ("libavutil.so.61", "libavcodec.so.63", "libavformat.so.63", "libavdevice.so.63", "libavfilter.so.12",
        "libswscale.so.10", "libswresample.so.7"),
}
INSTALL_FFMPEG = "apt-get install ffmpeg (Debian/Ubuntu), dnf install ffmpeg-libs, brew install ffmpeg or conda install ffmpeg"


def _loads(soname: str) -> bool:
    try:
        ctypes.CDLL(soname)
    except OSError:
        return False
    return True


@functools.cache
def ffmpeg_major() -> int | None:
    """The newest FFmpeg major whose libraries all load here, or ``None``. No torch import."""
    for major in sorted(FFMPEG_SONAMES, reverse=True):
        if all(_loads(name) for name in FFMPEG_SONAMES[major]):
            return major
    return None


def missing_ffmpeg_libraries() -> list[str]:
    """Library names (``libavcodec``, ...) that no supported FFmpeg major provides here."""
    names = [soname.split(".so")[0] for soname in FFMPEG_SONAMES[min(FFMPEG_SONAMES)]]
    return [name for i, name in enumerate(names) if not any(_loads(sonames[i]) for sonames in FFMPEG_SONAMES.values())]


def ffmpeg_missing_message() -> str:
    majors = f"{min(FFMPEG_SONAMES)}-{max(FFMPEG_SONAMES)}"
    missing = ", ".join(missing_ffmpeg_libraries()) or f"no complete set of one FFmpeg {majors} version"
    return (f"video backend 'torchcodec' needs FFmpeg {majors}'s shared libraries, not found here ({missing}): "
            f"install them with {INSTALL_FFMPEG}; or use backend 'pyav'")


def unavailable_reason() -> str | None:
    """Why torchcodec cannot decode here (one line with the fix), or ``None``. Imports nothing."""
    import importlib.util

    if importlib.util.find_spec("torchcodec") is None:
        return "video backend 'torchcodec' is not installed: pip install 'aknet[torchcodec]' (or use backend 'pyav')"
    if ffmpeg_major() is None:  # checked before torchcodec loads: this names the libraries, its own error does not
        return ffmpeg_missing_message()
    return None


@functools.cache
def import_torchcodec():
    """``torchcodec.decoders``, checked to have loaded FFmpeg.

    Raises:
        ConfigError: torchcodec is not installed, FFmpeg's libraries are missing, or
            torchcodec cannot load them (e.g. a torch it was not built for).
    """
    reason = unavailable_reason()
    if reason:
        raise ConfigError(reason)
    import torchcodec
    import torchcodec.decoders

    try:
        # torchcodec binds its FFmpeg ops at import; when loading failed, the first call raises.
        from torchcodec._core import get_ffmpeg_library_versions

        get_ffmpeg_library_versions()
    except ImportError:  # another torchcodec layout: a real failure shows on first decode
        pass
    except RuntimeError:
        import torch

        raise ConfigError(f"torchcodec {torchcodec.__version__} cannot load FFmpeg {ffmpeg_major()} with torch "
                          f"{torch.__version__}: pip install 'torchcodec>=0.14' (or use backend 'pyav')") from None
    return torchcodec.decoders


@contextlib.contextmanager
def _opened(path: Path, device: str) -> Iterator[Any]:
    """A decoder of ``path``, open while the block runs (a name that is not UTF-8 is read
    through the open file: :mod:`~aknet_cli.data.file_source`)."""
    decoders = import_torchcodec()
    with decoder_source(path) as source:
        try:
            decoder = decoders.VideoDecoder(source, seek_mode="exact", num_ffmpeg_threads=1, device=device)
        except (RuntimeError, ValueError) as exc:  # torchcodec raises both for files it cannot open
            raise VideoDecodeError(f"cannot decode {path} with torchcodec: {short(exc)}") from None
        yield decoder


def read(path: Path, indices: Sequence[int], *, device: str = "cpu") -> "torch.Tensor":
    """Frames ``indices`` (0-based, any order, repeats allowed) of a video file.

    Returns:
        ``uint8`` tensor ``(len(indices), 3, H, W)`` on ``device``.

    Raises:
        VideoDecodeError: the file does not decode, or ends before an index.
    """
    wanted = [int(i) for i in indices]
    with _opened(path, device) as decoder:
        if max(wanted) >= len(decoder):
            raise VideoDecodeError(f"{path} ends before frame {max(wanted)} (only {len(decoder)} decodable)")
        try:
            return decoder.get_frames_at(wanted).data
        except (RuntimeError, IndexError) as exc:
            raise VideoDecodeError(f"cannot decode {path} with torchcodec: {short(exc)}") from None


def verified_count(path: Path) -> int | None:
    """The frames torchcodec's packet scan lists, if the last of them decodes, else ``None``."""
    try:
        with _opened(path, "cpu") as decoder:
            if len(decoder) > 0:
                decoder.get_frame_at(len(decoder) - 1)
                return len(decoder)
    except (VideoDecodeError, RuntimeError, IndexError):
        pass
    return None


def short(exc: BaseException) -> str:
    """torchcodec's message without its C++ source location (``Name, File.cpp:41, ...``)."""
    lines = str(exc).strip().splitlines()
    text = re.sub(r"^\w+, \S+:\d+, ", "", lines[0]) if lines else type(exc).__name__
    return text[:200]
