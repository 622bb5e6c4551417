"""Issue 22: users' own data, a folder per class or mmaction2 lists, through the same prepare step."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from user_data_fixtures import (CLASSES, make_frame_tree, make_video_tree, tree_digest, write_list,
                                write_named_frames, write_user_video)

from aknet_cli.data import VideoDataset, load_manifest
from aknet_cli.data.formats import read_folder, read_lists
from aknet_cli.data.formats._user import infer_frame_naming
from aknet_cli.data.prepare import prepare_release
from aknet_cli.exceptions import ConfigError, DataError

SORTED = sorted(CLASSES)  # ["Clap", "jump", "wave"]


def _table(ds, split):
    return pd.read_csv(ds / f"{split}.csv", dtype={"id": str, "path": str})


# ----------------------------------------------------------------------------- folder layout
def test_folder_of_videos_classes_sorted_and_stratified_split(tmp_path):
    root = make_video_tree(tmp_path / "clips", per_class=(5, 4, 3))  # wave 5, jump 4, Clap 3
    before = tree_digest(root)
    summary = prepare_release(read_folder(root, val_fraction=0.25, seed=1), out=tmp_path / "ds")
    manifest = load_manifest(tmp_path / "ds")
    assert manifest.classes == SORTED and manifest.data["label_order"] == "sorted"
    assert manifest.flip_map == {} and manifest.media == "video"
    counts = {"Clap": 3, "jump": 4, "wave": 5}
    train, val = _table(tmp_path / "ds", "train"), _table(tmp_path / "ds", "val")
    for table in (train, val):  # every clip is labelled with its folder's class
        assert all(SORTED[label] == path.split("/")[0] for path, label in zip(table["path"], table["label"]))
    for name, n in counts.items():  # round(0.25 n) per class, at least one
        expected = max(1, math.floor(0.25 * n + 0.5))
        assert (val["path"].str.split("/").str[0] == name).sum() == expected
    assert len(train) + len(val) == 12 and not set(train["id"]) & set(val["id"])
    assert summary.per_class == {"train": [2, 3, 4], "val": [1, 1, 1]}
    assert train["num_frames"].tolist() == [6 + int(p.split("_")[-1][0]) for p in train["path"]]
    assert tree_digest(root) == before  # read-only


def test_folder_split_is_reproducible_and_per_class(tmp_path):
    root = make_video_tree(tmp_path / "clips", per_class=(6, 6, 6))

    def val_ids(seed, **kw):
        release = read_folder(root, val_fraction=0.5, seed=seed, **kw)
        return sorted(e.id for e in release.splits["val"])

    before = val_ids(0)
    assert val_ids(0) == before
    assert val_ids(1) != before
    # Another class appearing does not move the existing classes' clips.
    write_user_video(root / "aaa" / "x.mp4", frames=6, tint=200)
    write_user_video(root / "aaa" / "y.mp4", frames=6, tint=201)
    assert [i for i in val_ids(0) if not i.startswith("aaa/")] == before


def test_single_clip_class_stays_in_train_with_a_note(tmp_path):
    root = make_video_tree(tmp_path / "clips", per_class=(3, 3, 1))
    release = read_folder(root)
    assert [e.id for e in release.splits["val"] if e.label == "Clap"] == []
    assert any("single clip" in note and "Clap" in note for note in release.notes)


@pytest.mark.parametrize("template, start", [("img_{:05d}.jpg", 1), ("{:06d}.png", 0), ("frame{:d}.jpg", 1)])
def test_folder_of_frame_folders_with_their_naming(tmp_path, template, start):
    root = make_frame_tree(tmp_path / "frames", per_class=(3, 2, 2), template=template, start=start)
    summary = prepare_release(read_folder(root, val_fraction=0.4), out=tmp_path / "ds")
    manifest = load_manifest(tmp_path / "ds")
    assert (manifest.frame_template, manifest.start_index) == (template, start)
    assert not summary.skipped and summary.splits == {"train": 4, "val": 3}
    table = pd.concat([_table(tmp_path / "ds", "train"), _table(tmp_path / "ds", "val")])
    assert sorted(table["num_frames"]) == sorted(4 + int(p[-1]) for p in table["path"])
    clip, label = VideoDataset(tmp_path / "ds", "train", num_segments=2)[0]
    assert clip.shape == (2, 3, 224, 224)


def test_frame_naming_is_read_off_the_files(tmp_path):
    write_named_frames(tmp_path / "a", 12, template="img_{:05d}.jpg")
    (tmp_path / "a" / "cover.jpg").write_bytes(b"")  # a stray file does not change the naming
    assert infer_frame_naming(tmp_path / "a") == ("img_{:05d}.jpg", 1)
    write_named_frames(tmp_path / "b", 12, template="{:d}.png", start=0)  # 0..11: two widths, no padding
    assert infer_frame_naming(tmp_path / "b") == ("{:d}.png", 0)
    (tmp_path / "c").mkdir()
    assert infer_frame_naming(tmp_path / "c") is None


def test_folder_with_a_val_root(tmp_path):
    make_video_tree(tmp_path / "data" / "train", per_class=(2, 2, 2))
    val_root = tmp_path / "data" / "val"
    write_user_video(val_root / "jump" / "j9.mp4", frames=7, tint=99)
    summary = prepare_release(read_folder(tmp_path / "data" / "train", val_root=val_root), out=tmp_path / "ds")
    assert summary.splits == {"train": 6, "val": 1}
    manifest = load_manifest(tmp_path / "ds")
    assert manifest.media_root == (tmp_path / "data").resolve()
    assert _table(tmp_path / "ds", "val")[["path", "label"]].values.tolist() == [["val/jump/j9.mp4", 1]]
    assert (manifest.media_root / _table(tmp_path / "ds", "train")["path"][0]).is_file()


def test_flip_map_from_class_name_pairs(tmp_path):
    root = make_video_tree(tmp_path / "clips", per_class=(2, 2, 2))
    (tmp_path / "flip.csv").write_text("wave,Clap\n")
    prepare_release(read_folder(root, flip_map=tmp_path / "flip.csv"), out=tmp_path / "ds")
    assert load_manifest(tmp_path / "ds").flip_map == {0: 2, 2: 0}  # Clap=0 <-> wave=2
    (tmp_path / "flip.json").write_text(json.dumps([["wave", "Running"]]))
    with pytest.raises(DataError, match=r"flip.json entry 1: 'Running' is not one of the dataset's classes"):
        read_folder(root, flip_map=tmp_path / "flip.json")
    for pairs, twice in (([["wave", "wave"]], "wave"), ([["wave", "Clap"], ["jump", "Clap"]], "Clap")):
        (tmp_path / "flip.json").write_text(json.dumps(pairs))
        with pytest.raises(DataError, match=rf"flip.json entry {len(pairs)}: '{twice}' is paired again or with itself"):
            read_folder(root, flip_map=tmp_path / "flip.json")


# ----------------------------------------------------------------------------- folder: bad input
def test_empty_class_folder_is_an_error(tmp_path):
    root = make_video_tree(tmp_path / "clips", per_class=(2, 2, 2))
    (root / "empty").mkdir()
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("x")
    with pytest.raises(DataError, match=r"class folder .*empty is empty: it holds no video files"):
        read_folder(root)
    (root / "empty").rmdir()
    with pytest.raises(DataError, match=r"class folder .*notes is empty \(only 1 other files, e.g. readme.txt\)"):
        read_folder(root)


def test_class_with_no_readable_clip_is_an_error(tmp_path):
    root = make_video_tree(tmp_path / "clips", per_class=(2, 2, 2))
    for clip in (root / "jump").iterdir():
        clip.write_bytes(f"not a video: {clip.name}".encode())
    with pytest.raises(DataError, match=r"class 'jump' has no readable clip \(2 skipped, e.g. "):
        prepare_release(read_folder(root), out=tmp_path / "ds")
    assert not (tmp_path / "ds" / "dataset.json").exists()
    assert len(pd.read_csv(tmp_path / "ds" / "skipped.csv")) == 2  # every reason can be read


def test_class_whose_only_readable_clip_is_in_val_is_an_error(tmp_path):
    """The split is drawn before frames are counted, so an unreadable training clip can leave
    a class with val clips only: a model could never learn it, so it is refused, not prepared."""
    root = make_video_tree(tmp_path / "clips", per_class=(2, 2, 2))
    release = read_folder(root, val_fraction=0.5)
    (train_clip,) = [e for e in release.splits["train"] if e.label == "jump"]
    (root / train_clip.path).write_bytes(b"not a video")
    with pytest.raises(DataError, match=r"class 'jump' has no readable training clip \(1 skipped, e.g. .*"
                                        r"no model could learn it"):
        prepare_release(read_folder(root, val_fraction=0.5), out=tmp_path / "ds")
    assert not (tmp_path / "ds" / "dataset.json").exists()


def test_other_folder_layout_mistakes(tmp_path):
    flat = tmp_path / "flat"
    write_user_video(flat / "a.mp4", frames=6, tint=1)
    with pytest.raises(DataError, match=r"has no class sub-folders \(1 video files sit directly in it"):
        read_folder(flat)
    mixed = make_video_tree(tmp_path / "mixed", per_class=(2, 2, 2))
    write_named_frames(mixed / "wave" / "extra", 4)
    with pytest.raises(DataError, match=r"class folder .*wave mixes 2 video files and 1 frame folders"):
        read_folder(mixed)
    nested = tmp_path / "nested"
    write_user_video(nested / "wave" / "group1" / "a.mp4", frames=6, tint=2)
    with pytest.raises(DataError, match=r"group1 is a folder of videos .*clips must sit directly in their class folder"):
        read_folder(nested)
    root = make_video_tree(tmp_path / "ok", per_class=(2, 2, 2))
    for kw, message in (({"val_fraction": 1.0}, "between 0 and 1"), ({"val_fraction": 0.2, "val_root": root},
                                                                     "not both")):
        with pytest.raises(ConfigError, match=message):
            read_folder(root, **kw)


def test_clip_in_both_train_and_val_is_an_error(tmp_path):
    make_video_tree(tmp_path / "data" / "train", per_class=(2, 2, 2))
    val_root = tmp_path / "data" / "val"
    (val_root / "wave").mkdir(parents=True)
    copy = val_root / "wave" / "renamed.mp4"
    copy.write_bytes((tmp_path / "data" / "train" / "wave" / "wave_1.mp4").read_bytes())
    with pytest.raises(DataError, match=r"train/wave/wave_1.mp4 \(train\) and val/wave/renamed.mp4 \(val\) are the same video"):
        prepare_release(read_folder(tmp_path / "data" / "train", val_root=val_root), out=tmp_path / "ds")
    with pytest.raises(DataError, match=r"clip Clap/Clap_0.mp4 is in both train .* and val .*\(and 5 more\)"):
        prepare_release(read_folder(tmp_path / "data" / "train", val_root=tmp_path / "data" / "train"),
                        out=tmp_path / "ds")


def test_out_inside_the_val_root_is_refused(tmp_path):
    make_video_tree(tmp_path / "train", per_class=(2, 2, 2))
    make_video_tree(tmp_path / "val", per_class=(1, 1, 1), tint=100)
    with pytest.raises(ConfigError, match="inside --root"):
        prepare_release(read_folder(tmp_path / "train", val_root=tmp_path / "val"), out=tmp_path / "val" / "ds")


# ----------------------------------------------------------------------------- list layout
def test_video_list_with_label_names(tmp_path):
    media = make_video_tree(tmp_path / "videos", per_class=(2, 2, 2))
    train = write_list(tmp_path / "train.txt", ["wave/wave_0.mp4 0", "jump/jump_0.mp4 1", "Clap/Clap_0.mp4 2",
                                                 "wave/wave_1.mp4 0"])
    val = write_list(tmp_path / "val.txt", ["jump/jump_1.mp4 1", f"{media}/Clap/Clap_1.mp4 2"])  # absolute, inside
    labels = write_list(tmp_path / "labels.txt", ["waving", "jumping", "clapping"])
    release = read_lists(train=train, val=val, media_root=media, labels=labels)
    assert any("video list (path label), 4 clips" in note for note in release.notes)
    summary = prepare_release(release, out=tmp_path / "ds")
    manifest = load_manifest(tmp_path / "ds")
    assert manifest.classes == ["waving", "jumping", "clapping"] and manifest.data["label_order"] == "file"
    assert _table(tmp_path / "ds", "train")["label"].tolist() == [0, 1, 2, 0]
    assert _table(tmp_path / "ds", "val")["path"].tolist() == ["jump/jump_1.mp4", "Clap/Clap_1.mp4"]
    assert summary.per_class["val"] == [0, 1, 1]


def test_frame_list_without_label_names_and_a_wrong_frame_count(tmp_path):
    media = make_frame_tree(tmp_path / "rawframes", per_class=(2, 2, 2))  # clip i has 4 + i frames
    train = write_list(tmp_path / "train.txt", ["wave/wave_0 4 0", "jump/jump_0 4 3", "Clap/Clap_0 9 1"])
    val = write_list(tmp_path / "val.txt", ["wave/wave_1 5 0"])
    release = read_lists(train=train, val=val, media_root=media)
    assert any("frame list (frame_dir total_frames label), 3 clips" in note for note in release.notes)
    summary = prepare_release(release, out=tmp_path / "ds")
    manifest = load_manifest(tmp_path / "ds")
    assert manifest.classes == ["0", "1", "2", "3"] and manifest.frame_template == "img_{:05d}.jpg"
    assert _table(tmp_path / "ds", "train")["num_frames"].tolist() == [4, 4, 4]  # counted, not listed
    assert any("listed 9, counted 4" in w for w in summary.warnings), summary.warnings


@pytest.mark.parametrize("line, message", [
    ("wave/wave_0.mp4", r"train.txt line 2 has 1 field\(s\) .*expected 'path label'"),
    ("wave/wave_0.mp4 0 1", r"train.txt line 2: wave/wave_0.mp4 is a video with two numbers after it"),
    ("wave/wave_1.mp4 x", r"train.txt line 2: label index 'x' is not an integer"),
    ("wave/wave_1.mp4 2.0", r"train.txt line 2: label index '2.0' is not an integer"),
    ("wave/wave_1.mp4 -1", r"train.txt line 2: label index -1 is negative"),
    ("wave/wave_1.mp4 3", r"train.txt line 2: unknown label index 3 \(--labels .*labels.txt names 3 classes, 0..2\)"),
    ("../elsewhere/a.mp4 0", r"train.txt line 2: ../elsewhere/a.mp4 is outside --media-root"),
    ("/etc/passwd 0", r"train.txt line 2: /etc/passwd is outside --media-root"),
    ("jump/jump_0.mp4 1", r"clip jump/jump_0.mp4 is in both train .*train.txt\) and val .*val.txt\)"),
])
def test_bad_list_lines_are_one_line_errors(tmp_path, line, message):
    media = make_video_tree(tmp_path / "videos", per_class=(2, 2, 2))
    train = write_list(tmp_path / "train.txt", ["wave/wave_0.mp4 0", line])
    val = write_list(tmp_path / "val.txt", ["jump/jump_0.mp4 1"])
    labels = write_list(tmp_path / "labels.txt", ["wave", "jump", "Clap"])
    with pytest.raises(DataError, match=message) as error:
        prepare_release(read_lists(train=train, val=val, media_root=media, labels=labels), out=tmp_path / "ds")
    assert "\n" not in str(error.value)
    assert not (tmp_path / "ds").exists()


def test_lists_of_two_formats_and_other_list_mistakes(tmp_path):
    media = make_frame_tree(tmp_path / "rawframes", per_class=(2, 2, 2))
    train = write_list(tmp_path / "train.txt", ["wave/wave_0 4 0", "jump/jump_0 4 1"])
    val = write_list(tmp_path / "val.txt", ["wave/wave_1 0"])  # a folder in a two-field (video) line
    with pytest.raises(DataError, match=r"val.txt line 1: wave/wave_1 is a folder, but two-field lines are a video list"):
        read_lists(train=train, val=val, media_root=media)
    write_list(val, ["wave/wave_1 5 0", "jump/jump_1 1"])
    with pytest.raises(DataError, match=r"val.txt line 2 has 2 fields but line 1 has 3"):
        read_lists(train=train, val=val, media_root=media)
    write_list(val, ["wave/wave_1 five 0"])
    with pytest.raises(DataError, match=r"val.txt line 1: total_frames 'five' is not a positive integer"):
        read_lists(train=train, val=val, media_root=media)
    write_list(val, [])
    with pytest.raises(DataError, match=r"--val list .*val.txt lists no clips"):
        read_lists(train=train, val=val, media_root=media)
    with pytest.raises(DataError, match=r"--test list .*nope.txt does not exist"):
        read_lists(train=train, val=train, test=tmp_path / "nope.txt", media_root=media)
    videos = make_video_tree(tmp_path / "videos", per_class=(2, 2, 2))
    write_list(val, ["wave/wave_1.mp4 0"])
    with pytest.raises(DataError, match=r"--train .*train.txt is a frame list but --val .*val.txt is a video list"):
        read_lists(train=train, val=val, media_root=videos)
