"""``aknet prepare {sthv1,sthv2,diving48,synthetic,folder,list}`` against broken releases and trees."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .case import CLEAN, OK, USAGE, Case, Outcome
from .checks import all_of, dataset, stdout_json
from .inputs import UNWRITABLE, Inputs
from .parametrize import each_case
from .runner import finish, spawn

pytestmark = pytest.mark.hostile

SKIPPED_ONE = "skipped 1 clip"
V1_SPLITS = {"train": 4, "val": 2}
NAMES = ("Moving something from left to right", "Moving something from right to left")
SYNTH_TINY = ["--classes", "2", "--train-per-class", "2", "--val-per-class", "1", "--test-per-class", "1",
              "--size", "32", "--frames", "4", "--workers", "1"]


def _no_char(char: str, where: str):
    return lambda classes: f"a class name holds {where}: {classes[0]!r}" if any(char in c for c in classes) else None


def _split_counts(**counts: int):
    return stdout_json(lambda d: None if all(d["splits"].get(k) == v for k, v in counts.items()) else f"splits {d['splits']}")


def _output_cases(command: str, argv_for, kind_out: str = "--out") -> list[Case]:
    """The four output locations nobody can use, for a command whose ``argv_for(out)`` writes to ``out``."""
    def afile(d: Path) -> None:
        (d / "taken").write_text("the user's file\n")
    return [
        Case("prepare", f"{command}: {kind_out} is an existing file", argv_for("taken"), CLEAN, ("taken",), setup=afile),
        Case("prepare", f"{command}: {kind_out} under a file", argv_for("taken/sub"), CLEAN, ("taken",), setup=afile),
        Case("prepare", f"{command}: {kind_out} unwritable", argv_for(UNWRITABLE), CLEAN, (UNWRITABLE,)),
    ]


def sthv1_cases(fx: Inputs) -> list[Case]:
    def prep(name: str, *extra: str, out: str = "out") -> list[str]:
        return ["prepare", "sthv1", "--root", fx[f"sthv1_{name}"], "--out", out, "--workers", "1", *extra]

    labels_csv, train_csv = "something-something-v1-labels.csv", "something-something-v1-train.csv"

    def prepared_first(d: Path) -> None:
        subprocess.run([fx.aknet, *prep("good")], cwd=d, capture_output=True, check=True)

    def other_dataset(d: Path) -> None:
        shutil.copytree(fx.path("ds_good_copy"), d / "out")
        data = json.loads((d / "out" / "dataset.json").read_text())
        data["name"] = "someone else's"
        data["root"] = "/elsewhere/release"
        (d / "out" / "dataset.json").write_text(json.dumps(data))

    def users_folder(d: Path) -> None:
        shutil.copytree(fx.path("adir"), d / "out")

    def kept(rel: str):
        return lambda outcome, d: None if (d / rel).is_file() else f"{rel} (the user's file) was deleted"

    return [
        Case("prepare", "sthv1: a clean release", prep("good"), OK, check=dataset("out", splits=V1_SPLITS, classes=2)),
        Case("prepare", "sthv1: --label-order file", prep("good", "--label-order", "file"), OK,
             check=dataset("out", splits=V1_SPLITS, class_test=lambda c: None if c == list(NAMES) else f"order {c}")),
        Case("prepare", "sthv1: CRLF line ends", prep("crlf"), OK,
             check=dataset("out", splits=V1_SPLITS, classes=2, class_test=_no_char("\r", "a carriage return"))),
        Case("prepare", "sthv1: labels file with a UTF-8 BOM", prep("bom"), OK,
             check=dataset("out", splits=V1_SPLITS, classes=2, class_test=_no_char("\ufeff", "the BOM"))),
        Case("prepare", "sthv1: an id repeated with the same label", prep("dup_same_label"), OK, warns=(SKIPPED_ONE,),
             check=dataset("out", splits=V1_SPLITS)),
        Case("prepare", "sthv1: a val clip also in train", prep("leak"), OK, warns=("more than one split",),
             check=dataset("out", splits={"train": 5, "val": 2})),
        Case("prepare", "sthv1: a missing frame folder", prep("clip_missing"), OK, warns=(SKIPPED_ONE,),
             check=dataset("out", splits={"train": 3, "val": 2})),
        Case("prepare", "sthv1: an empty frame folder", prep("clip_empty"), OK, warns=(SKIPPED_ONE,),
             check=dataset("out", splits={"train": 3, "val": 2})),
        Case("prepare", "sthv1: a train row naming an unknown class", prep("unknown_class"), OK, warns=(SKIPPED_ONE,),
             check=dataset("out", splits=V1_SPLITS)),
        Case("prepare", "sthv1: --frames-dir", prep("frames_sub", "--frames-dir", "20bn-something-something-v1"), OK,
             check=dataset("out", splits=V1_SPLITS)),
        Case("prepare", "sthv1: the same --out again", prep("good"), OK, setup=prepared_first,
             check=dataset("out", splits=V1_SPLITS)),
        Case("prepare", "sthv1: --out holds another dataset", prep("good"), CLEAN, ("out", "--force"), setup=other_dataset),
        Case("prepare", "sthv1: --out holds another dataset, --force", prep("good", "--force"), OK, setup=other_dataset,
             check=dataset("out", splits=V1_SPLITS)),
        Case("prepare", "sthv1: --out is the user's own folder", prep("good"), CLEAN, ("out",), setup=users_folder,
             check=kept("out/keep.txt")),
        # --force is what the refusal above offers: the dataset is written beside the user's files, which stay
        Case("prepare", "sthv1: --out is the user's own folder, --force", prep("good", "--force"), OK,
             setup=users_folder, check=all_of(kept("out/keep.txt"), dataset("out", splits=V1_SPLITS, classes=2))),
        Case("prepare", "sthv1: an empty val list", prep("empty_val"), OK, warns=("warning: the val split is empty",),
             check=dataset("out", splits={"train": 4, "val": 0})),
        Case("prepare", "sthv1: every val clip missing", prep("val_missing"), OK,
             warns=("warning: the val split is empty", "skipped 2 clips"), check=dataset("out", splits={"train": 4, "val": 0})),
        Case("prepare", "sthv1: missing --root", ["prepare", "sthv1", "--root", fx["missing"], "--out", "out"], CLEAN, (fx["missing"],)),
        Case("prepare", "sthv1: --root holds no release", ["prepare", "sthv1", "--root", fx["adir"], "--out", "out"], CLEAN, (labels_csv,)),
        Case("prepare", "sthv1: Latin-1 labels file", prep("latin1"), CLEAN, (labels_csv,)),
        Case("prepare", "sthv1: no labels file", prep("no_labels"), CLEAN, (labels_csv,)),
        Case("prepare", "sthv1: no train list", prep("no_train"), CLEAN, (train_csv,)),
        Case("prepare", "sthv1: rows without ';'", prep("no_separator"), CLEAN, (train_csv,)),
        Case("prepare", "sthv1: an id listed with two labels", prep("dup_two_labels"), CLEAN, (train_csv, "1")),
        Case("prepare", "sthv1: an empty class name", prep("empty_class"), CLEAN, (labels_csv,)),
        Case("prepare", "sthv1: a class named twice", prep("dup_class"), CLEAN, (labels_csv,)),
        # every split's clips gone: the release has none to use (no one split is to blame)
        Case("prepare", "sthv1: every clip missing", prep("all_missing"), CLEAN, ("no usable clips", "missing frame folder")),
        Case("prepare", "sthv1: --strict with a missing clip", prep("clip_missing", "--strict"), CLEAN, ("1",)),
        Case("prepare", "sthv1: --frames-dir that does not exist", prep("good", "--frames-dir", "nope"), CLEAN, ("nope",)),
        Case("prepare", "sthv1: --label-order bogus", prep("good", "--label-order", "bogus"), CLEAN, ("bogus",)),
        Case("prepare", "sthv1: --workers 0", prep("good")[:-2] + ["--workers", "0"], CLEAN, ("--workers",)),
        Case("prepare", "sthv1: --out inside --root", prep("good", out=fx["sthv1_good"] + "/prepared"), CLEAN, ("--root",)),
    ] + _output_cases("sthv1", lambda out: prep("good", out=out))


def sthv2_cases(fx: Inputs) -> list[Case]:
    def prep(name: str, *extra: str) -> list[str]:
        return ["prepare", "sthv2", "--root", fx[f"sthv2_{name}"], "--out", "out", "--workers", "1", *extra]

    labels_json, train_json = "something-something-v2-labels.json", "something-something-v2-train.json"
    one_less = dataset("out", splits={"train": 3, "val": 2})
    ok_skip = {"unknown_template": "a template not in the labels file", "null_id": "a null id",
               "zero_byte": "a zero-byte video",
               "truncated": "a truncated video", "audio_only": "an audio-only file", "video_missing": "a missing video"}
    cases = [
        Case("prepare", "sthv2: a clean release", prep("good"), OK, check=dataset("out", splits=V1_SPLITS, classes=2)),
        Case("prepare", "sthv2: --backend decord", prep("good", "--backend", "decord"), OK, check=dataset("out", splits=V1_SPLITS)),
    ]
    for name, what in ok_skip.items():
        cases.append(Case("prepare", f"sthv2: {what}", prep(name), OK, warns=(SKIPPED_ONE,), check=one_less))
    cases.append(Case("prepare", "sthv2: a zero-byte video, decord", prep("zero_byte", "--backend", "decord"), OK,
                      warns=(SKIPPED_ONE,), check=one_less))
    cases.append(Case("prepare", "sthv2: an audio-only file, pyav", prep("audio_only", "--backend", "pyav"), OK,
                      warns=(SKIPPED_ONE,), check=one_less))
    cases += [
        # a record without the key every official record has: not the release's format, so the file is refused
        Case("prepare", "sthv2: a record without a template", prep("no_template"), CLEAN, (train_json, "template")),
        Case("prepare", "sthv2: labels file not JSON", prep("labels_not_json"), CLEAN, (labels_json,)),
        Case("prepare", "sthv2: float label indices", prep("labels_float_index"), CLEAN, (labels_json,)),
        Case("prepare", "sthv2: a word as label index", prep("labels_word_index"), CLEAN, (labels_json, "first")),
        Case("prepare", "sthv2: two classes on one index", prep("labels_dup_index"), CLEAN, (labels_json,)),
        Case("prepare", "sthv2: label indices with a gap", prep("labels_gap"), CLEAN, (labels_json,)),
        Case("prepare", "sthv2: Latin-1 labels file", prep("labels_latin1"), CLEAN, (labels_json,)),
        Case("prepare", "sthv2: an id listed with two labels", prep("dup_two_labels"), CLEAN, (train_json,)),
        Case("prepare", "sthv2: --strict, zero-byte video", prep("zero_byte", "--strict"), CLEAN, ("1.webm",)),
        Case("prepare", "sthv2: --strict, zero-byte video, decord", prep("zero_byte", "--strict", "--backend", "decord"),
             CLEAN, ("1.webm",)),
        Case("prepare", "sthv2: --strict, truncated video, 2 workers",
             prep("truncated")[:-2] + ["--workers", "2", "--strict"], CLEAN, ("1.webm",)),
        Case("prepare", "sthv2: --backend bogus", prep("good", "--backend", "bogus"), CLEAN, ("bogus",)),
    ]
    return cases


def diving48_cases(fx: Inputs) -> list[Case]:
    def prep(name: str, *extra: str) -> list[str]:
        return ["prepare", "diving48", "--root", fx[f"diving48_{name}"], "--out", "out", "--workers", "1", *extra]

    vocab, train = "Diving48_vocab.json", "Diving48_V2_train.json"
    one_less = dataset("out", splits={"train": 3, "val": 2})
    return [
        Case("prepare", "diving48: a clean release", prep("good"), OK, check=dataset("out", splits=V1_SPLITS, classes=2)),
        Case("prepare", "diving48: a zero-byte video", prep("zero_byte"), OK, warns=(SKIPPED_ONE,), check=one_less),
        Case("prepare", "diving48: a truncated video", prep("truncated"), OK, warns=(SKIPPED_ONE,), check=one_less),
        Case("prepare", "diving48: a label past the vocabulary", prep("label_out_of_range"), OK, warns=(SKIPPED_ONE,), check=one_less),
        Case("prepare", "diving48: start_frame after end_frame", prep("start_after_end"), OK, warns=(SKIPPED_ONE,), check=one_less),
        Case("prepare", "diving48: a vocabulary entry twice", prep("vocab_dup"), CLEAN, (vocab,)),
        Case("prepare", "diving48: Latin-1 vocabulary", prep("vocab_latin1"), CLEAN, (vocab,)),
        Case("prepare", "diving48: a float label", prep("label_float"), CLEAN, (train,)),
        Case("prepare", "diving48: a record without vid_name", prep("no_vid_name"), CLEAN, (train, "vid_name")),
        Case("prepare", "diving48: an id listed with two labels", prep("dup_two_labels"), CLEAN, (train,)),
        Case("prepare", "diving48: no rgb folder", prep("no_rgb"), CLEAN, ("rgb",)),
        Case("prepare", "diving48: --strict, zero-byte video", prep("zero_byte", "--strict"), CLEAN, ("1.mp4",)),
    ]


def _digest_tree(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(p.relative_to(root).as_posix().encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def _interrupted_then(case: Case, case_dir: Path, env: dict, aknet: str) -> Outcome:
    """Ctrl-C a bigger generation once its first clips are on disk, then run the case. Big enough
    (2,400 training clips) that the signal lands mid-run on any machine: 240 were written in under
    3 s, before the signal could arrive."""
    first = spawn([aknet, "prepare", "synthetic", "--out", "out", "--classes", "4", "--train-per-class", "600",
                   "--size", "64", "--frames", "8", "--workers", "1"], case_dir, env)
    started = time.monotonic()
    while time.monotonic() - started < 60 and len(list((case_dir / "out").glob("raw/*"))) < 20:
        time.sleep(0.1)
    first.send_signal(signal.SIGINT)  # the process this case started
    interrupted = finish(first, 60, started)
    (case_dir / "interrupted.json").write_text(json.dumps({"rc": interrupted.rc, "lines": interrupted.lines}))
    started = time.monotonic()
    return finish(spawn([aknet, *case.argv], case_dir, env), case.timeout, started)


def _interrupt_was_clean(outcome: Outcome, case_dir: Path):
    first = json.loads((case_dir / "interrupted.json").read_text())
    if first["rc"] in (0, None) or any("Traceback" in line for line in first["lines"]):
        return f"the interrupted run: exit {first['rc']}, {first['lines'][-3:]}"
    return None


def synthetic_cases(fx: Inputs) -> list[Case]:
    def synth(*extra: str, out: str = "out") -> list[str]:
        return ["prepare", "synthetic", "--out", out, *SYNTH_TINY, *extra]

    def with_option(option: str, value: str) -> list[str]:
        argv = synth()
        if option in argv:
            argv[argv.index(option) + 1] = value
        else:
            argv += [option, value]
        return argv

    def made_once(d: Path) -> None:
        subprocess.run([fx.aknet, *synth(out="first")], cwd=d, capture_output=True, check=True)

    def same_bytes(outcome: Outcome, d: Path):
        return None if _digest_tree(d / "first" / "raw") == _digest_tree(d / "out" / "raw") else "the same seed gave other bytes"

    def half_raw(d: Path) -> None:  # what a Ctrl-C used to leave: clips, no generator marker
        shutil.copytree(fx.path("v1_raw"), d / "out" / "raw")
        (d / "out" / "raw" / "synth-sth.json").unlink()
        for name in ("something-something-v1-labels.csv", "something-something-v1-train.csv"):
            (d / "out" / "raw" / name).unlink()

    tiny = dataset("out", splits={"train": 4, "val": 2, "test": 2}, classes=2)
    cases = [
        Case("prepare", "synthetic: tiny sthv1", synth(), OK, check=tiny),
        Case("prepare", "synthetic: tiny sthv2", synth("--format", "sthv2"), OK, check=tiny),
        Case("prepare", "synthetic: tiny diving48", synth("--format", "diving48"), OK, check=tiny),
        Case("prepare", "synthetic: --json", synth("--json"), OK, check=_split_counts(train=4, val=2, test=2)),
        Case("prepare", "synthetic: --test-per-class 0", with_option("--test-per-class", "0"), OK,
             check=dataset("out", splits=V1_SPLITS)),
        Case("prepare", "synthetic: the same seed twice gives the same bytes", synth(), OK, setup=made_once,
             check=all_of(tiny, same_bytes)),
        Case("prepare", "synthetic: interrupted, then again with --force", synth("--force"), OK, run=_interrupted_then,
             check=all_of(tiny, _interrupt_was_clean), timeout=180),
        # clips without the generator's marker cannot be told from the user's own: refused even with --force (an
        # interrupted run leaves its marker now: the case above)
        Case("prepare", "synthetic: a raw folder without the generator's marker, --force", synth("--force"), CLEAN,
             ("--raw", "out/raw"), setup=half_raw, check=lambda o, d: None if (d / "out" / "raw" / "1").is_dir()
             else "the unmarked raw folder was deleted"),
        Case("prepare", "synthetic: --classes 1", with_option("--classes", "1"), CLEAN, ("--classes",)),
        Case("prepare", "synthetic: --classes abc", with_option("--classes", "abc"), USAGE, ("--classes",)),
        Case("prepare", "synthetic: --train-per-class 0", with_option("--train-per-class", "0"), CLEAN, ("--train-per-class",)),
        Case("prepare", "synthetic: --val-per-class 0", with_option("--val-per-class", "0"), CLEAN, ("--val-per-class",)),
        Case("prepare", "synthetic: --size 8", with_option("--size", "8"), CLEAN, ("--size",)),
        Case("prepare", "synthetic: --format avi", with_option("--format", "avi"), CLEAN, ("avi",)),
        Case("prepare", "synthetic: --seed -1", with_option("--seed", "-1"), CLEAN, ("--seed",)),
        Case("prepare", "synthetic: --raw is the user's folder", synth("--raw", fx["adir"]), CLEAN, (fx["adir"],)),
        Case("prepare", "synthetic: --raw unwritable", synth("--raw", UNWRITABLE), CLEAN, (UNWRITABLE,)),
        Case("prepare", "synthetic: no --out", ["prepare", "synthetic", "--classes", "2"], USAGE, ("--out",)),
    ]
    return cases + _output_cases("synthetic", lambda out: synth(out=out))


def folder_cases(fx: Inputs) -> list[Case]:
    def prep(root: str, *extra: str, out: str = "out") -> list[str]:
        return ["prepare", "folder", "--root", fx[root], "--out", out, "--workers", "1", *extra]

    nine = dataset("out", splits={"train": 6, "val": 3}, classes=3)
    return [
        Case("prepare", "folder: class folders of videos", prep("tree"), OK, check=nine),
        Case("prepare", "folder: class folders of frame folders", prep("frames_tree"), OK, check=nine),
        Case("prepare", "folder: --val-root", prep("tree", "--val-root", fx["tree_val"]), OK,
             check=dataset("out", splits={"train": 9, "val": 9}, classes=3)),
        Case("prepare", "folder: hidden files and notes beside the clips", prep("tree_odd_files"), OK,
             check=dataset("out", splits={"train": 6, "val": 3}, classes=3,
                           class_test=lambda c: None if c == ["clap", "jump", "wave"] else f"classes {c}")),
        Case("prepare", "folder: a flip map", prep("tree", "--flip-map", fx["flip_ok"]), OK,
             check=lambda o, d: None if json.loads((d / "out" / "dataset.json").read_text())["flip_map"] == {"0": 2, "2": 0}
             else "flip map not recorded as clap<->wave"),
        *[Case("prepare", f"folder: file names that are not UTF-8, --backend {backend}",
               prep("tree_latin1", "--backend", backend), OK, check=nine) for backend in ("torchcodec", "decord", "pyav")],
        Case("prepare", "folder: an empty root", prep("tree_empty"), CLEAN, (fx["tree_empty"],)),
        Case("prepare", "folder: an empty class folder", prep("tree_empty_class"), CLEAN, ("dance",)),
        Case("prepare", "folder: a clip copied into --val-root", prep("tree", "--val-root", fx["tree_copy_val"]), CLEAN,
             ("copied.mp4",)),
        Case("prepare", "folder: --val-root missing", prep("tree", "--val-root", fx["missing"]), CLEAN, (fx["missing"],)),
        Case("prepare", "folder: --val-fraction 1.5", prep("tree", "--val-fraction", "1.5"), CLEAN, ("--val-fraction",)),
        Case("prepare", "folder: --val-fraction nan", prep("tree", "--val-fraction", "nan"), CLEAN, ("--val-fraction",)),
        Case("prepare", "folder: --val-fraction with --val-root", prep("tree", "--val-fraction", "0.3", "--val-root", fx["tree_val"]),
             CLEAN, ("--val-root",)),
        Case("prepare", "folder: --frame-template without a field", prep("frames_tree", "--frame-template", "img.jpg"), CLEAN,
             ("--frame-template",)),
        Case("prepare", "folder: --start-index -1", prep("frames_tree", "--start-index", "-1"), CLEAN, ("--start-index",)),
        Case("prepare", "folder: --flip-map not JSON", prep("tree", "--flip-map", fx["flip_bad_json"]), CLEAN, (fx["flip_bad_json"],)),
        Case("prepare", "folder: --flip-map names an unknown class", prep("tree", "--flip-map", fx["flip_unknown"]), CLEAN,
             ("moonwalk",)),
        Case("prepare", "folder: --flip-map pairs a class with itself", prep("tree", "--flip-map", fx["flip_self"]), CLEAN, ("clap",)),
        Case("prepare", "folder: --flip-map in Latin-1", prep("tree", "--flip-map", fx["flip_latin1"]), CLEAN, (fx["flip_latin1"],)),
        Case("prepare", "folder: --out inside --root", prep("tree", out=fx["tree"] + "/prepared"), CLEAN, ("--root",)),
        Case("prepare", "folder: missing --root", prep("missing"), CLEAN, (fx["missing"],)),
    ]


def list_cases(fx: Inputs) -> list[Case]:
    def prep(train: str = "train", val: str = "val", *extra: str, out: str = "out", root: str = "tree") -> list[str]:
        return ["prepare", "list", "--train", fx[f"list_{train}"], "--val", fx[f"list_{val}"], "--media-root", fx[root],
                "--out", out, "--workers", "1", *extra]

    nine = dataset("out", splits={"train": 5, "val": 3}, classes=3)  # of the nine clips, one is the --test list's
    return [
        Case("prepare", "list: video lists", prep(), OK, check=nine),
        Case("prepare", "list: --labels names the classes", prep("train", "val", "--labels", fx["labels_txt"]), OK,
             check=dataset("out", splits={"train": 5, "val": 3}, class_test=lambda c: None if c == ["clap", "jump", "wave"] else f"{c}")),
        Case("prepare", "list: frame lists", prep("frames_train", "frames_val", root="frames_tree"), OK,
             check=dataset("out", splits={"train": 8, "val": 1})),
        Case("prepare", "list: --test", prep("train", "val", "--test", fx["list_test"]), OK,
             check=dataset("out", splits={"train": 5, "val": 3, "test": 1})),
        Case("prepare", "list: a listed video that is missing", prep("missing_media"), OK, warns=(SKIPPED_ONE,), check=nine),
        Case("prepare", "list: a line with one field", prep("one_token"), CLEAN, (fx["list_one_token"],)),
        Case("prepare", "list: a word as label", prep("word_label"), CLEAN, (fx["list_word_label"],)),
        Case("prepare", "list: a negative label", prep("negative_label"), CLEAN, (fx["list_negative_label"],)),
        Case("prepare", "list: a path leaving --media-root", prep("escape"), CLEAN, ("../../tree_val",)),
        Case("prepare", "list: an empty train list", prep("empty"), CLEAN, (fx["list_empty"],)),
        Case("prepare", "list: a clip listed with two labels", prep("dup_two_labels"), CLEAN, (fx["list_dup_two_labels"],)),
        Case("prepare", "list: --labels in Latin-1", prep("train", "val", "--labels", fx["labels_latin1"]), CLEAN,
             (fx["labels_latin1"],)),
        Case("prepare", "list: --labels with too few names", prep("train", "val", "--labels", fx["labels_short"]), CLEAN,
             (fx["labels_short"],)),
        Case("prepare", "list: --labels JSON with a word index", prep("train", "val", "--labels", fx["labels_json_bad"]), CLEAN,
             (fx["labels_json_bad"],)),
        Case("prepare", "list: --labels JSON with a repeated index", prep("train", "val", "--labels", fx["labels_json_dup"]),
             CLEAN, (fx["labels_json_dup"],)),
        Case("prepare", "list: --train missing", ["prepare", "list", "--train", fx["missing"], "--val", fx["list_val"],
                                                  "--media-root", fx["tree"], "--out", "out"], CLEAN, (fx["missing"],)),
        Case("prepare", "list: a list that is a folder", ["prepare", "list", "--train", fx["adir"], "--val", fx["list_val"],
                                                         "--media-root", fx["tree"], "--out", "out"], CLEAN, (fx["adir"],)),
    ]


def prepare_cases(fx: Inputs) -> list[Case]:
    return sthv1_cases(fx) + sthv2_cases(fx) + diving48_cases(fx) + synthetic_cases(fx) + folder_cases(fx) + list_cases(fx)


# ---------------------------------------------------------------------------- the tests
@pytest.mark.usefixtures("misc", "datasets", "prepared_variants", "sthv1_releases", "sthv2_releases",
                         "diving48_releases", "user_trees")
@each_case(prepare_cases)
def test_prepare(case: Case, run_case) -> None:
    run_case(case)
