"""mmaction2's annotation lists, as used for Kinetics, UCF101, HMDB51 and most video codebases.

Two formats, one line per clip, fields separated by white space, paths relative to
``--media-root``::

    video list:  some/path/clip.mp4 3                 (path label)
    frame list:  some/path/clip_frames 120 3          (frame_dir total_frames label)

Labels are integer indices; ``--labels FILE`` gives their names (one a line, a JSON list,
or a JSON ``{name: index}``), otherwise the classes are named ``"0"``, ``"1"``, ... up to
the largest index. Which format a list is, is read off its lines and reported.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ...exceptions import DataError
from ._release import Entry, Release, require_dir
from ._text import parse_index, read_label_names, read_text
from ._user import is_video, read_flip_pairs, resolve_frame_naming

LAYOUTS = {"video": "path label", "frames": "frame_dir total_frames label"}
KIND_NAMES = {"video": "video list", "frames": "frame list"}


@dataclass(frozen=True)
class ListLine:
    """One parsed line: its number, the media path (relative, normalised) and the fields."""

    number: int
    path: str
    label: int
    frames: int | None


def read_lists(
    *,
    train: Path,
    val: Path,
    test: Path | None = None,
    media_root: Path,
    labels: Path | None = None,
    frame_template: str | None = None,
    start_index: int | None = None,
    flip_map: Path | None = None,
) -> Release:
    """Read mmaction2 video or frame lists into a :class:`Release` (``user_data``: leaks are errors).

    Raises:
        DataError: a missing list, a line with a missing field, a non-integer label or frame
            count, an unknown label index, a path outside ``media_root``, lists of two formats.
    """
    media_root = require_dir(Path(media_root), "--media-root")
    lists = {"train": Path(train), "val": Path(val)} | ({"test": Path(test)} if test is not None else {})
    parsed = {split: parse_list(path, option=f"--{split}", media_root=media_root) for split, path in lists.items()}
    formats = {split: fmt for split, (fmt, _) in parsed.items()}
    odd = [split for split, fmt in formats.items() if fmt != formats["train"]]
    if odd:
        a, b = "train", odd[0]
        raise DataError(f"--{a} {lists[a]} is a {KIND_NAMES[formats[a]]} but --{b} {lists[b]} is a {KIND_NAMES[formats[b]]}; "
                        "all lists of a dataset must be one format")
    media = formats["train"]
    names = _class_names(parsed, lists, labels)
    notes = [f"--{split} {lists[split]}: {KIND_NAMES[fmt]} ({LAYOUTS[fmt]}), {len(parsed[split][1])} clips"
             for split, fmt in formats.items()]
    template = start = None
    if media == "frames":
        folders = [media_root / line.path for line in parsed["train"][1]]
        template, start, note = resolve_frame_naming(folders, template=frame_template, start_index=start_index)
        notes.append(note)
    splits = {split: [Entry(id=line.path, path=line.path, label=names[line.label], listed_frames=line.frames)
                      for line in lines] for split, (_, lines) in parsed.items()}
    return Release(
        name="list", root=media_root, media_root=media_root, media=media, class_names=names, splits=splits,
        frame_template=template, start_index=start if start is not None else 1, default_label_order="file",
        info={"name": media_root.resolve().name, "layout": KIND_NAMES[media],
              "labels": str(Path(labels).resolve()) if labels else None,
              "lists": {split: str(path.resolve()) for split, path in lists.items()}},
        sources={"classes": Path(labels) if labels else lists["train"], **lists}, user_data=True,
        flip_pairs=read_flip_pairs(flip_map, names) if flip_map else [], notes=notes,
    )


def _class_names(parsed: dict[str, tuple[str, list[ListLine]]], lists: dict[str, Path], labels: Path | None) -> list[str]:
    """The label file's names, or ``"0".."K-1"``; every index used must name one of them."""
    names = read_label_names(Path(labels)) if labels is not None else None
    largest = max(line.label for _, lines in parsed.values() for line in lines)
    if names is None:
        return [str(i) for i in range(largest + 1)]
    for split, (_, lines) in parsed.items():
        for line in lines:
            if line.label >= len(names):
                raise DataError(f"{lists[split]} line {line.number}: unknown label index {line.label} "
                                f"(--labels {labels} names {len(names)} classes, 0..{len(names) - 1})")
    return names


def parse_list(path: Path, *, option: str, media_root: Path) -> tuple[str, list[ListLine]]:
    """``(format, lines)`` of one list file; the format is ``"video"`` or ``"frames"``.

    Raises:
        DataError: one line naming the file, the line number and what is wrong with it.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{option} list {path} does not exist; give the list file's path")
    fmt, first, lines = None, 0, []
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path} line {number}"
        kind = {2: "video", 3: "frames"}.get(len(fields))
        if kind is None:
            raise DataError(f"{where} has {len(fields)} field(s) ({line.strip()[:80]!r}); expected "
                            f"'{LAYOUTS['video']}' (videos) or '{LAYOUTS['frames']}' (frame folders)")
        if kind == "frames" and is_video(Path(fields[0])):
            raise DataError(f"{where}: {fields[0]} is a video with two numbers after it; one label per clip "
                            f"('{LAYOUTS['video']}'), multi-label lines are not supported")
        if fmt is None:
            fmt, first = kind, number
        elif kind != fmt:
            raise DataError(f"{where} has {len(fields)} fields but line {first} has {len(LAYOUTS[fmt].split())}: "
                            f"a list is either '{LAYOUTS['video']}' or '{LAYOUTS['frames']}' throughout")
        label = parse_index(fields[-1], where=where)
        if label < 0:
            raise DataError(f"{where}: label index {label} is negative; labels are 0, 1, 2, ...")
        frames = _frame_count(fields[1], where) if kind == "frames" else None
        lines.append(ListLine(number=number, path=inside(fields[0], media_root, where), label=label, frames=frames))
    if fmt is None:
        raise DataError(f"{option} list {path} lists no clips")
    if fmt == "video" and (media_root / lines[0].path).is_dir():
        raise DataError(f"{path} line {lines[0].number}: {lines[0].path} is a folder, but two-field lines are a video "
                        f"list ('{LAYOUTS['video']}'); a frame list needs '{LAYOUTS['frames']}'")
    return fmt, lines


def _frame_count(text: str, where: str) -> int:
    try:
        count = parse_index(text, where=where)
    except DataError:
        count = 0
    if count < 1:
        raise DataError(f"{where}: total_frames {text!r} is not a positive integer ('{LAYOUTS['frames']}')")
    return count


def inside(raw: str, media_root: Path, where: str) -> str:
    """``raw`` as a normalised path relative to ``media_root`` (an absolute path inside it is fine).

    The check is on the written path, not on where symlinks lead: a media tree of symlinks
    into a shared store is common and fine.

    Raises:
        DataError: the path leaves ``media_root`` (``..``, or absolute elsewhere).
    """
    base = os.path.abspath(media_root)
    rel = os.path.relpath(os.path.normpath(os.path.join(base, raw)), base)
    if rel == os.pardir or rel.startswith(os.pardir + os.sep) or rel == os.curdir:
        raise DataError(f"{where}: {raw} is outside --media-root {media_root}; list paths relative to it")
    return Path(rel).as_posix()
