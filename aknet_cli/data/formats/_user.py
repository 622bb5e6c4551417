"""What the readers of users' own data share: media suffixes, frame-file naming, flip pairs.

A user's frame folders follow whatever their extraction tool wrote (mmaction2's
``img_00001.jpg``, ffmpeg's ``%06d.png`` from 0, ...), so the naming is read off the files
instead of being assumed; ``--frame-template``/``--start-index`` override it.
"""

from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path

from ...exceptions import ConfigError, DataError
from ._text import load_json, read_text

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ogv")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
#: Frame folders looked at for the naming before giving up (the first ones, in sorted order).
NAMING_SAMPLE = 20
#: ``prefix`` + frame number + ``suffix`` (the extension, maybe after non-digits: ``_rgb.jpg``).
_NUMBERED = re.compile(r"^(.*?)(\d+)(\D*\.[A-Za-z0-9]+)$")


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def infer_frame_naming(folder: Path) -> tuple[str, int] | None:
    """The ``(template, start_index)`` of the numbered images in ``folder``, or ``None``.

    ``img_00001.jpg ... img_00120.jpg`` gives ``("img_{:05d}.jpg", 1)``; ``0.png ... 57.png``
    gives ``("{:d}.png", 0)``. The most common prefix/suffix pair wins (a stray ``cover.jpg``
    does not matter).
    """
    groups: dict[tuple[str, str], list[str]] = {}
    for name in os.listdir(folder):
        match = _NUMBERED.match(name)
        if match and Path(name).suffix.lower() in IMAGE_SUFFIXES:
            groups.setdefault((match.group(1), match.group(3)), []).append(match.group(2))
    if not groups:
        return None
    (prefix, suffix), digits = max(groups.items(), key=lambda item: len(item[1]))
    if any(c in prefix + suffix for c in "{}"):
        return None  # not expressible as a str.format template
    widths = {len(d) for d in digits}
    if len(widths) == 1:
        width = widths.pop()
        field = "{:d}" if width == 1 else f"{{:0{width}d}}"
    elif any(len(d) > 1 and d.startswith("0") for d in digits):
        return None  # zero-padded to varying widths: no single template reads them
    else:
        field = "{:d}"
    return prefix + field + suffix, min(int(d) for d in digits)


def check_frame_template(template: str) -> str:
    """Refuse a ``--frame-template`` without exactly one integer field."""
    try:
        if template.format(1) == template.format(2):
            raise ValueError
    except (ValueError, IndexError, KeyError):
        raise ConfigError(f"--frame-template {template!r} needs one integer field such as img_{{:05d}}.jpg") from None
    return template


def resolve_frame_naming(folders: list[Path], *, template: str | None, start_index: int | None) -> tuple[str, int, str]:
    """The dataset's frame naming: the user's, or inferred from its first frame folders.

    Returns:
        ``(template, start_index, note)``; the note says where the naming came from.

    Raises:
        DataError: none of the first :data:`NAMING_SAMPLE` folders holds numbered images
            (naming the first one and what it holds instead).
    """
    if start_index is not None and start_index < 0:
        raise ConfigError(f"--start-index must be >= 0, got {start_index}")
    if template is not None:
        start = 1 if start_index is None else start_index
        return check_frame_template(template), start, f"frame files named {template} from {start} (--frame-template)"
    for folder in folders[:NAMING_SAMPLE]:
        if folder.is_dir() and (naming := infer_frame_naming(folder)) is not None:
            found, start = naming
            start = start if start_index is None else start_index
            return found, start, (f"frame files named {found} from {start}, as in {folder} "
                                  "(override with --frame-template/--start-index)")
    first = folders[0]
    videos = [p.name for p in sorted(first.iterdir()) if is_video(p)] if first.is_dir() else []
    if videos:
        raise DataError(f"{first} is a folder of videos ({videos[0]}, ...), not of frames: clips must sit directly "
                        "in their class folder (or list them in the list file)")
    raise DataError(f"no frame folder among the first {min(len(folders), NAMING_SAMPLE)} (e.g. {first}) holds numbered "
                    f"images ({', '.join(IMAGE_SUFFIXES)}); pass --frame-template, e.g. img_{{:05d}}.jpg")


def read_flip_pairs(path: Path, class_names: list[str]) -> list[tuple[str, str]]:
    """Class-name pairs a horizontal flip swaps, from ``--flip-map FILE``.

    The file is a JSON list of pairs (``[["turn left", "turn right"], ...]``) or a two-column
    CSV (``turn left,turn right`` a line; quote names that hold a comma).

    Raises:
        DataError: unreadable file, a line that is not a pair, an unknown class name, a class
            paired with itself or in two pairs.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"--flip-map {path} does not exist; give a file of class-name pairs")
    if path.suffix.lower() == ".json":
        rows = load_json(path, hint="fix the flip map")
        if not isinstance(rows, list):
            raise DataError(f"--flip-map {path} is not a JSON list of [name, name] pairs")
    else:
        rows = [row for row in csv.reader(io.StringIO(read_text(path))) if any(cell.strip() for cell in row)]
    known = set(class_names)
    pairs: list[tuple[str, str]] = []
    used: set[str] = set()
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, list) or len(row) != 2:
            raise DataError(f"--flip-map {path} entry {number} is not a pair of class names (got {row!r})")
        a, b = (str(name).strip() for name in row)
        for name in (a, b):
            if name not in known:
                raise DataError(f"--flip-map {path} entry {number}: {name!r} is not one of the dataset's classes")
        if a == b or {a, b} & used:
            twice = a if a == b or a in used else b
            raise DataError(f"--flip-map {path} entry {number}: {twice!r} is paired again or with itself; each class "
                            f"may be in one pair only, with another class")
        used |= {a, b}
        pairs.append((a, b))
    return pairs
