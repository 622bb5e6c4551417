"""Turn a :class:`~aknet_cli.data.formats.Release` into a prepared dataset folder.

One code path for every release (official, synthetic, a user's folder or lists): validate
the listing (:mod:`~aknet_cli.data.release_checks`), resolve labels in the chosen
order, count each clip's frames (in a pool of processes, with a progress bar in this one),
record every skipped clip with its reason, then write ``dataset.json``, the split CSVs and
``skipped.csv`` atomically. The raw release is only read.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from .. import __version__
from ..exceptions import ConfigError, DataError, VideoDecodeError
from . import atomic
from .formats import Entry, Release
from .manifest import MANIFEST, SPLIT_COLUMNS, flip_map, order_classes
from .release_checks import check_release
from .video_io import check_backend, count_frame_files, count_video_frames

SKIPPED = "skipped.csv"
SKIPPED_COLUMNS = ("split", "id", "kind", "reason")
KNOWN_SPLITS = ("train", "val", "test")
#: Clips per task sent to a worker process: large enough that start-up and pickling are
#: noise, small enough that the progress bar moves and the pool stays balanced.
MAX_CHUNK = 64
#: Fewer clips than this per process is not worth starting one.
MIN_CHUNK = 4
#: Threads counting inside each process (see _count_chunk).
THREADS_PER_PROCESS = 2
#: The progress bar's label; short, so that the whole bar fits 80 columns.
TASK_DESCRIPTION = "frames {name}"


def default_workers() -> int:
    """The CPUs this process may use (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


@dataclass
class PrepareSummary:
    """What ``prepare`` wrote: clips per split, the skipped clips, the output folder."""

    out: Path
    splits: dict[str, int]
    skipped: list[dict[str, str]] = field(default_factory=list)
    num_classes: int = 0
    #: class names in label order, and clips per class for each split (label order).
    classes: list[str] = field(default_factory=list)
    per_class: dict[str, list[int]] = field(default_factory=dict)
    #: things the user should know that did not stop the run (e.g. clips in two splits).
    warnings: list[str] = field(default_factory=list)
    #: how the input was read (detected list format, frame naming).
    notes: list[str] = field(default_factory=list)
    #: clips an official release lists in more than one split.
    cross_split: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "splits": self.splits,
            "num_classes": self.num_classes,
            "skipped": len(self.skipped),
            "skipped_reasons": _reason_counts(self.skipped),
            "cross_split": self.cross_split,
            "warnings": self.warnings,
            "notes": self.notes,
            "per_class": {split: dict(zip(self.classes, counts)) for split, counts in self.per_class.items()},
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
    ``out/raw``); that entry is not counted as foreign content, and neither is a lone
    ``skipped.csv`` left by an earlier run that found no usable clip.

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
        except (json.JSONDecodeError, UnicodeDecodeError):
            old = {}
        old = old if isinstance(old, dict) else {}
        if {k: old.get(k) for k in identity} != identity:
            raise DataError(
                f"{out} already holds a different dataset ({old.get('source_format')} from {old.get('root')}); "
                "use --force to replace it or choose another --out"
            )
        return
    foreign = [p.name for p in out_r.iterdir() if p.name != SKIPPED and not (root_r == p or root_r.is_relative_to(p))]
    if foreign:
        raise DataError(f"{out} is not empty and holds no {MANIFEST}; use --force to write into it or choose another --out")


def prepare_release(
    release: Release,
    *,
    out: Path,
    label_order: str | None = None,
    workers: int | None = 1,
    strict: bool = False,
    force: bool = False,
    backend: str | None = None,
    console=None,
) -> PrepareSummary:
    """Write the prepared dataset for ``release`` into ``out``.

    Args:
        release: parsed annotations (from a reader in :mod:`aknet_cli.data.formats`).
        out: output folder; created if needed.
        label_order: ``"file"`` or ``"sorted"``; ``None`` uses the release's default
            (``sorted`` for Sth-Sth as TSM/TDN do, ``file`` for Diving48).
        workers: processes counting video frames (decoding is CPU bound); ``None`` uses
            every CPU this process may use (the CLI's default). Frame folders and small
            releases are counted in this process. With more than one, a calling script needs
            the ``if __name__ == "__main__":`` guard (the workers are spawned).
        strict: raise on the first skipped clip instead of recording it.
        force: replace an ``out`` that holds a different dataset.
        backend: ``torchcodec``, ``decord`` or ``pyav`` for counting video frames; ``None``
            for :func:`~aknet_cli.data.video_io.default_backend`.
        console: a Rich console for the progress bar, or ``None`` for no output.

    Returns:
        A :class:`PrepareSummary`.

    Raises:
        DataError: unusable inputs (wrong annotations, no usable clip at all; on user data a
            class left without a usable clip or an empty train/val split), or a skip under
            ``strict``.
        ConfigError: bad option values.
    """
    workers = default_workers() if workers is None else workers
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    backend = check_backend(backend)
    out = Path(out)
    label_order = label_order or release.default_label_order
    classes = order_classes(release.class_names, label_order)
    checked = check_release(release)  # before anything is written or decoded
    identity = {"source_format": release.name, "root": str(release.root.resolve()), "info": release.info}
    for folder in release.raw_folders:
        check_output_folder(out=out, root=folder, identity=identity, force=force)
    check_output_folder(out=out, root=release.root, identity=identity, force=force)

    label_index = {name: i for i, name in enumerate(classes)}
    skipped = list(checked.skipped)
    if strict and skipped:  # a repeated listing is a skip like any other
        raise DataError(f"--strict: {skipped[0]['split']} clip {skipped[0]['id']}: {skipped[0]['reason']}")
    jobs: list[tuple[str, Entry]] = []
    for split, entries in checked.splits.items():
        for entry in entries:
            if entry.problem is not None:
                skipped.append(_skip(split, entry, "bad annotation", entry.problem))
                if strict:
                    _raise_strict(release, skipped[-1], entry)
            elif entry.label is not None and entry.label not in label_index:
                skipped.append(_skip(split, entry, "unknown label", f"unknown label {entry.label!r}"))
                if strict:
                    _raise_strict(release, skipped[-1], entry)
            else:
                jobs.append((split, entry))

    def on_error(i: int, error: VideoDecodeError) -> None:
        if strict:
            split, entry = jobs[i]
            _raise_strict(release, _skip(split, entry, _kind(str(error)), str(error)), entry)

    counts = count_all(release, [entry for _, entry in jobs], workers=workers, backend=backend, console=console,
                       on_error=on_error)
    rows, mismatched = _split_rows(release, jobs, counts, label_index, skipped)
    if not any(rows.values()):
        if not skipped:
            raise DataError(f"the annotation files under {release.root} list no clips")
        raise DataError(_no_usable_clips(release, out, skipped))
    if release.user_data:
        _check_user_splits(release, out, classes, jobs, rows, skipped)
    warnings = list(checked.warnings) + _empty_split_warnings(release, rows, skipped)
    if mismatched:
        warnings.append(f"{len(mismatched)} frame folder(s) hold another number of frames than their list says "
                        f"(e.g. {mismatched[0]}); the counted number is used")
    manifest = _manifest(release, classes, label_order, rows, skipped)
    _write_dataset(out, rows, skipped, manifest)
    return PrepareSummary(out=out, splits=manifest["splits"], skipped=skipped, num_classes=len(classes),
                          classes=classes, per_class=_per_class(rows, len(classes)), warnings=warnings,
                          notes=list(release.notes), cross_split=checked.cross_split)


def _split_rows(release: Release, jobs: list[tuple[str, Entry]], counts: list, label_index: dict[str, int],
                skipped: list[dict[str, str]]) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """The split CSV rows of the counted clips (failures appended to ``skipped``), and the
    clips whose counted frames differ from the number their annotation lists."""
    rows: dict[str, list[dict[str, Any]]] = {split: [] for split in release.splits}
    mismatched = []
    for (split, entry), result in zip(jobs, counts):
        if isinstance(result, VideoDecodeError):
            skipped.append(_skip(split, entry, _kind(str(result)), str(result)))
            continue
        if entry.listed_frames is not None and entry.listed_frames != result:
            mismatched.append(f"{entry.path}: listed {entry.listed_frames}, counted {result}")
        row = {"id": entry.id, "path": entry.path, "num_frames": result,
               "label": -1 if entry.label is None else label_index[entry.label]}
        row.update(dict(entry.extra))
        rows[split].append(row)
    return rows, mismatched


def _check_user_splits(release: Release, out: Path, classes: list[str], jobs: list[tuple[str, Entry]],
                       rows: dict[str, list[dict[str, Any]]], skipped: list[dict[str, str]]) -> None:
    """A user's own data must be trainable as prepared: every class that has clips keeps at
    least one, in train (a split made before counting can leave a class's only readable clip
    in val), and train and val are not empty.

    Raises:
        DataError: naming the class (or split) and the most common skip reason.
    """
    listed = {entry.label for _, entry in jobs}
    kept = {classes[row["label"]] for split_rows in rows.values() for row in split_rows if row["label"] >= 0}
    for name in sorted(listed - kept - {None}):
        reasons = [r["reason"] for r in skipped if r["id"] in {e.id for _, e in jobs if e.label == name}]
        where = _write_reasons(out, skipped)
        raise DataError(f"class {name!r} has no readable clip ({len(reasons)} skipped, e.g. {reasons[0]}); "
                        f"fix or remove its clips; {where}")
    trained = {classes[row["label"]] for row in rows.get("train", []) if row["label"] >= 0}
    for name in sorted(kept - trained):
        ids = {e.id for split, e in jobs if split == "train" and e.label == name}
        lost = [r["reason"] for r in skipped if r["split"] == "train" and r["id"] in ids]
        why = f"{len(lost)} skipped, e.g. {lost[0]}" if lost else "none was listed"
        raise DataError(f"class {name!r} has no readable training clip ({why}), so no model could learn it; add "
                        f"or fix its training clips; {_write_reasons(out, skipped)}")
    for split in ("train", "val"):
        if split in rows and not rows[split]:
            raise DataError(f"the {split} split has no usable clip ({release.source(split)}); "
                            f"{_write_reasons(out, skipped)}")


def _empty_split_warnings(release: Release, rows: dict[str, list[dict[str, Any]]],
                          skipped: list[dict[str, str]]) -> list[str]:
    """An official release whose train or val split comes out empty is still written (its other
    splits may be all the user wants), but ``aknet train`` refuses it: said now, in the summary,
    rather than at the start of a training run. (A user's own data is refused instead.)"""
    found = []
    for split, why_needed in (("train", "no model can be trained on this dataset"),
                              ("val", "`aknet train` selects best.pt on val and refuses a dataset without it")):
        if split not in rows or rows[split]:
            continue
        lost = sum(1 for row in skipped if row["split"] == split)
        why = (f"all {lost} of its clips were skipped (reasons in skipped.csv)" if lost
               else f"{release.source(split)} lists no clips")
        found.append(f"the {split} split is empty: {why}; {why_needed}")
    return found


def _per_class(rows: dict[str, list[dict[str, Any]]], num_classes: int) -> dict[str, list[int]]:
    counts = {}
    for split, split_rows in rows.items():
        counts[split] = [0] * num_classes
        for row in split_rows:
            if row["label"] >= 0:
                counts[split][row["label"]] += 1
    return counts


#: What each split is for. Training selects ``best.pt`` on ``val``; a labelled ``test`` split
#: is held out: numbers reported on it were selected on nothing.
SPLIT_ROLES = {
    "train": "training",
    "val": "model selection: best.pt is the epoch with the best val top-1",
    "test": "held out: reported numbers only, never used for selection",
}


def split_roles(rows: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    """``dataset.json``'s ``split_roles``; an unlabelled test split is for predictions only."""
    roles = {split: SPLIT_ROLES.get(split, "") for split in rows}
    if "test" in rows and rows["test"] and all(r["label"] == -1 for r in rows["test"]):
        roles["test"] = "unlabelled: predictions only"
    return roles


def _manifest(release: Release, classes: list[str], label_order: str, rows: dict[str, list[dict[str, Any]]],
              skipped: list[dict[str, str]]) -> dict[str, Any]:
    known = set(classes)
    for pair in release.reversed_pairs:  # a bug in a generator, not a user mistake
        assert len(pair) == 2 and set(pair) <= known, f"reversed pair {pair} names an unknown class"
    if release.flip_pairs is None:
        flips = flip_map(classes)
    else:  # pairs the user gave, by name (the reader checked the names)
        index = {name: i for i, name in enumerate(classes)}
        flips = {index[a]: index[b] for pair in release.flip_pairs for a, b in (pair, pair[::-1])}
    return {
        "name": release.info.get("name", release.name),
        "source_format": release.name,
        "media": release.media,
        "root": str(release.root.resolve()),
        "media_root": str(release.media_root.resolve()),
        "frame_template": release.frame_template,
        "start_index": release.start_index if release.media == "frames" else None,
        "classes": classes,
        "label_order": label_order,
        "flip_map": {str(k): v for k, v in sorted(flips.items())},
        "reversed_pairs": [list(pair) for pair in release.reversed_pairs],
        "splits": {split: len(r) for split, r in rows.items()},
        "split_roles": split_roles(rows),
        "skipped": len(skipped),
        "info": release.info,
        "aknet_version": __version__,
    }


def _write_dataset(out: Path, rows: dict[str, list[dict[str, Any]]], skipped: list[dict[str, str]],
                   manifest: dict[str, Any]) -> None:
    import pandas as pd

    out.mkdir(parents=True, exist_ok=True)
    for split, split_rows in rows.items():
        columns = list(SPLIT_COLUMNS) + [k for k in (split_rows[0] if split_rows else {}) if k not in SPLIT_COLUMNS]
        atomic.write_csv(out / f"{split}.csv", pd.DataFrame(split_rows, columns=columns))
    for stale in set(KNOWN_SPLITS) - set(rows):
        (out / f"{stale}.csv").unlink(missing_ok=True)
    _write_skipped(out, skipped)
    # The manifest goes last: its presence marks a complete dataset.
    atomic.write_json(out / MANIFEST, manifest)


def _write_skipped(out: Path, skipped: list[dict[str, str]]) -> None:
    import pandas as pd

    atomic.write_csv(out / SKIPPED, pd.DataFrame(skipped, columns=list(SKIPPED_COLUMNS)))


_HINTS = {
    "missing frame folder": "check --frames-dir",
    "missing video": "check --videos-dir",
    "unknown label": "check that the labels file belongs to these lists",
}


def _no_usable_clips(release: Release, out: Path, skipped: list[dict[str, str]]) -> str:
    """The one-line error when every clip was skipped: the dominant reason, its count, a hint.

    ``skipped.csv`` is written too (unless ``out`` holds an earlier complete dataset, which is
    left as it was), so every reason can be read.
    """
    counts = _reason_counts(skipped)
    kind = max(counts, key=lambda k: (counts[k], k == "unknown label"))  # ties: media problems first
    example = next(r["reason"] for r in skipped if r["kind"] == kind)
    where = _write_reasons(out, skipped)
    hint = _HINTS.get(kind, "see the reasons")
    return (f"no usable clips under {release.media_root}: {counts[kind]} of {len(skipped)} skipped as {kind} "
            f"(e.g. {example}); {hint}; {where}")


def _write_reasons(out: Path, skipped: list[dict[str, str]]) -> str:
    """Write ``skipped.csv`` for a refused run (unless ``out`` holds an earlier complete dataset,
    which is left as it was) and say where the reasons are."""
    if (out / MANIFEST).is_file():
        return "left the dataset already in --out untouched"
    _write_skipped(out, skipped)
    return f"all reasons in {out / SKIPPED}"


def _skip(split: str, entry: Entry, kind: str, reason: str) -> dict[str, str]:
    return {"split": split, "id": entry.id, "kind": kind, "reason": reason}


def _kind(message: str) -> str:
    """A short category for the summary table, taken from the error's leading words."""
    for kind in ("missing frame folder", "empty frame folder", "frame numbering", "missing video",
                 "zero-byte video", "truncated video", "no decodable video frames"):
        if message.startswith(kind):
            return kind
    return "undecodable video" if "video" in message else "unreadable media"


def _raise_strict(release: Release, row: dict[str, str], entry: Entry) -> None:
    raise DataError(f"--strict: {row['split']} clip {row['id']} ({release.media_root / entry.path}): {row['reason']}")


# ---------------------------------------------------------------------------- counting
@dataclass(frozen=True)
class _CountSpec:
    """Everything a worker process needs to count one release's clips (small, picklable)."""

    media: str
    media_root: Path
    frame_template: str | None
    start_index: int
    backend: str


def _count_one(spec: _CountSpec, rel: str) -> int | VideoDecodeError:
    path = spec.media_root / rel
    try:
        if spec.media == "frames":
            return count_frame_files(path, template=spec.frame_template, start_index=spec.start_index)
        return count_video_frames(path, backend=spec.backend)
    except VideoDecodeError as exc:
        return exc


def _count_chunk(spec: _CountSpec, paths: Sequence[str]) -> list[int | VideoDecodeError]:
    """Frame counts (or the error) of ``paths``, in order; runs in a worker process.

    Two threads per process: decord decodes in a thread of its own and the caller waits for
    it, so one thread leaves the core idle part of the time (measured on 2 cores: 1 thread
    55 clips/s, 2 threads 80-130 clips/s on 224² WebM). torchcodec gains little from the
    second thread (one thread 112-115 clips/s, two 114-140; it seems to hold the GIL while decoding).
    """
    if len(paths) <= 1:
        return [_count_one(spec, rel) for rel in paths]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=THREADS_PER_PROCESS) as threads:
        return list(threads.map(lambda rel: _count_one(spec, rel), paths))


def chunk_ranges(total: int, workers: int) -> list[range]:
    """Split ``range(total)`` into consecutive chunks: ~4 per worker, at most :data:`MAX_CHUNK`."""
    size = max(1, min(MAX_CHUNK, math.ceil(total / (4 * workers))))
    return [range(start, min(start + size, total)) for start in range(0, total, size)]


def count_all(
    release: Release,
    entries: Sequence[Entry],
    *,
    workers: int,
    backend: str,
    console=None,
    on_error: Callable[[int, VideoDecodeError], None] | None = None,
) -> list[int | VideoDecodeError]:
    """Frame count (or the :class:`VideoDecodeError`) of every entry, in order.

    ``workers > 1`` counts in that many processes (decoding is CPU bound: threads alone share
    one interpreter), in chunks of consecutive clips, each counted by
    :data:`THREADS_PER_PROCESS` threads; the progress bar stays in this process and advances
    per finished chunk. ``on_error(i, error)`` may raise to stop early (``--strict``):
    unstarted chunks are cancelled.
    """
    spec = _CountSpec(media=release.media, media_root=release.media_root, frame_template=release.frame_template,
                      start_index=release.start_index, backend=backend)
    results: list = [None] * len(entries)
    # Listing frame folders is cheap I/O: starting processes would cost more than it saves.
    processes = 1 if release.media == "frames" else min(workers, max(1, len(entries) // MIN_CHUNK))
    chunks = chunk_ranges(len(entries), processes)
    with progress_bar(console) as progress:
        task = progress.add_task(TASK_DESCRIPTION.format(name=release.name), total=len(entries))

        def collect(chunk: range, counted: list) -> None:
            for i, result in zip(chunk, counted):
                results[i] = result
                if isinstance(result, VideoDecodeError) and on_error is not None:
                    on_error(i, result)
            progress.advance(task, len(chunk))

        if processes <= 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=THREADS_PER_PROCESS) as threads:
                for start in range(0, len(entries), MAX_CHUNK * 4):  # bounded number of futures
                    window = range(start, min(start + MAX_CHUNK * 4, len(entries)))
                    counted = threads.map(lambda i: _count_one(spec, entries[i].path), window)
                    for i, result in zip(window, counted):  # in order, as each clip finishes
                        collect(range(i, i + 1), [result])
            return results
        _count_in_pool(spec, entries, chunks, processes, collect)
    return results


def _count_in_pool(spec: _CountSpec, entries: Sequence[Entry], chunks: list[range], processes: int, collect) -> None:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    # "spawn", not fork: the progress bar's refresh thread is already running, and forking a
    # threaded process can deadlock. A spawned worker imports only this module's light
    # dependencies and the decoders: a pool starts in about a second (torchcodec adds torch, seconds more).
    pool = ProcessPoolExecutor(max_workers=processes, mp_context=multiprocessing.get_context("spawn"))
    try:
        pending = {pool.submit(_count_chunk, spec, [entries[i].path for i in chunk]): chunk for chunk in chunks}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                collect(pending.pop(future), future.result())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def progress_bar(console):
    """A progress bar with count, rate and ETA on ``console`` (disabled if ``None``), kept within
    80 columns even at 220k clips (the V2 release); where ``console`` is not a terminal, plain
    lines instead (:mod:`aknet_cli._progress`). The finished count stays: it is part of the result."""
    from .._progress import LoopBar

    return LoopBar(console, unit="clip", bar_width=16, keep_when_done=True)
