"""A user's own clips, one sub-folder per class (torchvision's ``ImageFolder`` habit, for videos).

Layout (``--root``)::

    ROOT/
      brushing_teeth/clip001.mp4 clip002.mp4 ...      video files, or
      cutting_bread/clip007/img_00001.jpg ...         one frame folder per clip

Classes are the sub-folder names, sorted (``sorted()``, as ``ImageFolder`` does); hidden
entries (``.DS_Store``, ``.git``) are ignored. Without ``--val-root`` the clips are split
into train/val per class (stratified), reproducibly for a seed; with it, ``--val-root`` has
the same layout and holds the val clips.
"""

from __future__ import annotations

import math
import os
import zlib
from pathlib import Path

from ...exceptions import ConfigError, DataError
from ._release import Entry, Release, require_dir
from ._user import VIDEO_SUFFIXES, is_video, read_flip_pairs, resolve_frame_naming

DEFAULT_VAL_FRACTION = 0.2

#: ``{class name: sorted clip paths}`` of one root.
Classes = dict[str, list[Path]]


def read_folder(
    root: Path,
    *,
    val_root: Path | None = None,
    val_fraction: float | None = None,
    seed: int = 0,
    frame_template: str | None = None,
    start_index: int | None = None,
    flip_map: Path | None = None,
) -> Release:
    """Read a class-per-folder tree into a :class:`Release` (``user_data``: leaks are errors).

    Args:
        root: folder of class sub-folders.
        val_root: a second tree of the same classes holding the val clips; exclusive with
            ``val_fraction``.
        val_fraction: share of each class's clips that go to val (default 0.2).
        seed: seed of the split.
        frame_template, start_index: frame-file naming of frame folders (default: inferred).
        flip_map: a file of class-name pairs that a horizontal flip swaps (default: none).

    Raises:
        ConfigError: both ``val_root`` and ``val_fraction``, or a fraction outside (0, 1).
        DataError: no class sub-folders, an empty class folder, videos mixed with frame
            folders, a val class that ``root`` lacks.
    """
    if val_root is not None and val_fraction is not None:
        raise ConfigError("give --val-fraction or --val-root, not both")
    fraction = DEFAULT_VAL_FRACTION if val_fraction is None else val_fraction
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"--val-fraction must be between 0 and 1 (exclusive), got {fraction}")
    root = require_dir(Path(root), "--root")
    media, train_classes = scan_classes(root, "--root")
    names = sorted(train_classes)
    notes: list[str] = []
    if val_root is None:
        splits, single = stratified_split(train_classes, fraction, seed)
        media_root, raw_folders = root, ()
        if single:
            notes.append(f"{len(single)} class(es) have a single clip and are in train only (e.g. {single[0]})")
        notes.append(f"val: {fraction:g} of each class's clips, seed {seed}")
    else:
        val_root = require_dir(Path(val_root), "--val-root")
        val_media, val_classes = scan_classes(val_root, "--val-root")
        if val_media != media:
            raise DataError(f"--root {root} holds {media} clips but --val-root {val_root} holds {val_media}; use one kind")
        unknown = sorted(set(val_classes) - set(train_classes))
        if unknown:
            raise DataError(f"--val-root class folder {val_root / unknown[0]} has no counterpart under --root {root}; "
                            "val classes must be training classes")
        splits = {"train": [(n, c) for n in names for c in train_classes[n]],
                  "val": [(n, c) for n in sorted(val_classes) for c in val_classes[n]]}
        media_root, raw_folders = Path(os.path.commonpath([root.absolute(), val_root.absolute()])), (val_root,)
    template = start = None
    if media == "frames":
        folders = [clip for clips in train_classes.values() for clip in clips]
        template, start, note = resolve_frame_naming(folders, template=frame_template, start_index=start_index)
        notes.append(note)
    entries = {split: [_entry(clip, name, media_root) for name, clip in pairs] for split, pairs in splits.items()}
    return Release(
        name="folder", root=root, media_root=media_root, media=media, class_names=names, splits=entries,
        frame_template=template, start_index=start if start is not None else 1, default_label_order="sorted",
        info={"name": root.resolve().name, "layout": "folder", "val_root": str(val_root.resolve()) if val_root else None,
              "val_fraction": None if val_root else fraction, "seed": None if val_root else seed},
        sources={"classes": root, "train": root, "val": val_root or root}, user_data=True,
        flip_pairs=read_flip_pairs(flip_map, names) if flip_map else [], raw_folders=raw_folders, notes=notes,
    )


def scan_classes(root: Path, option: str) -> tuple[str, Classes]:
    """``(media, {class: clips})`` of a class-per-folder tree; ``media`` is ``video`` or ``frames``.

    Raises:
        DataError: no class folders, an empty class folder, or both kinds of clip.
    """
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        loose = [p.name for p in root.iterdir() if is_video(p)]
        detail = f" ({len(loose)} video files sit directly in it, e.g. {loose[0]})" if loose else ""
        raise DataError(f"{option} {root} has no class sub-folders{detail}; put each class's clips in a "
                        "sub-folder named after the class")
    classes: Classes = {}
    kinds: dict[str, str] = {}
    for folder in class_dirs:
        kind, clips = _class_clips(folder)
        classes[folder.name] = clips
        kinds.setdefault(kind, folder.name)
    if len(kinds) > 1:
        raise DataError(f"{option} {root} mixes classes of video files ({kinds['video']}) and of frame folders "
                        f"({kinds['frames']}); use one kind of clip for the whole dataset")
    return next(iter(kinds)), classes


def _class_clips(folder: Path) -> tuple[str, list[Path]]:
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    videos = [p for p in entries if p.is_file() and is_video(p)]
    frame_dirs = [p for p in entries if p.is_dir()]
    if videos and frame_dirs:
        raise DataError(f"class folder {folder} mixes {len(videos)} video files and {len(frame_dirs)} frame folders; "
                        "use one kind of clip")
    if not videos and not frame_dirs:
        others = [p.name for p in entries]
        detail = f" (only {len(others)} other files, e.g. {others[0]})" if others else ""
        raise DataError(f"class folder {folder} is empty{detail}: it holds no video files ({', '.join(VIDEO_SUFFIXES)}) "
                        "or frame folders; add clips or remove the folder")
    return ("video", videos) if videos else ("frames", frame_dirs)


def stratified_split(classes: Classes, fraction: float, seed: int) -> tuple[dict[str, list[tuple[str, Path]]], list[str]]:
    """Per class, ``round(fraction * n)`` clips (at least 1, at most ``n - 1``) go to val.

    Which ones is drawn from a generator seeded by ``seed`` and the class *name*, so adding a
    class or a clip to another class leaves a class's split as it was.

    Returns:
        ``({"train": [(class, clip)], "val": [...]}, classes with a single clip)``.
    """
    import numpy as np

    splits: dict[str, list[tuple[str, Path]]] = {"train": [], "val": []}
    single = []
    for name in sorted(classes):
        clips = classes[name]
        n = len(clips)
        n_val = 0 if n < 2 else min(n - 1, max(1, math.floor(fraction * n + 0.5)))
        if n < 2:
            single.append(name)
        rng = np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))])
        chosen = set(rng.permutation(n)[:n_val].tolist())
        for i, clip in enumerate(clips):
            splits["val" if i in chosen else "train"].append((name, clip))
    return splits, single


def _entry(clip: Path, label: str, media_root: Path) -> Entry:
    rel = Path(os.path.relpath(clip.absolute(), media_root.absolute())).as_posix()
    return Entry(id=rel, path=rel, label=label)
