"""Something-Something V1: JPEG frame folders and ``;``-separated CSV annotations.

Official layout (``--root``)::

    something-something-v1-labels.csv       one class name a line (174 lines)
    something-something-v1-train.csv        "<id>;<class name>" lines
    something-something-v1-validation.csv   "<id>;<class name>" lines
    <id>/00001.jpg 00002.jpg ...             or under a subfolder given by ``frames_dir``
"""

from __future__ import annotations

from pathlib import Path

from ...exceptions import DataError
from ._release import Entry, Release, require_dir, require_file
from ._text import read_text, text_names

LABELS = "something-something-v1-labels.csv"
SPLIT_FILES = {"train": "something-something-v1-train.csv", "val": "something-something-v1-validation.csv"}
#: Optional: the official test list holds ids only (unlabelled); synth-sth's holds "id;label".
TEST_FILE = "something-something-v1-test.csv"
FRAME_TEMPLATE = "{:05d}.jpg"
START_INDEX = 1


def read_class_names(path: Path) -> list[str]:
    """One class name a line; trailing blank lines are ignored (names are checked in prepare)."""
    names = text_names(path, hint="re-download the labels file")
    if not names:
        raise DataError(f"{path} lists no class names; re-download the labels file")
    return names


def read_split(path: Path, *, labelled: bool = True) -> list[Entry]:
    """Parse ``id;label`` lines (no header; blank lines ignored); with ``labelled=False`` (the
    test list) a line may be a bare ``id``, an unlabelled clip.

    Raises:
        DataError: a line without exactly one ``;`` (e.g. a comma-separated list) or with an
            empty id or label, naming the file and the line.
    """
    lines = read_text(path, hint="re-save it as UTF-8 or re-download the annotation file").splitlines()
    entries = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split(";")
        if not labelled and len(fields) == 1 and fields[0].strip():
            entries.append(Entry(id=fields[0].strip(), path=fields[0].strip(), label=None))
            continue
        if len(fields) != 2 or not fields[0].strip() or not fields[1].strip():
            raise DataError(f"{path} line {number} is not of the form 'id;label' (got {line.strip()[:80]!r}); "
                            "re-download the annotation file")
        vid, label = fields[0].strip(), fields[1].strip()
        entries.append(Entry(id=vid, path=vid, label=label))
    return entries


def read_sthv1(root: Path, *, frames_dir: str | Path | None = None) -> Release:
    """Read the official Something-Something V1 annotations under ``root``.

    Args:
        root: folder holding the three CSV files.
        frames_dir: folder of the per-clip frame folders, relative to ``root`` or absolute;
            default ``root`` itself (e.g. ``20bn-something-something-v1`` if extracted there).
    """
    root = Path(root)
    require_dir(root, "--root")
    names = read_class_names(require_file(root / LABELS, "class names"))
    splits = {split: read_split(require_file(root / fname, f"{split} split")) for split, fname in SPLIT_FILES.items()}
    sources = {"classes": root / LABELS} | {split: root / fname for split, fname in SPLIT_FILES.items()}
    if (root / TEST_FILE).is_file():
        splits["test"], sources["test"] = read_split(root / TEST_FILE, labelled=False), root / TEST_FILE
    media_root = require_dir(root / frames_dir if frames_dir else root, "frames")
    return Release(
        name="sthv1", root=root, media_root=media_root, media="frames", class_names=names, splits=splits,
        frame_template=FRAME_TEMPLATE, start_index=START_INDEX, default_label_order="sorted", sources=sources,
    )
