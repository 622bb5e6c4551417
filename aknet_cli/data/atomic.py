"""Atomic text writes for prepared datasets: a reader never sees a half-written manifest or
split list (see :mod:`aknet_cli._atomic`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._atomic import atomic_output


if TYPE_CHECKING:
    import pandas as pd


def _replace_with(path: Path, write) -> None:
    with atomic_output(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as handle:
        write(handle)


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    _replace_with(Path(path), lambda handle: handle.write(text))


def write_json(path: Path, payload: Any) -> None:
    """Write ``payload`` as indented, key-sorted JSON (stable bytes for idempotent re-runs)."""
    write_text(path, json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def write_csv(path: Path, frame: "pd.DataFrame", **kwargs: Any) -> None:
    """Write a DataFrame as CSV atomically; ``kwargs`` go to :meth:`DataFrame.to_csv`."""
    kwargs.setdefault("index", False)
    _replace_with(Path(path), lambda handle: frame.to_csv(handle, **kwargs))
