"""Issue 22: a dataset prepared from a user's folder or lists trains unchanged (one epoch, a few steps)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner
from user_data_fixtures import make_frame_tree, make_video_tree, write_list

from aknet_cli.cli.main import app
from aknet_cli.data import load_manifest
from aknet_cli.engine.config import load_config
from aknet_cli.engine.trainer import train

runner = CliRunner()

CONFIG = """
name = "own-data"
[model]
backbone = "tsm_resnet18"
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
base_batch_size = 2
batch_size = 2
epochs = 1
milestones = []
[train]
amp = false
"""


def _prepare_folder(tmp_path):
    root = make_video_tree(tmp_path / "clips", per_class=(3, 3, 3))
    return ["prepare", "folder", "--root", str(root), "--out", str(tmp_path / "ds"), "--val-fraction", "0.34"]


def _prepare_list(tmp_path):
    media = make_frame_tree(tmp_path / "rawframes", per_class=(3, 3, 3))
    train = write_list(tmp_path / "train.txt", [f"{c}/{c}_{i} {4 + i} {k}" for k, c in enumerate(("wave", "jump", "Clap"))
                                                 for i in range(2)])
    val = write_list(tmp_path / "val.txt", [f"{c}/{c}_2 6 {k}" for k, c in enumerate(("wave", "jump", "Clap"))])
    labels = write_list(tmp_path / "labels.txt", ["wave", "jump", "Clap"])
    return ["prepare", "list", "--train", str(train), "--val", str(val), "--media-root", str(media),
            "--labels", str(labels), "--out", str(tmp_path / "ds")]


@pytest.mark.parametrize("prepare", [_prepare_folder, _prepare_list], ids=["folder-videos", "list-frames"])
def test_one_training_epoch_on_own_data(tmp_path, prepare):
    result = runner.invoke(app, prepare(tmp_path) + ["--json"])
    assert result.exit_code == 0, result.output
    manifest = load_manifest(tmp_path / "ds")
    assert manifest.num_classes == 3
    config = tmp_path / "run.toml"
    config.write_text(CONFIG.format(dataset=tmp_path / "ds"))
    steps = []
    train(load_config(config), work_dir=tmp_path / "work", progress=False, on_step_end=[steps.append])
    assert steps == [1, 2, 3]  # 6 training clips at batch 2
    assert (tmp_path / "work" / "last.pt").is_file()
