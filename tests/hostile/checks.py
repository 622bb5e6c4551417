"""Checks that prove an ``ok`` run did the right thing (or that an error left no trace).

Each factory returns a :data:`~.case.Check`: ``check(outcome, case_dir)`` → what is wrong, or
``None``. Relative paths are relative to the case's folder (its working directory).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Callable, Optional

from .case import Check, Outcome


def _at(case_dir: Path, path: str | Path) -> Path:
    path = Path(path)
    return path if path.is_absolute() else case_dir / path


def all_of(*checks: Check) -> Check:
    def check(outcome: Outcome, case_dir: Path) -> Optional[str]:
        for one in checks:
            problem = one(outcome, case_dir)
            if problem:
                return problem
        return None
    return check


def stdout_json(test: Callable[[Any], Optional[str]]) -> Check:
    """stdout is exactly one JSON document and ``test`` accepts it."""
    def check(outcome: Outcome, case_dir: Path) -> Optional[str]:
        try:
            payload = json.loads(outcome.stdout)
        except json.JSONDecodeError as exc:
            return f"stdout is not JSON ({exc}): {outcome.stdout[:200]!r}"
        return test(payload)
    return check


def stdout_has(*fragments: str) -> Check:
    def check(outcome: Outcome, case_dir: Path) -> Optional[str]:
        missing = [f for f in fragments if f not in outcome.stdout]
        return f"stdout lacks {missing[0]!r}" if missing else None
    return check


def files(*paths: str | Path) -> Check:
    """Every path exists and (files) is not empty."""
    def check(outcome: Outcome, case_dir: Path) -> Optional[str]:
        for rel in paths:
            path = _at(case_dir, rel)
            if not path.exists():
                return f"{rel} was not written"
            if path.is_file() and path.stat().st_size == 0:
                return f"{rel} is empty"
        return None
    return check


def absent(*paths: str | Path, why: str = "") -> Check:
    def check(outcome: Outcome, case_dir: Path) -> Optional[str]:
        there = [str(p) for p in paths if _at(case_dir, p).exists()]
        return f"{there[0]} exists{': ' + why if why else ''}" if there else None
    return check


def png(path: str | Path) -> Check:
    def check(outcome: Outcome, case_dir: Path) -> Optional[str]:
        from PIL import Image

        with Image.open(_at(case_dir, path)) as image:
            image.verify()
            return None if image.format == "PNG" else f"{path} is {image.format}, not PNG"
    return check


def dataset(folder: str | Path, *, splits: dict[str, int], classes: int | None = None,
            class_test: Callable[[list[str]], Optional[str]] | None = None) -> Check:
    """A prepared dataset: dataset.json's split counts, each CSV's rows, the class count."""
    def check(outcome: Outcome, case_dir: Path) -> Optional[str]:
        root = _at(case_dir, folder)
        manifest = json.loads((root / "dataset.json").read_text())
        if classes is not None and len(manifest["classes"]) != classes:
            return f"{len(manifest['classes'])} classes, expected {classes}"
        for split, count in splits.items():
            # a clip's name that is not UTF-8 is written as its bytes
            with open(root / f"{split}.csv", newline="", errors="surrogateescape") as handle:
                rows = list(csv.DictReader(handle))
            if len(rows) != count or manifest["splits"].get(split) != count:
                return f"split {split} holds {len(rows)} rows ({manifest['splits'].get(split)} in dataset.json), expected {count}"
            labels = [int(r["label"]) for r in rows]
            if any(not -1 <= lab < len(manifest["classes"]) for lab in labels):
                return f"split {split} has a label outside 0..{len(manifest['classes']) - 1}"
        return class_test(manifest["classes"]) if class_test else None
    return check


def csv_rows(path: str | Path, count: int | None = None, test: Callable[[list[dict]], Optional[str]] | None = None) -> Check:
    def check(outcome: Outcome, case_dir: Path) -> Optional[str]:
        with open(_at(case_dir, path), newline="") as handle:
            rows = list(csv.DictReader(handle))
        if count is not None and len(rows) != count:
            return f"{path} has {len(rows)} rows, expected {count}"
        return test(rows) if test else None
    return check


def checkpoint(path: str | Path, test: Callable[[dict], Optional[str]]) -> Check:
    """The file loads as an aknet checkpoint (digest verified) and ``test`` accepts it."""
    def check(outcome: Outcome, case_dir: Path) -> Optional[str]:
        from aknet_cli.checkpoints.format import read_checkpoint_file

        return test(read_checkpoint_file(_at(case_dir, path)))
    return check


def toml_file(path: str | Path, test: Callable[[dict], Optional[str]]) -> Check:
    def check(outcome: Outcome, case_dir: Path) -> Optional[str]:
        import tomllib

        return test(tomllib.loads(_at(case_dir, path).read_text()))
    return check


def expect_equal(what: str, got: Any, want: Any) -> Optional[str]:
    return None if got == want else f"{what} is {got!r}, expected {want!r}"
