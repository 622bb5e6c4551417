"""Reading the annotation and label files people hand us: UTF-8 text, JSON, label indices.

Every reader (official releases, user lists, ``visualize --labels``) goes through these, so
a Latin-1 file, a float index or a gap in a label map is one line naming the file, never a
``UnicodeDecodeError`` traceback or a silently truncated number.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ...exceptions import DataError

_INTEGER = re.compile(r"[+-]?\d+")


def read_text(path: Path, *, hint: str = "re-save it as UTF-8") -> str:
    """The text of ``path``, decoded as UTF-8 (a leading byte-order mark is dropped).

    Raises:
        DataError: the file cannot be read or is not UTF-8 (one line naming the file).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path} ({exc.strerror or exc}); check the path and its permissions") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # Any byte string decodes as Latin-1, so only a cp1252 success says much: it is the
        # usual way a spreadsheet or an old editor saves accented class names.
        guess = "looks like Latin-1?" if _decodes(data, "cp1252") else f"undecodable byte at offset {exc.start}"
        raise DataError(f"{path} is not UTF-8 ({guess}); {hint}") from None


def _decodes(data: bytes, encoding: str) -> bool:
    try:
        data.decode(encoding)
        return True
    except UnicodeDecodeError:
        return False


def load_json(path: Path, *, hint: str = "re-download the annotation file") -> Any:
    """Parse ``path`` as JSON (UTF-8).

    Raises:
        DataError: not UTF-8, or not valid JSON (one line naming the file and ``hint``).
    """
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON ({exc}); {hint}") from None


def parse_index(value: Any, *, where: str) -> int:
    """A label index written as an integer or a string of digits: ``3`` and ``"3"``.

    Args:
        value: the raw value (from JSON or a text field).
        where: the file and position, for the message (e.g. ``"labels.json entry 'x'"``).

    Raises:
        DataError: anything else (``3.0``, ``3.7``, ``"abc"``, ``true``): a float would be
            truncated to another class, so it is refused rather than guessed.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return int(value.strip())
    raise DataError(f"{where}: label index {value!r} is not an integer; write whole numbers such as 3 or \"3\"")


def index_map_names(mapping: dict[str, Any], *, path: Path) -> list[str]:
    """Class names of a ``{name: index}`` JSON object (Sth-Sth V2 labels), in index order.

    Raises:
        DataError: an index that is not an integer, or indices that are not exactly 0..N-1.
    """
    indexed = [(parse_index(index, where=f"{path} entry {name!r}"), name) for name, index in mapping.items()]
    indexed.sort()
    if [i for i, _ in indexed] != list(range(len(indexed))):
        raise DataError(f"{path} class indices are not 0..{len(indexed) - 1} (each once); fix the labels file")
    return [name for _, name in indexed]


def text_names(path: Path, *, hint: str) -> list[str]:
    """One class name a line; trailing blank lines are ignored, a blank line inside is an error.

    A blank line inside would shift every later class by one index, so it is never skipped.
    """
    lines = [line.strip() for line in read_text(path).splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    for number, name in enumerate(lines, start=1):
        if not name:
            raise DataError(f"{path} line {number} is an empty class name; {hint}")
    return lines


def read_label_names(path: Path) -> list[str]:
    """Class names in label-index order from one line each, a JSON list, or a JSON ``{name: index}``.

    Raises:
        DataError: missing file, not UTF-8, bad JSON, an empty or repeated name, a bad index.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"labels file not found: {path}")
    hint = "fix the labels file"
    if path.suffix.lower() == ".json":
        obj = load_json(path, hint=hint)
        if isinstance(obj, list):
            names = [str(v).strip() for v in obj]
        elif isinstance(obj, dict):
            names = [str(n).strip() for n in index_map_names(obj, path=path)]
        else:
            raise DataError(f"{path}: expected a JSON list of names or a {{name: index}} object; {hint}")
    else:
        names = text_names(path, hint=hint)
    check_class_names(names, source=path)
    return names


def check_class_names(names: list[str], *, source: Path | str) -> None:
    """Refuse no names, an empty name or a name listed twice (it would merge two classes).

    Raises:
        DataError: one line naming ``source`` and the offending name.
    """
    if not names:
        raise DataError(f"{source} lists no class names; fix the labels file")
    seen: dict[str, int] = {}
    for index, name in enumerate(names):
        if not name.strip():
            raise DataError(f"{source}: class {index} is an empty class name; fix the labels file")
        if name in seen:
            raise DataError(f"{source} lists the class {name!r} twice (indices {seen[name]} and {index}); "
                            "a repeated name would merge two classes: fix the labels file")
        seen[name] = index
