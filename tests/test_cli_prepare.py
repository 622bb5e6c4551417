"""`aknet prepare ...` through Typer: summaries, JSON, one-line errors without tracebacks."""

import json

import pytest

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
                                 "--train-per-class", "2", "--val-per-class", "1", "--test-per-class", "2", "--size", "32", "--frames", "8", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["splits"] == {"train": 4, "val": 2, "test": 4}
    result = runner.invoke(app, ["prepare", "synthetic", "--out", str(tmp_path / "x"), "--classes", "99"])
    assert_one_line_error(result, "--classes")


WIDE = {"COLUMNS": "240"}  # no wrapping, so a word missing from the help was dropped, not folded


def test_help_has_examples():
    """Each subcommand's --help shows its example line, `aknet prepare <sub> --root ...`."""
    for sub, first in (("sthv1", "--root"), ("sthv2", "--root"), ("diving48", "--root"), ("synthetic", "--out"),
                       ("folder", "--root"), ("list", "--train")):
        result = runner.invoke(app, ["prepare", sub, "--help"], env=WIDE)
        assert result.exit_code == 0 and "aknet prepare" in result.output
        examples = [line.strip(" │") for line in result.output.splitlines() if line.strip(" │").startswith("aknet prepare")]
        assert any(line.startswith(f"aknet prepare {sub} {first} ") for line in examples), result.output


def _commands(command, path=()):
    yield path, command
    if hasattr(command, "commands"):  # a group
        for name, sub in command.commands.items():
            yield from _commands(sub, path + (name,))


def test_every_help_keeps_all_of_its_text():
    """Markdown help must not eat text: `<id>/00001.jpg` rendered as an HTML tag vanished."""
    import re

    import typer

    root = typer.main.get_command(app)
    checked = 0
    for path, command in _commands(root):
        texts = [command.help or ""] + [p.help or "" for p in command.params if p.param_type_name == "option"]
        result = runner.invoke(app, [*path, "--help"], env=WIDE)
        assert result.exit_code == 0, (path, result.output)
        shown = " ".join(result.output.replace("│", " ").split())
        for text in texts:
            for tag in re.findall(r"<[A-Za-z_][^<>\s]*>", text):
                assert tag in shown, f"aknet {' '.join(path)} --help lost {tag!r}"
            for word in re.findall(r"[A-Za-z][A-Za-z0-9_]{2,}", text):
                assert word in shown, f"aknet {' '.join(path)} --help lost {word!r}"
            checked += 1
    assert checked > 20


def test_cli_and_prepare_path_do_not_import_torch(tmp_path):
    """`aknet prepare` (and its error exits) must start without torch, which costs seconds."""
    import subprocess
    import sys

    script = f"""
import sys
from aknet_cli.cli.main import app
import aknet_cli.data, aknet_cli.data.formats, aknet_cli.data.prepare, aknet_cli.data.video_io, aknet_cli.data.synthetic
for args in (["prepare", "--help"], ["prepare", "sthv1", "--help"], ["backbones", "--json"],
             ["prepare", "sthv1", "--root", {str(tmp_path / "missing")!r}, "--out", {str(tmp_path / "ds")!r}]):
    try:
        app(args, standalone_mode=False)
    except SystemExit:
        pass
    except Exception as exc:
        assert type(exc).__name__ in ("Exit",), exc
heavy = sorted(m for m in ("torch", "torchvision", "pandas", "av", "decord") if m in sys.modules)
print("heavy:", ",".join(heavy))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "heavy:", result.stdout


def test_malformed_v1_lists_are_one_line(tmp_path):
    root = make_sthv1(tmp_path / "raw")
    args = ["prepare", "sthv1", "--root", str(root), "--frames-dir", "frames", "--out", str(tmp_path / "ds")]
    train = root / "something-something-v1-train.csv"
    for text, line in (("1;Moving something up\n2 Holding something\n", 2),  # no ';'
                       ("1,Moving something up\n2,Moving something up\n", 1)):  # comma-separated
        train.write_text(text)
        result = runner.invoke(app, args)
        assert_one_line_error(result, "something-something-v1-train.csv", f"line {line}", "'id;label'")


def test_root_that_is_a_file(tmp_path):
    afile = tmp_path / "release.tar"
    afile.write_text("x")
    result = runner.invoke(app, ["prepare", "diving48", "--root", str(afile), "--out", str(tmp_path / "ds")])
    assert_one_line_error(result, "release.tar", "is a file, not a folder")


def test_strict_names_the_file_with_its_extension(tmp_path):
    root = make_diving48(tmp_path / "raw")
    (root / "rgb" / "a.mp4").write_text("not a video")
    result = runner.invoke(app, ["prepare", "diving48", "--root", str(root), "--out", str(tmp_path / "ds"), "--strict", "--json"])
    assert_one_line_error(result, "--strict", str(root / "rgb" / "a.mp4") + ")")


def test_human_readable_summary_lists_skips(tmp_path):
    root = make_diving48(tmp_path / "raw")
    (root / "rgb" / "a.mp4").write_text("not a video")
    result = runner.invoke(app, ["prepare", "diving48", "--root", str(root), "--out", str(tmp_path / "ds")], env=WIDE)
    assert result.exit_code == 0, result.output
    lines = [" ".join(line.replace("│", " ").split()) for line in result.output.splitlines()]
    assert f"Prepared {tmp_path / 'ds'} (2 classes)" in lines
    assert "train 1" in lines and "val 1" in lines  # a.mp4 (train) skipped, b kept; c in val
    assert f"skipped 1 clip (details in {tmp_path / 'ds' / 'skipped.csv'}):" in lines
    reason = next(line for line in lines if line.startswith("1 undecodable video"))
    assert str(root / "rgb" / "a.mp4") in reason


def test_forgotten_frames_dir_names_the_dominant_reason_and_writes_skipped_csv(tmp_path):
    root = make_sthv1(tmp_path / "raw")
    with open(root / "something-something-v1-validation.csv", "a") as handle:
        handle.write("5;Juggling something\n")  # one unknown label among 4 missing folders
    out = tmp_path / "ds"
    result = runner.invoke(app, ["prepare", "sthv1", "--root", str(root), "--out", str(out), "--json"])
    assert_one_line_error(result, "4 of 5 skipped as missing frame folder", "--frames-dir", "skipped.csv")
    rows = (out / "skipped.csv").read_text().splitlines()
    assert rows[0] == "split,id,kind,reason" and len(rows) == 6
    assert not (out / "dataset.json").exists()
    # Fixing the option needs no --force: the lone skipped.csv is prepare's own.
    result = runner.invoke(app, ["prepare", "sthv1", "--root", str(root), "--frames-dir", "frames", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["skipped_reasons"] == {"unknown label": 1}


# ------------------------------------------------------------------- users' own data (issue 22)
def test_prepare_folder_prints_the_per_class_split_table(tmp_path):
    from user_data_fixtures import make_video_tree

    root = make_video_tree(tmp_path / "clips", per_class=(5, 4, 3))
    result = runner.invoke(app, ["prepare", "folder", "--root", str(root), "--out", str(tmp_path / "ds"),
                                 "--val-fraction", "0.25", "--workers", "1"], env=WIDE)
    assert result.exit_code == 0, result.output
    rows = [" ".join(line.replace("│", " ").split()) for line in result.stdout.splitlines()]
    assert "0 Clap 2 1" in rows and "1 jump 3 1" in rows and "2 wave 4 1" in rows and "total 9 3" in rows
    result = runner.invoke(app, ["prepare", "folder", "--root", str(root), "--out", str(tmp_path / "ds"),
                                 "--val-fraction", "0.25", "--json"])
    payload = json.loads(result.stdout)
    assert payload["splits"] == {"train": 9, "val": 3}
    assert payload["per_class"]["val"] == {"Clap": 1, "jump": 1, "wave": 1}


def test_prepare_list_says_which_format_it_read(tmp_path):
    from user_data_fixtures import make_frame_tree, write_list

    media = make_frame_tree(tmp_path / "rawframes", per_class=(2, 2, 2))
    train = write_list(tmp_path / "train.txt", ["wave/wave_0 4 0", "jump/jump_0 4 1", "Clap/Clap_0 4 2"])
    val = write_list(tmp_path / "val.txt", ["wave/wave_1 5 0"])
    result = runner.invoke(app, ["prepare", "list", "--train", str(train), "--val", str(val),
                                 "--media-root", str(media), "--out", str(tmp_path / "ds")], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "frame list (frame_dir total_frames label), 3 clips" in result.stdout
    assert "img_{:05d}.jpg" in result.stdout


def _folder_with(tmp_path, mistake):
    from user_data_fixtures import make_video_tree

    root = make_video_tree(tmp_path / "clips", per_class=(2, 2, 2))
    if mistake == "empty class":
        (root / "dance").mkdir()
    elif mistake == "unreadable class":
        for clip in (root / "jump").iterdir():
            clip.write_bytes(f"not a video: {clip.name}".encode())
    return ["prepare", "folder", "--root", str(root), "--out", str(tmp_path / "ds"), "--json"]  # no progress bar


def _lists_with(tmp_path, line):
    from user_data_fixtures import make_video_tree, write_list

    media = make_video_tree(tmp_path / "videos", per_class=(2, 2, 2))
    train = write_list(tmp_path / "train.txt", ["wave/wave_0.mp4 0", line])
    val = write_list(tmp_path / "val.txt", ["jump/jump_0.mp4 1"])
    labels = write_list(tmp_path / "labels.txt", ["wave", "jump", "Clap"])
    return ["prepare", "list", "--train", str(train), "--val", str(val), "--media-root", str(media),
            "--labels", str(labels), "--out", str(tmp_path / "ds"), "--json"]


@pytest.mark.parametrize("make, arg, fragment", [
    (_folder_with, "empty class", "dance is empty"),
    (_folder_with, "unreadable class", "class 'jump' has no readable clip"),
    (_lists_with, "wave/wave_1.mp4", "line 2 has 1 field(s)"),
    (_lists_with, "wave/wave_1.mp4 5", "unknown label index 5"),
    (_lists_with, "../../etc/x.mp4 0", "is outside --media-root"),
    (_lists_with, "jump/jump_0.mp4 1", "is in both train"),
])
def test_bad_own_data_is_one_line(tmp_path, make, arg, fragment):
    from user_data_fixtures import tree_digest

    args = make(tmp_path, arg)
    media = tmp_path / ("clips" if make is _folder_with else "videos")
    before = tree_digest(media)
    result = runner.invoke(app, args)
    assert_one_line_error(result, fragment)
    assert tree_digest(media) == before


def _sthv1_edit(edit):
    def make(tmp_path):
        root = make_sthv1(tmp_path / "raw")
        edit(root)
        return root
    return make


@pytest.mark.parametrize(("make", "split", "why"), [
    (_sthv1_edit(lambda r: (r / "something-something-v1-validation.csv").write_text("")), "val", "lists no clips"),
    (_sthv1_edit(lambda r: [f.unlink() for f in (r / "frames" / "4").iterdir()]), "val", "all 1 of its clips were skipped"),
    (_sthv1_edit(lambda r: (r / "something-something-v1-train.csv").write_text("")), "train", "lists no clips"),
], ids=["an empty val list", "every val clip unreadable", "an empty train list"])
def test_a_release_prepared_with_an_empty_train_or_val_split_says_so(tmp_path, make, split, why):
    """The dataset is written (its other splits may be all the user wants) but training would
    refuse it: the summary says so in a warning line, and --json lists it."""
    root = make(tmp_path)
    args = ["prepare", "sthv1", "--root", str(root), "--frames-dir", "frames", "--out", str(tmp_path / "ds")]
    result = runner.invoke(app, args, env=WIDE)
    assert result.exit_code == 0, result.output
    warning = next(line for line in result.output.splitlines() if line.startswith("warning:"))
    assert f"the {split} split is empty" in warning and why in warning
    assert (tmp_path / "ds" / f"{split}.csv").read_text().count("\n") == 1  # the header alone
    payload = json.loads(runner.invoke(app, args + ["--json", "--force"]).stdout)
    assert payload["splits"][split] == 0 and any(f"the {split} split is empty" in w for w in payload["warnings"])
