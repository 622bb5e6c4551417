"""Turn a :class:`~aknet_cli.data.formats.Release` into a prepared dataset folder.

One code path for every release (and the synthetic one): resolve labels in the chosen
order, count each clip's frames (in parallel, with a progress bar), record every skipped
clip with its reason, then write ``dataset.json``, the split CSVs and ``skipped.csv``
atomically. The raw release is only read.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .. import __version__
from ..exceptions import ConfigError, DataError, VideoDecodeError
from . import atomic
from .formats import Entry, Release
from .manifest import MANIFEST, SPLIT_COLUMNS, flip_map, order_classes
from .video_io import check_backend, count_frame_files, count_video_frames

SKIPPED = "skipped.csv"
KNOWN_SPLITS = ("train", "val", "test")


@dataclass
class PrepareSummary:
    """What ``prepare`` wrote: clips per split, the skipped clips, the output folder."""

    out: Path
    splits: dict[str, int]
    skipped: list[dict[str, str]] = field(default_factory=list)
    num_classes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "splits": self.splits,
            "num_classes": self.num_classes,
            "skipped": len(self.skipped),
            "skipped_reasons": _reason_counts(self.skipped),
        }


def _reason_counts(skipped: list[dict[str, str]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in skipped:
        kind = row["kind"]
        counts[kind] = counts.get(kind, 0) + 1
    return dict(sorted(counts.items()))


def check_output_folder(*, out: Path, root: Path, identity: dict[str, Any], force: bool) -> None:
    """Refuse an ``out`` inside the raw release, or one that holds a different dataset.

    ``out`` may *contain* ``root`` (the synthetic generator writes its raw release under
    ``out/raw``); that entry is not counted as foreign content.

    Raises:
        ConfigError: ``out`` is inside ``root``.
        DataError: ``out`` holds another dataset or unrelated files and ``force`` is off.
    """
    out_r, root_r = out.resolve(), root.resolve()
    if out_r == root_r or out_r.is_relative_to(root_r):
        raise ConfigError(f"--out {out} is inside --root {root}; the raw release is read-only, choose an --out outside it")
    if not out_r.exists() or force:
        return
    if not out_r.is_dir():
        raise DataError(f"--out {out} exists and is not a folder; choose another --out")
    manifest = out_r / MANIFEST
    if manifest.is_file():
        import json

        try:
            old = json.loads(manifest.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            old = {}
        if {k: old.get(k) for k in identity} != identity:
            raise DataError(
                f"{out} already holds a different dataset ({old.get('source_format')} from {old.get('root')}); "
                "use --force to replace it or choose another --out"
            )
        return
    foreign = [p.name for p in out_r.iterdir() if not (root_r == p or root_r.is_relative_to(p))]
    if foreign:
        raise DataError(f"{out} is not empty and holds no {MANIFEST}; use --force to write into it or choose another --out")


def prepare_release(
    release: Release,
    *,
    out: Path,
    label_order: str | None = None,
    workers: int = 4,
    strict: bool = False,
    force: bool = False,
    backend: str = "decord",
    console=None,
) -> PrepareSummary:
    """Write the prepared dataset for ``release`` into ``out``.

    Args:
        release: parsed annotations (from a reader in :mod:`aknet_cli.data.formats`).
        out: output folder; created if needed.
        label_order: ``"file"`` or ``"sorted"``; ``None`` uses the release's default
            (``sorted`` for Sth-Sth as TSM/TDN do, ``file`` for Diving48).
        workers: threads counting frames (I/O and decoder bound).
        strict: raise on the first skipped clip instead of recording it.
        force: replace an ``out`` that holds a different dataset.
        backend: ``decord`` or ``pyav`` for counting video frames.
        console: a Rich console for the progress bar, or ``None`` for no output.

    Returns:
        A :class:`PrepareSummary`.

    Raises:
        DataError: unusable inputs, or a skip under ``strict``.
        ConfigError: bad option values.
    """
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    check_backend(backend)
    out = Path(out)
    label_order = label_order or release.default_label_order
    classes = order_classes(release.class_names, label_order)
    identity = {"source_format": release.name, "root": str(release.root.resolve()), "info": release.info}
    check_output_folder(out=out, root=release.root, identity=identity, force=force)

    label_index = {name: i for i, name in enumerate(classes)}
    skipped: list[dict[str, str]] = []
    jobs: list[tuple[str, Entry]] = []
    for split, entries in release.splits.items():
        for entry in entries:
            if entry.label is not None and entry.label not in label_index:
                skipped.append(_skip(split, entry, "unknown label", f"unknown label {entry.label!r}"))
                if strict:
                    _raise_strict(release, skipped[-1])
            else:
                jobs.append((split, entry))

    counts = _count_all(release, jobs, workers=workers, backend=backend, console=console)
    rows: dict[str, list[dict[str, Any]]] = {split: [] for split in release.splits}
    for (split, entry), result in zip(jobs, counts):
        if isinstance(result, VideoDecodeError):
            skipped.append(_skip(split, entry, _kind(str(result)), str(result)))
            if strict:
                _raise_strict(release, skipped[-1])
            continue
        row = {"id": entry.id, "path": entry.path, "num_frames": result,
               "label": -1 if entry.label is None else label_index[entry.label]}
        row.update(dict(entry.extra))
        rows[split].append(row)
    if not any(rows.values()):
        raise DataError(f"no usable clips under {release.media_root}; see the skip reasons (first: {skipped[0]['reason']})"
                        if skipped else f"the annotation files under {release.root} list no clips")

    splits = {split: len(r) for split, r in rows.items()}
    manifest = {
        "name": release.info.get("name", release.name),
        "source_format": release.name,
        "media": release.media,
        "root": str(release.root.resolve()),
        "media_root": str(release.media_root.resolve()),
        "frame_template": release.frame_template,
        "start_index": release.start_index if release.media == "frames" else None,
        "classes": classes,
        "label_order": label_order,
        "flip_map": {str(k): v for k, v in sorted(flip_map(classes).items())},
        "splits": splits,
        "skipped": len(skipped),
        "info": release.info,
        "aknet_version": __version__,
    }
    out.mkdir(parents=True, exist_ok=True)
    for split, split_rows in rows.items():
        columns = list(SPLIT_COLUMNS) + [k for k in (split_rows[0] if split_rows else {}) if k not in SPLIT_COLUMNS]
        atomic.write_csv(out / f"{split}.csv", pd.DataFrame(split_rows, columns=columns))
    for stale in set(KNOWN_SPLITS) - set(rows):
        (out / f"{stale}.csv").unlink(missing_ok=True)
    atomic.write_csv(out / SKIPPED, pd.DataFrame(skipped, columns=["split", "id", "kind", "reason"]))
    # The manifest goes last: its presence marks a complete dataset.
    atomic.write_json(out / MANIFEST, manifest)
    return PrepareSummary(out=out, splits=splits, skipped=skipped, num_classes=len(classes))


def _skip(split: str, entry: Entry, kind: str, reason: str) -> dict[str, str]:
    return {"split": split, "id": entry.id, "kind": kind, "reason": reason}


def _kind(message: str) -> str:
    """A short category for the summary table, taken from the error's leading words."""
    for kind in ("missing frame folder", "empty frame folder", "frame numbering", "missing video",
                 "zero-byte video", "truncated video", "no decodable video frames"):
        if message.startswith(kind):
            return kind
    return "undecodable video" if "video" in message else "unreadable media"


def _raise_strict(release: Release, row: dict[str, str]) -> None:
    raise DataError(f"--strict: {row['split']} clip {row['id']} ({release.media_root / row['id']}): {row['reason']}")


def _count_one(release: Release, entry: Entry, backend: str) -> int | VideoDecodeError:
    path = release.media_root / entry.path
    try:
        if release.media == "frames":
            return count_frame_files(path, template=release.frame_template, start_index=release.start_index)
        return count_video_frames(path, backend=backend)
    except VideoDecodeError as exc:
        return exc


def _count_all(release: Release, jobs: list[tuple[str, Entry]], *, workers: int, backend: str, console) -> list:
    results: list = [None] * len(jobs)
    with progress_bar(console) as progress, ThreadPoolExecutor(max_workers=workers) as pool:
        task = progress.add_task(f"counting frames ({release.name})", total=len(jobs))
        futures = {pool.submit(_count_one, release, entry, backend): i for i, (_, entry) in enumerate(jobs)}
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            progress.advance(task)
    return results


def progress_bar(console):
    """A Rich progress bar with count, rate and ETA on ``console`` (disabled if ``None``)."""
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task) -> Text:
            return Text(f"{task.speed:,.0f} clips/s" if task.speed else "- clips/s", style="cyan")

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
        console=console, disable=console is None, transient=False,
    )
