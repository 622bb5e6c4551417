"""Atomic text writes for prepared datasets: a reader never sees a half-written manifest or
split list (see :mod:`aknet_cli._atomic`)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._atomic import atomic_output


if TYPE_CHECKING:
    import pandas as pd


#: A file name that is not UTF-8 (any bytes are a Linux name) reaches Python as lone surrogates
#: (PEP 383): ``caf\xe9.mp4`` is ``'caf\udce9.mp4'``.
_LONE_SURROGATE = re.compile("[\udc80-\udcff]")


def _replace_with(path: Path, write, errors: str = "strict") -> None:
    with atomic_output(path) as tmp, open(tmp, "w", encoding="utf-8", errors=errors, newline="") as handle:
        write(handle)


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    _replace_with(Path(path), lambda handle: handle.write(text))


def write_json(path: Path, payload: Any) -> None:
    """Write ``payload`` as indented, key-sorted JSON (stable bytes for idempotent re-runs).

    A name that is not UTF-8 is written as JSON's ``\\udcXX`` escapes, which ``json.loads``
    turns back into the same name: the file stays UTF-8."""
    text = json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False)
    write_text(path, _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n")


def write_csv(path: Path, frame: "pd.DataFrame", **kwargs: Any) -> None:
    """Write a DataFrame as CSV atomically; ``kwargs`` go to :meth:`DataFrame.to_csv`.

    A path whose name is not UTF-8 is written as the bytes the file system holds (as ``ls``
    would list it); :meth:`~aknet_cli.data.manifest.Manifest.split_table` reads it back."""
    kwargs.setdefault("index", False)
    _replace_with(Path(path), lambda handle: frame.to_csv(handle, **kwargs), errors="surrogateescape")
