"""What every reader returns: a :class:`Release` listing its clips.

Readers only parse annotation files (or list folders); they never open media. Validating the
listing, counting frames, resolving labels and deciding what to skip happens once, in
:mod:`aknet_cli.data.prepare`, so the official releases, the synthetic dataset and users' own
folders and lists share one code path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ...exceptions import DataError


@dataclass(frozen=True)
class Entry:
    """One clip listed by an annotation file.

    Attributes:
        id: the release's identifier (Sth-Sth ``id``, Diving48 ``vid_name``).
        path: the media path relative to :attr:`Release.media_root` (a frame folder or a
            video file).
        label: the class *name*, or ``None`` for unlabelled test clips. A name absent from
            :attr:`Release.class_names` is skipped as an unknown label.
        extra: columns copied verbatim into the split list (e.g. Diving48 ``start_frame``).
        listed_frames: the frame count the annotation claims (mmaction2 frame lists), or
            ``None``; prepare counts the frames itself and reports a disagreement.
        problem: why the annotation itself makes the clip unusable (a Diving48 record whose
            ``start_frame`` is after its ``end_frame``), or ``None``; prepare skips it with
            this reason.
    """

    id: str
    path: str
    label: str | None
    extra: tuple[tuple[str, Any], ...] = ()
    listed_frames: int | None = None
    problem: str | None = None


@dataclass
class Release:
    """An official release as read from its annotation files.

    Attributes:
        name: reader name (``sthv1``, ``sthv2``, ``diving48``).
        root: the folder given with ``--root`` (annotations live here).
        media_root: the folder the entries' ``path`` are relative to.
        media: ``"frames"`` (JPEG folders) or ``"video"`` (one file per clip).
        class_names: class names in the release's own file order.
        splits: ``{split: [Entry, ...]}`` in annotation-file order; split names are
            ``train``, ``val`` and, where the release has one, ``test``.
        frame_template: file-name template of a frame (frames only), e.g. ``{:05d}.jpg``.
        start_index: number of the first frame file (frames only).
        default_label_order: ``"sorted"`` (TSM/TDN on Sth-Sth) or ``"file"``.
        info: extra manifest keys (e.g. the synthetic generator's parameters).
        reversed_pairs: class-name pairs whose clips are time-reversals of each other
            (synth-sth); empty for the real releases.
        sources: the file each part was read from (``"classes"`` and each split name), so a
            problem found later names the right file; missing keys fall back to ``root``.
        user_data: a user's own folder or lists rather than an official release: a clip in
            two splits, or a class left without a usable clip, is then an error, not a warning.
        flip_pairs: class-name pairs a horizontal flip swaps; ``None`` derives them from the
            names (``left``/``right``, as on Sth-Sth).
        raw_folders: more read-only input folders besides ``root`` (e.g. ``--val-root``);
            ``--out`` may be inside none of them.
        notes: how the input was read (a detected list format, frame naming), for the summary.
    """

    name: str
    root: Path
    media_root: Path
    media: Literal["frames", "video"]
    class_names: list[str]
    splits: dict[str, list[Entry]]
    frame_template: str | None = None
    start_index: int = 1
    default_label_order: Literal["file", "sorted"] = "file"
    info: dict[str, Any] = field(default_factory=dict)
    reversed_pairs: list[tuple[str, str]] = field(default_factory=list)
    sources: dict[str, Path] = field(default_factory=dict)
    user_data: bool = False
    flip_pairs: list[tuple[str, str]] | None = None
    raw_folders: tuple[Path, ...] = ()
    notes: list[str] = field(default_factory=list)

    def source(self, part: str) -> Path:
        """The file ``part`` (``"classes"`` or a split name) was read from."""
        return self.sources.get(part, self.root)


def require_file(path: Path, what: str) -> Path:
    """Return ``path`` if it is a file, else raise one clear :class:`DataError`."""
    if not path.is_file():
        raise DataError(
            f"missing annotation file {path} ({what}); point --root at the folder holding the official release files"
        )
    return path


def require_dir(path: Path, what: str) -> Path:
    """Return ``path`` if it is a folder, else raise one clear :class:`DataError`."""
    if path.exists() and not path.is_dir():
        if what.startswith("--"):
            raise DataError(f"{what} {path} is a file, not a folder; point {what} at the folder holding the release")
        raise DataError(f"{what} folder {path} is a file, not a folder; check the media-folder option")
    if not path.is_dir():
        raise DataError(f"{what} folder {path} does not exist; check --root and the media-folder option")
    return path
