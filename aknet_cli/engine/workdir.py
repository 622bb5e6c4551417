"""A training run's work dir: created, locked for the run, cleared of a killed run's debris.

Two runs writing into one work dir would leave a mix (one run's ``config.toml``, the other's
``metrics.csv``, a ``best.pt`` either may have written), so a run holds an advisory lock
(``flock``) on ``WORK/.aknet-train.lock`` from start to end; a second run is refused in one line
naming the holder. The operating system drops the lock when the process ends, however it ends
(a crash, a SIGKILL), so a lock never outlives its run. Only rank 0 takes it: the other ranks
of the same job write nothing. Where ``fcntl`` does not exist (Windows) runs are not locked.

Under the lock nobody else can be writing, so the temporary files a killed run left behind
(``.last.pt.*.aknet-partial.tmp``: a SIGKILL during a checkpoint write) are removed.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from .._atomic import remove_stale_temporaries
from ..exceptions import OutputError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

LOCK_NAME = ".aknet-train.lock"


class WorkDirInUse(OutputError):
    """Another run holds the work dir."""


def _lock_or_name_holder(fd: int, path: Path) -> None:
    """Take the exclusive lock on the open lock file ``fd``, or raise :class:`WorkDirInUse` naming
    the holder its file records (the descriptor stays open either way)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 200).decode("utf-8", "replace").strip() or "another process"
        raise WorkDirInUse(f"work dir {path.parent} is in use by another training run ({holder}); "
                           f"wait for it to finish or choose another --work-dir") from None


class WorkDirLock:
    """The exclusive lock on one work dir (see the module docstring); a context manager."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.path = Path(folder) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> "WorkDirLock":
        """Take the lock or raise :class:`WorkDirInUse` naming the holder."""
        if fcntl is None:
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _lock_or_name_holder(fd, self.path)
        except WorkDirInUse:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}"
                     .encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> "WorkDirLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def check_not_in_use(folder: str | os.PathLike) -> None:
    """Raise :class:`WorkDirInUse` if a run holds ``folder``'s lock; touch nothing otherwise.

    A probe (the lock file opened read-only, the lock tried and let go at once), asked before
    anything else about a work dir: a run in progress has a ``last.pt`` from its first epoch on,
    and a second launch must hear that the dir is in use, not that it holds a finished run.
    """
    path = Path(folder) / LOCK_NAME
    if fcntl is None or not path.is_file():
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # unreadable: claim() will say so when the run starts
    try:
        _lock_or_name_holder(fd, path)
    finally:
        os.close(fd)  # drops the probe's lock, if it took it


def claim(folder: str | os.PathLike) -> tuple[WorkDirLock, list[Path]]:
    """Create ``folder``, lock it and remove stale temporaries.

    Returns:
        The held lock (release it when the run ends) and the temporaries removed.

    Raises:
        OutputError: the folder cannot be created; :class:`WorkDirInUse`: it is locked.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create work dir {folder}: {exc.strerror}; choose another --work-dir") from None
    lock = WorkDirLock(folder).acquire()
    return lock, remove_stale_temporaries(folder)
