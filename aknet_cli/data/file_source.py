"""What a decoder is handed for a video file: its name, or the open file where the name is not UTF-8.

A Linux file name is any bytes but ``/`` and NUL: ``caf\\xe9.mp4``, written by a Latin-1
system, is a valid name. Python holds the bytes that are not UTF-8 as lone surrogates
(``'caf\\udce9.mp4'``, PEP 383), which torchcodec ("Expected a value of type 'str'") and decord
("surrogates not allowed") cannot hand to FFmpeg as a name. Both read from a file object as
well, so such a file is opened here (by its exact bytes) and the open file is handed over;
every other name is passed as it is, which lets the decoders open and seek the file themselves.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import BinaryIO, Iterator


def utf8_name(path: Path) -> bool:
    """Whether ``path``'s name can be handed to a decoder as text (it is valid UTF-8)."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@contextlib.contextmanager
def decoder_source(path: Path) -> Iterator[str | BinaryIO]:
    """``str(path)``, or, for a name that is not UTF-8, the file opened for reading.

    decord reads the whole of a file object into memory before decoding it, torchcodec reads it
    through Python calls: both cost more than a name, so only the names that need it take this way.
    """
    if utf8_name(path):
        yield str(path)
        return
    with open(path, "rb") as handle:  # open() passes the surrogates back as the original bytes
        yield handle
