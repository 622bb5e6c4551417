"""Atomic file output: a reader never sees a half-written file, a crash leaves the old one.

Everything aknet writes for the user (prepared datasets, checkpoints, plots) goes to a
temporary file in the destination folder (same filesystem) and is then ``os.replace``d over
the target, which is atomic on POSIX and Windows.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_output(path: str | os.PathLike, *, suffix: str = ".tmp", make_parents: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``.

    Args:
        path: the final file.
        suffix: the temporary file's suffix (tools such as matplotlib read the format from it).
        make_parents: create missing parent folders.

    On any exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    # mkstemp creates 0600 files; give the result the permissions a plain open() would (umask).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
