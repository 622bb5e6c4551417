"""The prepared dataset: ``dataset.json`` plus one CSV per split.

``dataset.json`` keys:
    ``name``, ``source_format`` (sthv1/sthv2/diving48), ``media`` ("frames" or "video"),
    ``media_root`` (absolute; media are read in place, never copied), ``root`` (the raw
    release folder), ``frame_template`` and ``start_index`` (frames), ``classes`` (names in
    label-index order), ``label_order`` ("file" or "sorted"), ``flip_map`` (label index ->
    label index, as strings -> ints, for horizontal-flip augmentation), ``splits``
    (clips per split), ``skipped``, ``aknet_version``, ``info`` (extra, e.g. synthetic
    generation parameters), and ``reversed_pairs`` (``[[name_a, name_b], ...]``: classes whose
    clips are time-reversals of each other, by name; synth-sth only, ``[]`` for real releases),
    and ``split_roles`` (what each split is for: ``val`` selects ``best.pt``, a labelled
    ``test`` split is held out for reported numbers; absent in datasets prepared before it).

Split CSVs: ``id,path,num_frames,label`` (+ release extras); ``path`` is relative to
``media_root``; ``label`` is ``-1`` for unlabelled test clips.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..exceptions import ConfigError, DataError

if TYPE_CHECKING:  # pandas is imported on use: `aknet prepare --help` should not pay for it
    import pandas as pd

MANIFEST = "dataset.json"
SPLIT_COLUMNS = ("id", "path", "num_frames", "label")

# Words a horizontal flip turns into each other. On the 174 Sth-Sth classes this yields
# exactly the three pairs TDN hard-codes for its label-swapping flip (ops/models.py
# target_transforms, sorted order 86<->87, 93<->94, 166<->167; mmaction2's V2 flip_label_map
# too; TSM does not flip Sth-Sth):
# Pulling/Pushing something from left to right <-> right to left, and
# Turning the camera left <-> right while filming something.
_MIRROR_WORDS = {"left": "right", "right": "left", "clockwise": "counterclockwise", "counterclockwise": "clockwise"}


def mirror_name(name: str) -> str:
    """The class name a horizontally flipped clip of ``name`` belongs to (maybe itself)."""
    return " ".join(_MIRROR_WORDS.get(word, word) for word in name.split(" "))


def flip_map(class_names: list[str]) -> dict[int, int]:
    """Label index -> label index of its mirror class, for classes that have one."""
    index = {name: i for i, name in enumerate(class_names)}
    pairs = {}
    for i, name in enumerate(class_names):
        j = index.get(mirror_name(name))
        if j is not None and j != i:
            pairs[i] = j
    return pairs


def order_classes(class_names: list[str], label_order: str) -> list[str]:
    """Apply ``label_order``: ``"file"`` keeps the release order, ``"sorted"`` sorts by name."""
    if label_order == "file":
        return list(class_names)
    if label_order == "sorted":
        return sorted(class_names)
    raise ConfigError(f"unknown label order {label_order!r}; choose 'file' or 'sorted'")


@dataclass(frozen=True)
class Manifest:
    """A prepared dataset's ``dataset.json``, loaded."""

    path: Path
    data: dict[str, Any]

    @property
    def folder(self) -> Path:
        return self.path.parent

    @property
    def media(self) -> str:
        return self.data["media"]

    @property
    def media_root(self) -> Path:
        return Path(self.data["media_root"])

    @property
    def classes(self) -> list[str]:
        return list(self.data["classes"])

    @property
    def num_classes(self) -> int:
        return len(self.data["classes"])

    @property
    def flip_map(self) -> dict[int, int]:
        return {int(k): int(v) for k, v in self.data.get("flip_map", {}).items()}

    @property
    def reversed_pairs(self) -> list[tuple[int, int]]:
        """Label-index pairs ``(a, b)`` whose clips are time-reversals of each other.

        Computed from the class names recorded in ``dataset.json`` (``reversed_pairs``), so the
        indices follow this dataset's own label order (e.g. synth-sth prepared with sorted
        labels). Empty for the real releases and for datasets prepared before the key existed.

        Raises:
            DataError: a pair names a class that is not in ``classes``.
        """
        index = {name: i for i, name in enumerate(self.data["classes"])}
        pairs = []
        for pair in self.data.get("reversed_pairs") or []:
            unknown = [name for name in pair if name not in index]
            if len(pair) != 2 or unknown:
                raise DataError(f"{self.path}: reversed pair {pair!r} does not name two of its classes; "
                                "re-run `aknet prepare`")
            pairs.append((index[pair[0]], index[pair[1]]))
        return pairs

    @property
    def frame_template(self) -> str:
        return self.data["frame_template"]

    @property
    def start_index(self) -> int:
        return int(self.data.get("start_index", 1))

    def split_table(self, split: str) -> "pd.DataFrame":
        """The split list as a DataFrame with at least :data:`SPLIT_COLUMNS` (not validated;
        :meth:`check_split` is what consumers call)."""
        import pandas as pd

        path = self.folder / f"{split}.csv"
        if not path.is_file():
            available = ", ".join(sorted(self.data.get("splits", {}))) or "none"
            raise DataError(f"{self.folder} has no split {split!r} ({path} missing); available: {available}")
        # a clip's file name that is not UTF-8 was written as its bytes (data.atomic.write_csv)
        table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding_errors="surrogateescape")
        missing = [c for c in SPLIT_COLUMNS if c not in table.columns]
        if missing:
            raise DataError(f"{path} lacks columns {missing}; re-run `aknet prepare`")
        return table

    def check_split(self, split: str, *, need_labels: bool) -> "pd.DataFrame":
        """Read ``split``'s CSV once and refuse what would fail later, in the middle of work.

        Args:
            split: ``train``, ``val`` or ``test``.
            need_labels: the consumer trains (or otherwise needs every clip's class): ``-1``
                (unlabelled) is refused too.

        Returns:
            The table, with ``num_frames`` and ``label`` as integers, ``id`` and ``path`` as str.

        Raises:
            DataError: a missing or empty split, a ``num_frames`` that is not a positive
                integer, a label that is not an integer in ``[-1, num_classes)`` (``[0, ...)``
                with ``need_labels``), or an id listed twice: one line naming the CSV, the
                row (as a text editor numbers it, header = 1) and the value.
        """
        table = self.split_table(split)
        path = self.folder / f"{split}.csv"
        if table.empty:
            raise DataError(f"split {split!r} of {self.folder} is empty ({path} lists no clips); "
                            "re-run `aknet prepare` with clips for it, or choose another split")
        table["num_frames"] = self._integers(table, "num_frames", path, low=1, what="a positive integer")
        low = 0 if need_labels else -1
        table["label"] = self._integers(table, "label", path, low=low, high=self.num_classes,
                                        what=f"within {low}..{self.num_classes - 1}")
        repeated = table["id"].duplicated(keep=False)
        if repeated.any():
            vid = table["id"][repeated].iloc[0]
            rows = [i + 2 for i in table.index[table["id"] == vid][:2]]
            raise DataError(f"{path} lists id {vid} twice (rows {rows[0]} and {rows[1]}); re-run `aknet prepare`")
        return table

    def _integers(self, table: "pd.DataFrame", column: str, path: Path, *, low: int, high: int | None = None,
                  what: str) -> "pd.Series":
        import pandas as pd

        text = table[column].astype(str).str.strip()
        whole = text.str.fullmatch(r"[+-]?\d+")
        values = pd.to_numeric(text.where(whole), errors="coerce")
        bad = ~whole | (values < low) | (values >= high if high is not None else False)
        if not bad.any():
            return values.astype(int)
        i = int(bad.to_numpy().nonzero()[0][0])
        where = f"{path} row {i + 2} (id {table['id'].iloc[i]})"
        raw = table[column].iloc[i]
        if column == "num_frames":
            problem = f"num_frames {raw!r} is not a positive integer"
        elif not whole.iloc[i]:
            problem = f"label {raw!r} is not an integer"
        elif int(values.iloc[i]) == -1:
            problem = "label -1 (unlabelled), but this use needs labels (training)"
        else:
            problem = f"label {int(values.iloc[i])} is outside {low}..{high - 1} ({self.num_classes} classes)"
        raise DataError(f"{where}: {problem}; re-run `aknet prepare`")

    def check_for_training(self, train_split: str, val_split: str) -> None:
        """Check both splits a training run reads, before any work (see :meth:`check_split`)."""
        for split in (train_split, val_split):
            self.check_split(split, need_labels=True)


def load_manifest(dataset_dir: Path) -> Manifest:
    """Read ``DATASET/dataset.json``.

    Raises:
        DataError: the folder is not a prepared dataset.
    """
    path = Path(dataset_dir) / MANIFEST
    if not path.is_file():
        raise DataError(f"{dataset_dir} is not a prepared dataset ({MANIFEST} missing); run `aknet prepare` first")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON ({exc}); re-run `aknet prepare`") from None
    except UnicodeDecodeError:
        raise DataError(f"{path} is not UTF-8 text; re-run `aknet prepare`") from None
    if not isinstance(data, dict):
        raise DataError(f"{path} is not a JSON object; re-run `aknet prepare`")
    for key in ("media", "media_root", "classes"):
        if key not in data:
            raise DataError(f"{path} lacks {key!r}; re-run `aknet prepare`")
    if data["media"] not in ("frames", "video"):
        raise DataError(f"{path}: media is {data['media']!r}, expected 'frames' or 'video'; re-run `aknet prepare`")
    classes = data["classes"]
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise DataError(f"{path}: classes must be a non-empty list of names; re-run `aknet prepare`")
    if data["media"] == "frames" and not isinstance(data.get("frame_template"), str):
        raise DataError(f"{path} lacks the frame_template of a frame dataset; re-run `aknet prepare`")
    return Manifest(path=path, data=data)
