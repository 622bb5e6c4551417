"""Readers of the three official layouts and the shared prepare step, incl. malformed releases."""

import contextlib
import json
import shutil

import pandas as pd
import pytest
from data_fixtures import V1_NAMES, make_diving48, make_sthv1, make_sthv2, tiny_clip, video_backends

from aknet_cli.data.formats import read_diving48, read_sthv1, read_sthv2
from aknet_cli.data.manifest import flip_map, load_manifest
from aknet_cli.data.prepare import MAX_CHUNK, TASK_DESCRIPTION, chunk_ranges, prepare_release, progress_bar
from aknet_cli.data.synthetic import CLASS_NAMES, REVERSED_PAIRS, SynthConfig, prepare_synthetic, write_video
from aknet_cli.exceptions import ConfigError, DataError
from sthsth_names import STHSTH_SORTED


def test_flip_pairs_of_the_official_sthsth_classes():
    assert len(STHSTH_SORTED) == 174
    assert flip_map(sorted(STHSTH_SORTED)) == {86: 87, 87: 86, 93: 94, 94: 93, 166: 167, 167: 166}


def test_sthv1_sorted_and_file_order(tmp_path):
    root = make_sthv1(tmp_path / "raw")
    summary = prepare_release(read_sthv1(root, frames_dir="frames"), out=tmp_path / "ds", workers=2)
    assert summary.splits == {"train": 3, "val": 1} and not summary.skipped
    manifest = load_manifest(tmp_path / "ds")
    assert manifest.classes == sorted(V1_NAMES) and manifest.data["label_order"] == "sorted"
    assert manifest.flip_map == {1: 2, 2: 1}
    assert manifest.data["frame_template"] == "{:05d}.jpg" and manifest.start_index == 1
    train = pd.read_csv(tmp_path / "ds" / "train.csv")
    assert train["num_frames"].tolist() == [6, 6, 6]
    assert train["label"].tolist() == [2, 0, 1]  # sorted: Moving, Pushing l->r, Pushing r->l
    prepare_release(read_sthv1(root, frames_dir="frames"), out=tmp_path / "file", label_order="file")
    assert pd.read_csv(tmp_path / "file" / "train.csv")["label"].tolist() == [0, 1, 2]
    assert load_manifest(tmp_path / "file").flip_map == {0: 2, 2: 0}


def test_rerun_is_idempotent_and_other_dataset_needs_force(tmp_path):
    root = make_sthv1(tmp_path / "raw")
    out = tmp_path / "ds"
    prepare_release(read_sthv1(root, frames_dir="frames"), out=out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    prepare_release(read_sthv1(root, frames_dir="frames"), out=out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    other = make_sthv1(tmp_path / "raw2")
    with pytest.raises(DataError, match="different dataset"):
        prepare_release(read_sthv1(other, frames_dir="frames"), out=out)
    prepare_release(read_sthv1(other, frames_dir="frames"), out=out, force=True)
    with pytest.raises(ConfigError, match="inside --root"):
        prepare_release(read_sthv1(root, frames_dir="frames"), out=root / "ds")


def test_sthv1_skips_are_counted_and_strict_fails(tmp_path):
    root = make_sthv1(tmp_path / "raw")
    shutil.rmtree(root / "frames" / "2")
    for f in (root / "frames" / "3").iterdir():
        f.unlink()
    with open(root / "something-something-v1-validation.csv", "a") as handle:
        handle.write("5;Juggling something\n")
    summary = prepare_release(read_sthv1(root, frames_dir="frames"), out=tmp_path / "ds")
    kinds = {(r["id"], r["kind"]) for r in summary.skipped}
    assert kinds == {("2", "missing frame folder"), ("3", "empty frame folder"), ("5", "unknown label")}
    skipped = pd.read_csv(tmp_path / "ds" / "skipped.csv", dtype=str)
    assert {"split", "id", "reason"} <= set(skipped.columns) and len(skipped) == 3
    with pytest.raises(DataError, match="--strict"):
        prepare_release(read_sthv1(root, frames_dir="frames"), out=tmp_path / "ds2", strict=True)


def test_missing_annotation_file_is_named(tmp_path):
    root = make_sthv1(tmp_path / "raw")
    (root / "something-something-v1-labels.csv").unlink()
    with pytest.raises(DataError, match="something-something-v1-labels.csv"):
        read_sthv1(root, frames_dir="frames")


@pytest.mark.parametrize("backend", video_backends())
def test_sthv2_templates_test_split_and_bad_videos(tmp_path, backend):
    root = make_sthv2(tmp_path / "raw")
    (root / "11.webm").write_bytes(b"")  # zero-byte
    summary = prepare_release(read_sthv2(root), out=tmp_path / "ds", workers=2, backend=backend)
    assert summary.splits == {"train": 1, "val": 1, "test": 1}
    assert [r["kind"] for r in summary.skipped] == ["zero-byte video"]
    test = pd.read_csv(tmp_path / "ds" / "test.csv")
    assert test["label"].tolist() == [-1] and test["num_frames"].tolist() == [8]
    assert pd.read_csv(tmp_path / "ds" / "train.csv")["path"].tolist() == ["10.webm"]


@pytest.mark.parametrize("backend", video_backends())
def test_diving48_with_truncated_and_fake_videos(tmp_path, backend):
    root = make_diving48(tmp_path / "raw")
    data = (root / "rgb" / "a.mp4").read_bytes()
    (root / "rgb" / "a.mp4").write_bytes(data[: len(data) // 2])  # truncated: moov atom lost
    (root / "rgb" / "b.mp4").write_text("this is not a video\n")
    summary = prepare_release(read_diving48(root), out=tmp_path / "ds", backend=backend)
    assert summary.splits == {"train": 0, "val": 1}
    assert {r["id"] for r in summary.skipped} == {"a", "b"}
    manifest = load_manifest(tmp_path / "ds")
    assert manifest.classes == ["Back 15som 05Twis FREE", "Forward 25som NoTwis PIKE"]
    assert manifest.flip_map == {} and manifest.data["label_order"] == "file"
    val = pd.read_csv(tmp_path / "ds" / "val.csv")
    assert val[["num_frames", "label", "start_frame", "end_frame"]].values.tolist() == [[8, 1, 0, 7]]


@pytest.mark.parametrize("backend", video_backends())
def test_truncated_mid_stream_webm_is_skipped(tmp_path, backend):
    path = tmp_path / "long.webm"
    write_video(path, tiny_clip(40), fps=10, codec="libvpx")
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 5])
    from aknet_cli.data.video_io import count_video_frames
    from aknet_cli.exceptions import VideoDecodeError

    with pytest.raises(VideoDecodeError, match="long.webm"):
        count_video_frames(path, backend=backend)


def test_diving48_unknown_label_index(tmp_path):
    root = make_diving48(tmp_path / "raw")
    records = json.loads((root / "Diving48_V2_train.json").read_text())
    records[0]["label"] = 99
    (root / "Diving48_V2_train.json").write_text(json.dumps(records))
    summary = prepare_release(read_diving48(root), out=tmp_path / "ds")
    assert [(r["id"], r["kind"]) for r in summary.skipped] == [("a", "unknown label")]


def test_diving48_record_whose_start_frame_is_after_its_end_frame_is_skipped_with_its_reason(tmp_path):
    """Such a record names no frame at all; an equal start and end (one frame) is kept."""
    root = make_diving48(tmp_path / "raw")
    records = json.loads((root / "Diving48_V2_train.json").read_text())
    records[0].update(start_frame=3, end_frame=0)
    records[1].update(start_frame=2, end_frame=2)
    (root / "Diving48_V2_train.json").write_text(json.dumps(records))
    summary = prepare_release(read_diving48(root), out=tmp_path / "ds")
    assert [(r["id"], r["kind"], r["reason"]) for r in summary.skipped] == [
        (records[0]["vid_name"], "bad annotation", "start_frame 3 after end_frame 0 in Diving48_V2_train.json")]


def test_diving48_label_written_as_a_string(tmp_path):
    root = make_diving48(tmp_path / "raw")
    records = json.loads((root / "Diving48_V2_train.json").read_text())
    records[0]["label"], records[1]["label"] = "0", "1"
    (root / "Diving48_V2_train.json").write_text(json.dumps(records))
    summary = prepare_release(read_diving48(root), out=tmp_path / "ds")
    assert not summary.skipped
    assert pd.read_csv(tmp_path / "ds" / "train.csv")["label"].tolist() == [0, 1]


def test_frame_numbering_gap_is_skipped(tmp_path):
    root = make_sthv1(tmp_path / "raw")
    (root / "frames" / "1" / "00003.jpg").unlink()  # 1, 2, 4, 5, 6
    (root / "frames" / "3" / "00001.jpg").rename(root / "frames" / "3" / "00007.jpg")  # starts at 2
    summary = prepare_release(read_sthv1(root, frames_dir="frames"), out=tmp_path / "ds")
    assert sorted((r["id"], r["kind"]) for r in summary.skipped) == [("1", "frame numbering"), ("3", "frame numbering")]
    assert summary.splits == {"train": 1, "val": 1}


def test_duplicate_v1_class_is_an_error(tmp_path):
    root = make_sthv1(tmp_path / "raw")
    (root / "something-something-v1-labels.csv").write_text("".join(n + "\n" for n in V1_NAMES + [V1_NAMES[1]]))
    with pytest.raises(DataError, match=f"something-something-v1-labels.csv lists the class '{V1_NAMES[1]}' twice"):
        prepare_release(read_sthv1(root, frames_dir="frames"), out=tmp_path / "ds")


@pytest.mark.parametrize("indices", [["0", "2"], ["1", "2"], ["0", "0"], ["0", "x"]])
def test_v2_label_indices_must_be_0_to_n(tmp_path, indices):
    root = make_sthv2(tmp_path / "raw", frames=4)
    names = ["Moving something up", "Putting something onto something"]
    (root / "something-something-v2-labels.json").write_text(json.dumps(dict(zip(names, indices))))
    with pytest.raises(DataError, match=r"something-something-v2-labels\.json (class indices are not 0\.\.1|entry .*'x' is not an integer)"):
        read_sthv2(root)


def test_process_pool_gives_the_same_dataset(tmp_path):
    root = make_diving48(tmp_path / "raw")
    records = json.loads((root / "Diving48_V2_train.json").read_text())
    for number in range(22):  # 25 clips in all: enough for two processes
        name = f"v{number}"
        records.append({"vid_name": name, "label": number % 2, "start_frame": 0, "end_frame": 3})
        if number != 9:  # v9 stays missing: a skip found in a worker process
            write_video(root / "rgb" / f"{name}.mp4", tiny_clip(3 + number % 4), fps=10, codec="mpeg4")
    (root / "Diving48_V2_train.json").write_text(json.dumps(records))
    (root / "rgb" / "v5.mp4").write_text("not a video")
    one = prepare_release(read_diving48(root), out=tmp_path / "one", workers=1)
    two = prepare_release(read_diving48(root), out=tmp_path / "two", workers=2)
    assert one.splits == two.splits == {"train": 22, "val": 1}
    assert [(r["id"], r["kind"]) for r in two.skipped] == [("v5", "undecodable video"), ("v9", "missing video")]
    for name in ("train.csv", "val.csv", "skipped.csv"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    frames = pd.read_csv(tmp_path / "two" / "train.csv", dtype={"id": str}).set_index("id")["num_frames"]
    assert frames["a"] == 8 and all(frames[f"v{n}"] == 3 + n % 4 for n in range(22) if n not in (5, 9))
    # Workers finish in any order: --strict stops at whichever bad clip is found first.
    with pytest.raises(DataError, match=r"--strict: train clip (v5 .*v5|v9 .*v9)\.mp4\)"):
        prepare_release(read_diving48(root), out=tmp_path / "strict", workers=2, strict=True)
    assert chunk_ranges(220_000, 16)[0] == range(0, MAX_CHUNK) and len(chunk_ranges(10, 2)) == 5


def test_a_finished_progress_bar_shows_the_average_rate():
    """Rich's speed is over the last few advances; when they land together at the end it reads
    thousands of clips/s for a count that took seconds."""
    import io

    from rich.console import Console
    from rich.progress import ProgressSample

    with progress_bar(Console(file=io.StringIO(), width=80)) as progress:
        task = progress.add_task(TASK_DESCRIPTION.format(name="folder"), total=4)
        progress.update(task, completed=4)
        t = progress.tasks[0]
        t.start_time, t.stop_time = 0.0, 2.0  # 4 clips in 2 s
        t._progress.clear()
        t._progress.extend([ProgressSample(1.9999, 1), ProgressSample(2.0, 1)])  # 20,000 clips/s "now"
        console = Console(file=io.StringIO(), width=80, color_system=None)
        console.print(progress.make_tasks_table(progress.tasks))
    assert "2 clips/s" in console.file.getvalue() and "20,000" not in console.file.getvalue()


def test_progress_bar_fits_80_columns():
    import io

    from rich.console import Console
    from rich.progress import ProgressSample

    with progress_bar(Console(file=io.StringIO(), width=80)) as progress:
        task = progress.add_task(TASK_DESCRIPTION.format(name="diving48"), total=220_000)
        progress.update(task, completed=123_456)
        progress.tasks[0]._progress.clear()
        progress.tasks[0]._progress.extend([ProgressSample(0.0, 0), ProgressSample(0.1, 1234)])  # 12,340 clips/s
        console = Console(file=io.StringIO(), width=80, color_system=None)
        console.print(progress.make_tasks_table(progress.tasks))
    text = console.file.getvalue()
    assert "123456/220000" in text and "12,340 clips/s" in text and "eta" in text
    assert len(text.rstrip("\n").splitlines()) == 1, text


def test_progress_bar_stays_when_done_and_goes_on_an_error():
    """Piped output (no terminal): a finished count is printed once; a run that fails leaves only
    its error line, not a bar stopped at 0/8 above it."""
    import io

    from rich.console import Console

    def run(fail: bool) -> str:
        console = Console(file=io.StringIO(), width=80, color_system=None)
        with pytest.raises(DataError) if fail else contextlib.nullcontext():
            with progress_bar(console) as progress:
                task = progress.add_task(TASK_DESCRIPTION.format(name="sthv1"), total=8)
                progress.advance(task, 3)
                if fail:
                    raise DataError("--strict: clip 4 is missing")
                progress.advance(task, 5)
        return console.file.getvalue()

    assert "8/8" in run(fail=False)
    assert run(fail=True).strip() == ""


def test_synth_reversed_pairs_follow_the_label_order(tmp_path):
    config = SynthConfig(classes=12, train_per_class=1, val_per_class=1, test_per_class=1, size=32, frames=4)
    prepare_synthetic(config, out=tmp_path / "s")
    manifest = load_manifest(tmp_path / "s")
    expected = {(CLASS_NAMES[a], CLASS_NAMES[b]) for a, b in REVERSED_PAIRS}  # the generator's own pairs
    assert {tuple(p) for p in manifest.data["reversed_pairs"]} == expected
    pairs = manifest.reversed_pairs
    assert all(isinstance(a, int) and isinstance(b, int) for a, b in pairs)
    assert {(manifest.classes[a], manifest.classes[b]) for a, b in pairs} == expected
    # Sorted label order moves them off 0-9 (issue 7): hand-checked against the sorted names.
    assert sorted(tuple(sorted(p)) for p in pairs) == [(0, 1), (2, 6), (3, 7), (4, 5), (10, 11)]
    # A pair is only recorded when both classes exist, and real releases have none.
    prepare_synthetic(SynthConfig(classes=5, train_per_class=1, val_per_class=1, test_per_class=1, size=32, frames=4), out=tmp_path / "five")
    assert {tuple(sorted(load_manifest(tmp_path / "five").classes[i] for i in p))
            for p in load_manifest(tmp_path / "five").reversed_pairs} == {tuple(sorted(CLASS_NAMES[i] for i in p))
                                                                         for p in REVERSED_PAIRS[:2]}
    root = make_sthv1(tmp_path / "raw")
    prepare_release(read_sthv1(root, frames_dir="frames"), out=tmp_path / "v1")
    assert load_manifest(tmp_path / "v1").data["reversed_pairs"] == [] and load_manifest(tmp_path / "v1").reversed_pairs == []


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_synth_seed_outside_numpys_range_is_one_line(tmp_path, seed):
    with pytest.raises(ConfigError, match=f"--seed must be between 0 and 4294967295, got {seed}"):
        prepare_synthetic(SynthConfig(classes=2, train_per_class=1, val_per_class=1, size=32, frames=4, seed=seed),
                          out=tmp_path / "s")
    assert not (tmp_path / "s").exists()
