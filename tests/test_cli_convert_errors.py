"""`aknet convert-1d`: the mistakes it refuses (one line, nothing written) and `--force`."""

from __future__ import annotations

import pytest
from cli_helpers import assert_one_line_error, write_stage1_checkpoint
from typer.testing import CliRunner

from aknet_cli.cli.main import app
from aknet_cli.checkpoints.format import read_checkpoint_file
from aknet_cli.checkpoints.reader import build_model, read_checkpoint

runner = CliRunner()
FAST = ["--split", "res3", "--transform-rank", "4", "--tau", "2.0"]


@pytest.fixture()
def stage1(tmp_path):
    path = tmp_path / "stage1.pt"
    write_stage1_checkpoint(path)
    return path


def _convert(*args: str):
    return runner.invoke(app, ["convert-1d", *args])


@pytest.mark.parametrize("force", [False, True])
def test_output_equal_to_input_is_refused_even_with_force(tmp_path, stage1, force):
    before = stage1.read_bytes()
    for out in (stage1, tmp_path / "." / "stage1.pt"):
        res = _convert("-c", str(stage1), "-o", str(out), *FAST, *(["--force"] if force else []))
        assert_one_line_error(res, "would overwrite the input checkpoint")
    link = tmp_path / "link.pt"
    link.symlink_to(stage1)
    res = _convert("-c", str(stage1), "-o", str(link), *FAST, *(["--force"] if force else []))
    assert_one_line_error(res, "would overwrite the input checkpoint")
    assert stage1.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.pt", "stage1.pt"]


def test_an_aknet_checkpoint_is_not_converted_again(tmp_path, stage1):
    first = tmp_path / "aknet.pt"
    assert _convert("-c", str(stage1), "-o", str(first), *FAST).exit_code == 0
    assert read_checkpoint_file(first)["kind"] == "aknet"
    res = _convert("-c", str(first), "-o", str(tmp_path / "again.pt"), *FAST)
    assert_one_line_error(res, "aknet.pt", "already an AK-Net checkpoint")
    assert not (tmp_path / "again.pt").exists()


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--backbone", "resnet18"], ["--backbone resnet18 contradicts", "stage1.pt", "records tsm_resnet18"]),
        (["--num-classes", "7"], ["--num-classes 7 contradicts", "records 6"]),
        (["--num-segments", "8"], ["--num-segments 8 contradicts", "records 4"]),
    ],
    ids=["backbone", "num-classes", "num-segments"],
)
def test_options_that_contradict_the_stored_config_are_refused(tmp_path, stage1, args, fragments):
    res = _convert("-c", str(stage1), "-o", str(tmp_path / "o.pt"), *FAST, *args)
    assert_one_line_error(res, *fragments)
    assert not (tmp_path / "o.pt").exists()


def test_options_that_agree_with_the_stored_config_are_accepted(tmp_path, stage1):
    out = tmp_path / "o.pt"
    res = _convert("-c", str(stage1), "-o", str(out), *FAST,
                   "--backbone", "tsm_resnet18", "--num-classes", "6", "--num-segments", "4")
    assert res.exit_code == 0, res.output
    cfg = read_checkpoint_file(out)["config"]
    assert (cfg["backbone"], cfg["num_classes"], cfg["num_segments"]) == ("tsm_resnet18", 6, 4)


def test_force_replaces_an_existing_output_atomically(tmp_path, stage1):
    out = tmp_path / "aknet.pt"
    out.write_bytes(b"an older file")
    assert_one_line_error(_convert("-c", str(stage1), "-o", str(out), *FAST), "already exists", "--force")
    assert out.read_bytes() == b"an older file"
    res = _convert("-c", str(stage1), "-o", str(out), *FAST, "--force")
    assert res.exit_code == 0, res.output
    ckpt = read_checkpoint(out)
    build_model(ckpt)  # loads strictly
    assert ckpt.kind == "aknet" and ckpt.config["aknet"]["split"] == "res3"
    assert ckpt.config["aknet"]["transform_rank"] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["aknet.pt", "stage1.pt"]  # no temporary left


def test_human_readable_report(tmp_path, stage1):
    out = tmp_path / "aknet.pt"
    res = _convert("-c", str(stage1), "-o", str(out), *FAST)
    assert res.exit_code == 0, res.output
    text = res.output
    assert "convert-1d: tsm_resnet18 split after res3" in text
    for fragment in ("copied", "TemporalShift", "Conv2d", "from stage 1", "new", "heatmap", "aux_head"):
        assert fragment in text, fragment
    assert f"wrote {out}" in text.replace("\n", "")
