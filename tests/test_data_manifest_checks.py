"""Issue 17 class 4: a prepared dataset is validated when it is loaded, before any work.

Split CSVs are edited by hand here the way a user (or a script) might break them; every
consumer (``VideoDataset``, ``train``) must refuse them in one line instead of dying with
``IndexError`` at the first step or ``ZeroDivisionError`` after a full epoch.
"""

from __future__ import annotations

import pandas as pd
import pytest
from data_fixtures import make_sthv1

from aknet_cli.data import VideoDataset, load_manifest
from aknet_cli.data.formats import read_sthv1
from aknet_cli.data.prepare import prepare_release
from aknet_cli.engine.config import load_config
from aknet_cli.engine.trainer import train
from aknet_cli.exceptions import DataError

CONFIG = """
name = "checks"
[model]
backbone = "resnet18"
num_segments = 2
[data]
dataset = "{dataset}"
resize = 20
crop = 16
resize_mode = "square"
num_workers = 0
[optim]
name = "adamw"
lr = 0.001
base_batch_size = 1
batch_size = 1
epochs = 1
milestones = []
[train]
amp = false
"""


@pytest.fixture()
def dataset(tmp_path):
    """3 classes; train: clips 1, 2, 3 (labels 2, 0, 1 in sorted order); val: clip 4."""
    root = make_sthv1(tmp_path / "raw", frames=4)
    prepare_release(read_sthv1(root, frames_dir="frames"), out=tmp_path / "ds")
    return tmp_path / "ds"


def _edit(dataset, split, **columns):
    table = pd.read_csv(dataset / f"{split}.csv", dtype=str, keep_default_na=False)
    for name, values in columns.items():
        table[name] = values
    table.to_csv(dataset / f"{split}.csv", index=False)


@pytest.mark.parametrize("labels, message", [
    (["2", "0", "3"], r"train.csv row 4 \(id 3\): label 3 is outside 0\.\.2"),
    (["2", "x", "1"], r"train.csv row 3 \(id 2\): label 'x' is not an integer"),
    (["2", "0.5", "1"], r"train.csv row 3 \(id 2\): label '0.5' is not an integer"),
    (["2", "-1", "1"], r"train.csv row 3 \(id 2\): label -1 \(unlabelled\).*needs labels"),
])
def test_bad_train_labels_are_refused_when_loaded(dataset, labels, message):
    _edit(dataset, "train", label=labels)
    with pytest.raises(DataError, match=message):
        VideoDataset(dataset, "train", num_segments=2, train=True)


def test_unlabelled_clips_are_fine_where_labels_are_not_needed(dataset):
    _edit(dataset, "val", label=["-1"])
    assert len(VideoDataset(dataset, "val", num_segments=2)) == 1
    _edit(dataset, "val", label=["-2"])
    with pytest.raises(DataError, match=r"val.csv row 2 \(id 4\): label -2 is outside -1\.\.2"):
        VideoDataset(dataset, "val", num_segments=2)


@pytest.mark.parametrize("frames", ["0", "-3", "2.5", "many"])
def test_bad_frame_counts_are_refused(dataset, frames):
    _edit(dataset, "train", num_frames=["4", frames, "4"])
    with pytest.raises(DataError, match=rf"train.csv row 3 \(id 2\): num_frames {frames!r} is not a positive integer"):
        VideoDataset(dataset, "train", num_segments=2)


def test_duplicate_ids_are_refused(dataset):
    _edit(dataset, "train", id=["1", "2", "1"])
    with pytest.raises(DataError, match=r"train.csv lists id 1 twice \(rows 2 and 4\)"):
        VideoDataset(dataset, "train", num_segments=2)


def test_empty_split_is_refused(dataset):
    (dataset / "val.csv").write_text("id,path,num_frames,label\n")
    with pytest.raises(DataError, match=r"split 'val' of .* is empty"):
        VideoDataset(dataset, "val", num_segments=2)


def test_check_for_training_looks_at_both_splits(dataset):
    manifest = load_manifest(dataset)
    manifest.check_for_training("train", "val")  # the prepared dataset is fine
    (dataset / "val.csv").write_text("id,path,num_frames,label\n")
    with pytest.raises(DataError, match="split 'val'"):
        load_manifest(dataset).check_for_training("train", "val")
    (dataset / "val.csv").unlink()
    with pytest.raises(DataError, match="no split 'val'"):
        load_manifest(dataset).check_for_training("train", "val")


def test_train_refuses_an_empty_val_split_before_any_work(dataset, tmp_path):
    (dataset / "val.csv").write_text("id,path,num_frames,label\n")
    config = tmp_path / "c.toml"
    config.write_text(CONFIG.format(dataset=dataset))
    work = tmp_path / "work"
    with pytest.raises(DataError, match="split 'val'"):
        train(load_config(config), work_dir=work, progress=False)
    assert not work.exists()  # nothing written, no epoch run


def test_train_refuses_an_out_of_range_label_before_any_work(dataset, tmp_path):
    _edit(dataset, "train", label=["2", "0", "7"])
    config = tmp_path / "c.toml"
    config.write_text(CONFIG.format(dataset=dataset))
    with pytest.raises(DataError, match="label 7 is outside 0..2"):
        train(load_config(config), work_dir=tmp_path / "work", progress=False)
    assert not (tmp_path / "work").exists()
