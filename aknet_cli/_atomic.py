"""Atomic file output: a reader never sees a half-written file, a crash leaves the old one.

Everything aknet writes for the user (prepared datasets, checkpoints, plots) goes to a
temporary file in the destination folder (same filesystem) and is then ``os.replace``d over
the target, which is atomic on POSIX and Windows.

Output locations are checked before any work (:func:`check_output_file`,
:func:`check_output_dir`): a command that would fail to save its result after an hour of
computing fails at once instead, in one line naming the path. A write that fails anyway (the
disk fills up) is an :class:`~aknet_cli.exceptions.OutputError` naming the path, never a
traceback.
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .exceptions import OutputError

#: Part of every temporary file's name, so that a process killed mid-write leaves a file
#: that can be recognised as ours and removed (:func:`remove_stale_temporaries`).
TEMP_MARK = ".aknet-partial"
# Temporaries written before TEMP_MARK existed: ".NAME." + mkstemp's 8 random characters + ".tmp".
_LEGACY_TEMP = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")
#: Errors of the destination rather than of the data being written.
_OUTPUT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def _output_error(path: Path, exc: OSError, option: str | None = None) -> OutputError:
    what = f"{option} {path}" if option else str(path)
    reason = exc.strerror or type(exc).__name__
    return OutputError(f"cannot write {what}: {reason}; choose another location or free some space")


@contextmanager
def atomic_output(path: str | os.PathLike, *, suffix: str = ".tmp", make_parents: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``.

    Args:
        path: the final file.
        suffix: the temporary file's suffix (tools such as matplotlib read the format from it).
        make_parents: create missing parent folders.

    On any exception the temporary file is removed and ``path`` is left untouched.

    Raises:
        OutputError: the folder cannot be created or written, or the disk is full.
    """
    path = Path(path)
    try:
        if make_parents:
            path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_MARK + suffix, dir=path.parent)
    except OSError as exc:
        raise _output_error(path, exc) from None
    os.close(fd)
    # mkstemp creates 0600 files; give the result the permissions a plain open() would (umask).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.errno in _OUTPUT_ERRNOS or isinstance(exc, IsADirectoryError):
            raise _output_error(path, exc) from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files a killed writer left in ``folder`` (not recursive).

    Call only where no other process can be writing (e.g. a work dir under its lock).

    Returns:
        The files removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for entry in folder.iterdir():
        name = entry.name
        if name.startswith(".") and (TEMP_MARK in name or _LEGACY_TEMP.match(name)) and entry.is_file():
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def _nearest_existing(path: Path) -> Path:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def _probe_folder(folder: Path, path: Path, option: str) -> None:
    """Create and delete a file in ``folder``: the one test permissions, read-only mounts and
    root's privileges all answer truthfully."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".aknet-write-test.", dir=folder)
    except OSError as exc:
        raise _output_error(path, exc, option) from None
    os.close(fd)
    os.unlink(probe)


def _check_folder(folder: Path, shown: Path, option: str) -> None:
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{option} {shown} cannot be written: {folder} is a file, not a folder")
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        raise OutputError(f"{option} {shown} cannot be created: {existing} is a file, not a folder")
    _probe_folder(existing, shown, option)


def check_output_dir(path: str | os.PathLike, *, option: str = "--out") -> Path:
    """Fail now if ``path`` cannot become (or be written as) a folder.

    Nothing is created: the folder is made when the command writes into it.

    Raises:
        OutputError: ``path`` is a file, lies under a file, or cannot be written.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{option} {path} is a file, not a folder; give a folder path")
    _check_folder(path, path, option)
    return path


def check_output_file(path: str | os.PathLike, *, option: str = "--out") -> Path:
    """Fail now if a file cannot be written at ``path`` (see :func:`check_output_dir`).

    Raises:
        OutputError: ``path`` is a folder, lies under a file, or its folder cannot be written.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{option} {path} is a folder; give a file name (e.g. {path / 'output'})")
    _check_folder(path.parent, path, option)
    return path
