"""Issue 17 class 4: annotation data that is wrong in ways a reader alone misses.

One validation pass over every parsed release (duplicate ids, clips in two splits, empty or
duplicate class names), one text reader (UTF-8 or a one-line error), strict label indices.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from data_fixtures import V1_NAMES, make_diving48, make_sthv1, make_sthv2

from aknet_cli.analysis import overlay
from aknet_cli.data.formats import read_diving48, read_sthv1, read_sthv2
from aknet_cli.data.prepare import prepare_release
from aknet_cli.exceptions import DataError

V1_TRAIN = "something-something-v1-train.csv"
V1_VAL = "something-something-v1-validation.csv"
V1_LABELS = "something-something-v1-labels.csv"
V2_TRAIN = "something-something-v2-train.json"
V2_LABELS = "something-something-v2-labels.json"
D48_TRAIN = "Diving48_V2_train.json"
D48_VOCAB = "Diving48_vocab.json"


def _append_json(path, record):
    records = json.loads(path.read_text())
    path.write_text(json.dumps(records + [record]))


# ------------------------------------------------------------------ duplicate ids in a split
def test_v1_id_listed_twice_with_two_labels_is_an_error(tmp_path):
    root = make_sthv1(tmp_path / "raw")
    with open(root / V1_TRAIN, "a") as f:
        f.write(f"1;{V1_NAMES[2]}\n")  # clip 1 is V1_NAMES[0] on line 1
    with pytest.raises(DataError, match=rf"{V1_TRAIN}.*clip 1 .*twice.*{V1_NAMES[0]}.*{V1_NAMES[2]}"):
        prepare_release(read_sthv1(root, frames_dir="frames"), out=tmp_path / "ds")
    assert not (tmp_path / "ds").exists()  # refused before any work


def test_v2_id_listed_twice_with_two_labels_is_an_error(tmp_path):
    root = make_sthv2(tmp_path / "raw", frames=4)
    _append_json(root / V2_TRAIN, {"id": "10", "template": "Putting [something] onto [something]"})
    with pytest.raises(DataError, match=rf"{V2_TRAIN}.*clip 10 .*twice"):
        prepare_release(read_sthv2(root), out=tmp_path / "ds")


def test_diving48_id_listed_twice_with_two_labels_is_an_error(tmp_path):
    root = make_diving48(tmp_path / "raw", frames=4)
    _append_json(root / D48_TRAIN, {"vid_name": "a", "label": 1, "start_frame": 0, "end_frame": 3})
    with pytest.raises(DataError, match=rf"{D48_TRAIN}.*clip a .*twice"):
        prepare_release(read_diving48(root), out=tmp_path / "ds")


def test_id_listed_twice_with_the_same_label_is_kept_once_and_reported(tmp_path):
    root = make_sthv1(tmp_path / "raw")
    with open(root / V1_TRAIN, "a") as f:
        f.write(f"2;{V1_NAMES[1]}\n")
    summary = prepare_release(read_sthv1(root, frames_dir="frames"), out=tmp_path / "ds")
    assert pd.read_csv(tmp_path / "ds" / "train.csv")["id"].astype(str).tolist() == ["1", "2", "3"]
    assert [(r["split"], r["id"], r["kind"]) for r in summary.skipped] == [("train", "2", "duplicate id")]
    with pytest.raises(DataError, match="--strict: train clip 2: duplicate id"):
        prepare_release(read_sthv1(root, frames_dir="frames"), out=tmp_path / "ds2", strict=True)


# ------------------------------------------------------------------ clips in two splits
def test_official_clip_in_train_and_val_is_kept_with_a_warning(tmp_path):
    root = make_sthv1(tmp_path / "raw")
    with open(root / V1_VAL, "a") as f:
        f.write(f"1;{V1_NAMES[0]}\n")
    summary = prepare_release(read_sthv1(root, frames_dir="frames"), out=tmp_path / "ds")
    assert summary.splits == {"train": 3, "val": 2}
    assert summary.cross_split == 1
    assert any("1 clip" in w and "train" in w and "val" in w for w in summary.warnings), summary.warnings
    assert summary.to_dict()["cross_split"] == 1


# ------------------------------------------------------------------ class names
def test_duplicate_diving48_vocabulary_entry_is_an_error(tmp_path):
    root = make_diving48(tmp_path / "raw", frames=4)
    vocab = json.loads((root / D48_VOCAB).read_text())
    (root / D48_VOCAB).write_text(json.dumps(vocab + [vocab[0]]))  # index 2 repeats index 0
    with pytest.raises(DataError, match=rf"{D48_VOCAB}.*'Back 15som 05Twis FREE' twice"):
        prepare_release(read_diving48(root), out=tmp_path / "ds")


def test_empty_class_name_is_an_error(tmp_path):
    root = make_sthv2(tmp_path / "raw", frames=4)
    (root / V2_LABELS).write_text(json.dumps({"Moving something up": "0", "Putting something onto something": "1",
                                              " ": "2"}))
    with pytest.raises(DataError, match=rf"{V2_LABELS}.*empty class name"):
        prepare_release(read_sthv2(root), out=tmp_path / "ds")


def test_blank_line_inside_a_v1_labels_file_is_an_empty_class_name(tmp_path):
    root = make_sthv1(tmp_path / "raw")
    (root / V1_LABELS).write_text(f"{V1_NAMES[0]}\n\n{V1_NAMES[1]}\n{V1_NAMES[2]}\n\n")
    with pytest.raises(DataError, match=rf"{V1_LABELS} line 2.*empty class name"):
        read_sthv1(root, frames_dir="frames")


# ------------------------------------------------------------------ label indices
@pytest.mark.parametrize("index", [1.0, 1.7, "1.0", "abc", True])
def test_v2_labels_file_with_a_non_integer_index_is_an_error(tmp_path, index):
    root = make_sthv2(tmp_path / "raw", frames=4)
    (root / V2_LABELS).write_text(json.dumps({"Moving something up": 0, "Putting something onto something": index}))
    with pytest.raises(DataError, match=rf"{V2_LABELS}.*{index!r}.* not an integer"):
        read_sthv2(root)


@pytest.mark.parametrize("index", [1.0, "1.5"])
def test_diving48_float_label_is_an_error(tmp_path, index):
    root = make_diving48(tmp_path / "raw", frames=4)
    records = json.loads((root / D48_TRAIN).read_text())
    records[1]["label"] = index
    (root / D48_TRAIN).write_text(json.dumps(records))
    with pytest.raises(DataError, match=rf"{D48_TRAIN} record 1.* not an integer"):
        read_diving48(root)


# ------------------------------------------------------------------ text encodings
def test_latin1_annotation_files_are_one_clear_error(tmp_path):
    root = make_sthv1(tmp_path / "raw")
    (root / V1_LABELS).write_bytes("Pushing caf\xe9 from left to right\n".encode("latin-1"))
    with pytest.raises(DataError, match=rf"{V1_LABELS} is not UTF-8 \(looks like Latin-1\?\); re-save it as UTF-8"):
        read_sthv1(root, frames_dir="frames")
    root = make_diving48(tmp_path / "d48", frames=4)
    (root / D48_VOCAB).write_bytes('[["Caf\xe9", "a", "b", "c"]]'.encode("latin-1"))
    with pytest.raises(DataError, match=rf"{D48_VOCAB} is not UTF-8"):
        read_diving48(root)


def test_utf8_with_a_byte_order_mark_is_read(tmp_path):
    root = make_sthv1(tmp_path / "raw")
    (root / V1_LABELS).write_text("".join(n + "\n" for n in V1_NAMES), encoding="utf-8-sig")
    assert read_sthv1(root, frames_dir="frames").class_names == V1_NAMES


def test_visualize_labels_file_latin1_and_bad_json_index(tmp_path):
    (tmp_path / "labels.txt").write_bytes("caf\xe9\nth\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"labels.txt is not UTF-8 \(looks like Latin-1\?\)"):
        overlay.load_labels(tmp_path / "labels.txt")
    (tmp_path / "map.json").write_text(json.dumps({"a": "0", "b": "one"}))
    with pytest.raises(DataError, match=r"map.json.*'one'.* not an integer"):
        overlay.load_labels(tmp_path / "map.json")
    (tmp_path / "gap.json").write_text(json.dumps({"a": 0, "b": 2}))
    with pytest.raises(DataError, match=r"gap.json.*0\.\.1"):
        overlay.load_labels(tmp_path / "gap.json")
