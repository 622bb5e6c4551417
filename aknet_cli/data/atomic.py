"""Atomic writes: a reader never sees a half-written manifest or split list.

Each writer goes to a temporary file in the destination folder (same filesystem) and then
``os.replace``s it, which is atomic on POSIX and Windows.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd


def _replace_with(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            write(handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    _replace_with(Path(path), lambda handle: handle.write(text))


def write_json(path: Path, payload: Any) -> None:
    """Write ``payload`` as indented, key-sorted JSON (stable bytes for idempotent re-runs)."""
    write_text(path, json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def write_csv(path: Path, frame: pd.DataFrame, **kwargs: Any) -> None:
    """Write a DataFrame as CSV atomically; ``kwargs`` go to :meth:`DataFrame.to_csv`."""
    kwargs.setdefault("index", False)
    _replace_with(Path(path), lambda handle: frame.to_csv(handle, **kwargs))
