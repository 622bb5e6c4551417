"""Silence file descriptor 2 for C/C++ libraries that log there past every level setting.

decord's reader (``video_reader.cc:83: ERROR opening ...``) and the profiler's kineto
(start/stop lines) write straight to fd 2; their failures still reach us as exceptions or
return values, which we report in our own words. The redirect is process-wide while it
lasts, so a line another thread writes to stderr meanwhile is lost: use it around short
calls in processes where nothing else writes.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def silenced_stderr() -> Iterator[None]:
    """Point fd 2 at /dev/null for the duration; a no-op where there is no real fd 2."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (embedded, captured): nothing to silence
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
