"""Diving48 (V2, corrected annotations): MP4 clips and JSON annotations.

Official layout (``--root``)::

    Diving48_vocab.json       [["Back", "15som", "05Twis", "FREE"], ...]   (48 entries)
    Diving48_V2_train.json    [{"vid_name", "label", "start_frame", "end_frame"}, ...]
    Diving48_V2_test.json     same records (used as the validation split, as in the paper)
    rgb/<vid_name>.mp4

A class name is its four vocabulary words joined by spaces; ``label`` indexes the vocab.
"""

from __future__ import annotations

from pathlib import Path

from ...exceptions import DataError
from ._release import Entry, Release, require_dir, require_file
from ._text import load_json, parse_index

VOCAB = "Diving48_vocab.json"
SPLIT_FILES = {"train": "Diving48_V2_train.json", "val": "Diving48_V2_test.json"}
#: Not in the official release (whose test list serves as val): synth-sth's held-out split.
HELDOUT_FILE = "Diving48_V2_heldout.json"
VIDEO_EXTENSION = ".mp4"


def read_class_names(path: Path) -> list[str]:
    vocab = load_json(path)
    if not isinstance(vocab, list) or not vocab or not all(isinstance(v, list) for v in vocab):
        raise DataError(f"{path} is not a list of 4-word class descriptions; re-download it")
    return [" ".join(str(word) for word in words if str(word)) for words in vocab]


def read_split(path: Path, *, class_names: list[str], extension: str) -> list[Entry]:
    records = load_json(path)
    if not isinstance(records, list):
        raise DataError(f"{path} is not a JSON list of records; re-download it")
    entries = []
    for number, record in enumerate(records):
        if not isinstance(record, dict) or "vid_name" not in record or "label" not in record:
            raise DataError(f"{path} record {number} lacks 'vid_name' or 'label'; re-download the annotation file")
        # Some re-exports write the index as a string ("0"); a float would be truncated, so it is refused.
        raw = parse_index(record["label"], where=f"{path} record {number}")
        # An out-of-range index keeps its number as the "name": prepare skips it as unknown.
        label = class_names[raw] if 0 <= raw < len(class_names) else str(raw)
        start, end = record.get("start_frame", -1), record.get("end_frame", -1)
        extra = (("start_frame", start), ("end_frame", end))
        name = str(record["vid_name"])
        ordered = not (isinstance(start, int) and isinstance(end, int) and 0 <= end < start)
        problem = None if ordered else f"start_frame {start} after end_frame {end} in {path.name}"
        entries.append(Entry(id=name, path=name + extension, label=label, extra=extra, problem=problem))
    return entries


def read_diving48(root: Path, *, videos_dir: str | Path = "rgb") -> Release:
    """Read the official Diving48 V2 annotations under ``root``.

    Args:
        root: folder holding ``Diving48_vocab.json`` and the V2 split files.
        videos_dir: folder of the ``<vid_name>.mp4`` clips, relative to ``root`` or absolute.
    """
    root = Path(root)
    require_dir(root, "--root")
    names = read_class_names(require_file(root / VOCAB, "class vocabulary"))
    splits = {
        split: read_split(require_file(root / fname, f"{split} split"), class_names=names, extension=VIDEO_EXTENSION)
        for split, fname in SPLIT_FILES.items()
    }
    media_root = require_dir(root / videos_dir, "videos")
    sources = {"classes": root / VOCAB} | {split: root / fname for split, fname in SPLIT_FILES.items()}
    if (root / HELDOUT_FILE).is_file():
        splits["test"] = read_split(root / HELDOUT_FILE, class_names=names, extension=VIDEO_EXTENSION)
        sources["test"] = root / HELDOUT_FILE
    return Release(
        name="diving48", root=root, media_root=media_root, media="video", class_names=names, splits=splits,
        default_label_order="file", sources=sources,
    )
