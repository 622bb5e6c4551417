"""`aknet prepare ...` through Typer: summaries, JSON, one-line errors without tracebacks."""

import json

from cli_helpers import assert_one_line_error
from data_fixtures import make_diving48, make_sthv1
from typer.testing import CliRunner

from aknet_cli.cli.main import app

runner = CliRunner()


def test_bad_root_is_one_line(tmp_path):
    missing = tmp_path / "nope"
    result = runner.invoke(app, ["prepare", "sthv1", "--root", str(missing), "--out", str(tmp_path / "ds")])
    assert_one_line_error(result, "nope")


def test_missing_labels_file_is_named(tmp_path):
    root = make_sthv1(tmp_path / "raw")
    (root / "something-something-v1-labels.csv").unlink()
    result = runner.invoke(app, ["prepare", "sthv1", "--root", str(root), "--frames-dir", "frames", "--out", str(tmp_path / "ds")])
    assert_one_line_error(result, "something-something-v1-labels.csv")


def test_sthv1_json_summary_and_strict(tmp_path):
    root = make_sthv1(tmp_path / "raw")
    args = ["prepare", "sthv1", "--root", str(root), "--frames-dir", "frames", "--out", str(tmp_path / "ds"), "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["splits"] == {"train": 3, "val": 1} and payload["skipped"] == 0
    for f in (root / "frames" / "2").iterdir():
        f.unlink()
    result = runner.invoke(app, args + ["--strict", "--force"])
    assert_one_line_error(result, "empty frame folder")


def test_corrupt_video_is_skipped_and_reported(tmp_path):
    root = make_diving48(tmp_path / "raw")
    (root / "rgb" / "a.mp4").write_text("not a video")
    result = runner.invoke(app, ["prepare", "diving48", "--root", str(root), "--out", str(tmp_path / "ds"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["skipped"] == 1
    assert "a.mp4" in (tmp_path / "ds" / "skipped.csv").read_text()


def test_out_inside_root_and_bad_option(tmp_path):
    root = make_sthv1(tmp_path / "raw")
    result = runner.invoke(app, ["prepare", "sthv1", "--root", str(root), "--out", str(root / "ds")])
    assert_one_line_error(result, "inside --root")
    result = runner.invoke(app, ["prepare", "sthv1", "--root", str(root), "--frames-dir", "frames",
                                 "--out", str(tmp_path / "ds"), "--label-order", "random"])
    assert_one_line_error(result, "random")


def test_synthetic_command(tmp_path):
    result = runner.invoke(app, ["prepare", "synthetic", "--out", str(tmp_path / "s"), "--classes", "2",
                                 "--train-per-class", "2", "--val-per-class", "1", "--size", "32", "--frames", "8", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["splits"] == {"train": 4, "val": 2}
    result = runner.invoke(app, ["prepare", "synthetic", "--out", str(tmp_path / "x"), "--classes", "99"])
    assert_one_line_error(result, "--classes")


def test_help_has_examples():
    for sub in ("sthv1", "sthv2", "diving48", "synthetic"):
        result = runner.invoke(app, ["prepare", sub, "--help"])
        assert result.exit_code == 0 and "aknet prepare" in result.output
