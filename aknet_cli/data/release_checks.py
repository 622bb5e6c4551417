"""One validation pass over a parsed :class:`~aknet_cli.data.formats.Release`, before any media is opened.

Every reader (official, synthetic, a user's folder or lists) goes through it in
:func:`~aknet_cli.data.prepare.prepare_release`, so each kind of wrong annotation is caught
once, by mechanism:

* class names: an empty or repeated name is an error (a repeat silently merges two classes);
* an id listed twice in one split: with the same label the repeat is dropped and reported
  as a skip, with two labels it is an error naming the id, both labels and the file;
* a clip in two splits (by id or by media path): on an official release a warning with the
  count (the release is what it is; the user should know val is optimistic); on a user's own
  data an error, since the user can fix it. A user's video *copied* into two splits (same
  bytes, two names) is an error too: files of equal size in different splits are hashed.
"""

from __future__ import annotations

import hashlib
import posixpath
from dataclasses import dataclass, field

from ..exceptions import DataError
from .formats import Entry, Release
from .formats._text import check_class_names


@dataclass
class CheckedRelease:
    """The splits with in-split repeats removed, what was removed, and the warnings."""

    splits: dict[str, list[Entry]]
    skipped: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    cross_split: int = 0


def check_release(release: Release) -> CheckedRelease:
    """Validate ``release``'s class names and clip listing.

    Returns:
        A :class:`CheckedRelease`; skipped rows have prepare's ``split,id,kind,reason`` keys.

    Raises:
        DataError: an empty or repeated class name, an id with two labels in one split, or
            (user data) a clip in two splits.
    """
    check_class_names(release.class_names, source=release.source("classes"))
    checked = CheckedRelease(splits={})
    for split, entries in release.splits.items():
        checked.splits[split] = _drop_repeats(release, split, entries, checked.skipped)
    _check_cross_split(release, checked)
    if release.user_data and release.media == "video":
        _check_copies(release, checked)
    return checked


def _drop_repeats(release: Release, split: str, entries: list[Entry], skipped: list[dict[str, str]]) -> list[Entry]:
    first: dict[str, Entry] = {}
    kept = []
    for entry in entries:
        seen = first.get(entry.id)
        if seen is None:
            first[entry.id] = entry
            kept.append(entry)
        elif seen.label == entry.label:
            skipped.append({"split": split, "id": entry.id, "kind": "duplicate id",
                            "reason": f"duplicate id: {entry.id} is listed again in {release.source(split)} "
                                      "with the same label; the repeat is ignored"})
        else:
            raise DataError(f"{release.source(split)}: clip {entry.id} is listed twice with two labels "
                            f"({seen.label!r} and {entry.label!r}); keep the right one and re-run")
    return kept


def _clip_key(entry: Entry) -> str:
    return posixpath.normpath(entry.path.replace("\\", "/"))


def _check_cross_split(release: Release, checked: CheckedRelease) -> None:
    owner_by_id: dict[str, str] = {}
    owner_by_path: dict[str, str] = {}
    leaks: list[tuple[Entry, str, str]] = []
    for split, entries in checked.splits.items():
        for entry in entries:
            other = owner_by_id.get(entry.id) or owner_by_path.get(_clip_key(entry))
            if other is not None and other != split:
                leaks.append((entry, other, split))
                continue
            owner_by_id.setdefault(entry.id, split)
            owner_by_path.setdefault(_clip_key(entry), split)
    if not leaks:
        return
    entry, a, b = leaks[0]
    if release.user_data:
        more = f" (and {len(leaks) - 1} more)" if len(leaks) > 1 else ""
        raise DataError(f"clip {entry.path} is in both {a} ({release.source(a)}) and {b} ({release.source(b)}){more}; "
                        "a clip must be in one split only, or val measures memory")
    checked.cross_split = len(leaks)
    noun = "clip is" if len(leaks) == 1 else "clips are"
    checked.warnings.append(f"{len(leaks)} {noun} listed in more than one split (e.g. {entry.id} in {a} and {b}); "
                            f"kept as the release lists them, but accuracy on {b} is optimistic")


def _check_copies(release: Release, checked: CheckedRelease) -> None:
    """Refuse a video whose bytes appear in two splits. Only files sharing a size with a file
    of another split are read, so a normal dataset costs one ``stat`` per clip."""
    by_size: dict[int, list[tuple[str, Entry]]] = {}
    for split, entries in checked.splits.items():
        for entry in entries:
            try:
                size = (release.media_root / entry.path).stat().st_size
            except OSError:
                continue  # missing: prepare skips it with its reason
            if size:  # zero-byte files are all "equal"; prepare skips them as zero-byte
                by_size.setdefault(size, []).append((split, entry))
    for group in by_size.values():
        if len({split for split, _ in group}) < 2:
            continue
        first: dict[str, tuple[str, Entry]] = {}
        for split, entry in group:
            digest = _sha256(release.media_root / entry.path)
            seen = first.setdefault(digest, (split, entry))
            if seen[0] != split:
                raise DataError(f"{seen[1].path} ({seen[0]}) and {entry.path} ({split}) are the same video; "
                                "a clip must be in one split only, or val measures memory: remove one copy")


def _sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
