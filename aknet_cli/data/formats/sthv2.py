"""Something-Something V2: WebM videos and JSON annotations.

Official layout (``--root``)::

    something-something-v2-labels.json       {"<class name>": "<index>", ...}
    something-something-v2-train.json        [{"id", "label", "template", "placeholders"}, ...]
    something-something-v2-validation.json   same records
    something-something-v2-test.json         [{"id"}, ...]   (no labels)
    <id>.webm                                or under a subfolder given by ``videos_dir``

A record's class is its ``template`` with the ``[...]`` brackets removed, e.g.
``"Putting [something] onto [something]"`` -> ``"Putting something onto something"``; that
is the key in the labels file.
"""

from __future__ import annotations

import re
from pathlib import Path

from ...exceptions import DataError
from ._release import Entry, Release, require_dir, require_file
from ._text import index_map_names, load_json

LABELS = "something-something-v2-labels.json"
SPLIT_FILES = {
    "train": "something-something-v2-train.json",
    "val": "something-something-v2-validation.json",
    "test": "something-something-v2-test.json",
}
VIDEO_EXTENSION = ".webm"


def template_to_class(template: str) -> str:
    """``"Moving [something] up"`` -> ``"Moving something up"``."""
    return re.sub(r"\[([^\]]*)\]", r"\1", template).strip()


def read_class_names(path: Path) -> list[str]:
    """Class names ordered by the index the labels file gives them (integers, 0..N-1)."""
    mapping = load_json(path)
    if not isinstance(mapping, dict) or not mapping:
        raise DataError(f"{path} is not a JSON object of class name -> index; re-download it")
    return index_map_names(mapping, path=path)


def read_split(path: Path, *, labelled: bool, extension: str) -> list[Entry]:
    records = load_json(path)
    if not isinstance(records, list):
        raise DataError(f"{path} is not a JSON list of records; re-download it")
    entries = []
    for number, record in enumerate(records):
        if not isinstance(record, dict) or "id" not in record or (labelled and "template" not in record):
            need = "'id' and 'template'" if labelled else "'id'"
            raise DataError(f"{path} record {number} lacks {need}; re-download the annotation file")
        vid = str(record["id"])
        label = template_to_class(str(record["template"])) if "template" in record else None
        entries.append(Entry(id=vid, path=vid + extension, label=label))
    return entries


def read_sthv2(root: Path, *, videos_dir: str | Path | None = None, extension: str = VIDEO_EXTENSION) -> Release:
    """Read the official Something-Something V2 annotations under ``root``.

    Args:
        root: folder holding the four JSON files.
        videos_dir: folder of the ``<id>.webm`` files, relative to ``root`` or absolute;
            default ``root`` (e.g. ``20bn-something-something-v2`` if extracted there).
        extension: video file extension (``.webm`` officially; ``.mp4`` for re-encodes).
    """
    root = Path(root)
    require_dir(root, "--root")
    names = read_class_names(require_file(root / LABELS, "class names"))
    splits = {}
    sources = {"classes": root / LABELS}
    for split, fname in SPLIT_FILES.items():
        path = root / fname
        if split == "test" and not path.exists():
            continue  # the test list is optional: officially unlabelled (synth-sth's carries templates)
        splits[split] = read_split(require_file(path, f"{split} split"), labelled=split != "test", extension=extension)
        sources[split] = path
    media_root = require_dir(root / videos_dir if videos_dir else root, "videos")
    return Release(
        name="sthv2", root=root, media_root=media_root, media="video", class_names=names, splits=splits,
        default_label_order="sorted", sources=sources,
    )
