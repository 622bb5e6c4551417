"""Silence file descriptor 2 for C/C++ libraries that log there past every level setting.

decord's reader (``video_reader.cc:83: ERROR opening ...``) and the profiler's kineto
(start/stop lines) write straight to fd 2; their failures still reach us as exceptions or
return values, which we report in our own words.

fd 2 belongs to the whole process, so the redirect is shared: the first active call saves the
real fd 2 and points it at /dev/null, later calls (from any thread) only join, and the last
one to leave restores it. Two threads each saving "the original" would let the later one save
/dev/null and restore that last, silencing the process for good (prepare's counting threads
did, and its error lines vanished). While any call is active a line another thread writes to
stderr is lost: use it around short calls.
"""

from __future__ import annotations

import os
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

_lock = threading.Lock()
_active = 0  # calls inside silenced_stderr right now, all threads together
_saved: int | None = None  # a duplicate of the real fd 2 while _active > 0 (None: nothing redirected)


@contextmanager
def silenced_stderr() -> Iterator[None]:
    """Point fd 2 at /dev/null while this call (or an overlapping one) is active.

    A no-op where there is no real fd 2 (embedded interpreters, captured streams).
    """
    _enter()
    try:
        yield
    finally:
        _leave()


def _enter() -> None:
    global _active, _saved
    with _lock:
        if _active == 0:
            _saved = _redirect_to_devnull()
        _active += 1


def _leave() -> None:
    global _active, _saved
    with _lock:
        _active -= 1
        if _active == 0 and _saved is not None:
            os.dup2(_saved, 2)
            os.close(_saved)
            _saved = None


def _redirect_to_devnull() -> int | None:
    """The saved real fd 2, after pointing fd 2 at /dev/null; ``None`` if there is no fd 2."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (AttributeError, OSError, ValueError):  # sys.stderr is None, or fd 2 is closed
        return None
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
    return saved
