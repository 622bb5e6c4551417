"""The scratch inputs every case reads, built once per session (or kept in a folder the user
names with ``--hostile-inputs`` and reused) and then treated as the user's own files: no case may
change them (each case's run is fingerprinted around, and every built step hashed at the end).

Everything is tiny: synth-sth with 2 classes, 4 training clips of 4 frames at 32 px; one
TSM-ResNet-18 trained for one step; checkpoints derived from it by ``save_checkpoint`` or by
damaging its bytes. Names are looked up as ``fx["v1"]`` (a path string).

The inputs come in build steps (:data:`STEPS`); conftest.py makes each a session fixture, so a
session builds only the steps its selected tests use.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Callable

from . import media
from .runner import deep_digest

#: Bump when the inputs change, so that a kept ``--hostile-inputs`` folder is rebuilt.
VERSION = "8"
#: The build steps, the folders each writes, and the steps each reads.
STEPS = ("misc", "datasets", "prepared_variants", "sthv1_releases", "sthv2_releases", "diving48_releases", "user_trees",
         "checkpoints", "configs", "videos", "label_files", "plugin", "reference_eval")
FOLDERS = {"misc": ("misc",), "datasets": ("data",), "prepared_variants": ("variants",), "sthv1_releases": ("rel/sthv1",),
           "sthv2_releases": ("rel/sthv2",), "diving48_releases": ("rel/diving48",), "user_trees": ("user",),
           "checkpoints": ("runs", "ckpt"), "configs": ("cfg",), "videos": ("media",), "label_files": ("labels",),
           "plugin": ("plugin",), "reference_eval": ("ref",)}
DEPENDS = {"prepared_variants": ("datasets",), "sthv1_releases": ("datasets",), "sthv2_releases": ("datasets",),
           "diving48_releases": ("datasets",), "checkpoints": ("datasets",), "reference_eval": ("datasets", "checkpoints")}


def edit_records(file: str, change: Callable[[list], None]) -> Callable[[Path], None]:
    """A release edit: load the JSON list ``file`` of a release root, ``change`` it, write it back."""
    def edit(root: Path) -> None:
        records = json.loads((root / file).read_text())
        change(records)
        (root / file).write_text(json.dumps(records))
    return edit


def set_first(key: str, value) -> Callable[[list], None]:
    """A records change: ``records[0][key] = value``."""
    return lambda records: records[0].__setitem__(key, value)


#: An output location nobody can write, not even root.
UNWRITABLE = "/proc/aknet-hostile/out"

STAGE1_TOML = """\
name = "{name}"
[model]
backbone = "tsm_resnet18"
num_segments = 4
dropout = 0.5
[data]
dataset = "{dataset}"
resize = 36
crop = 32
resize_mode = "square"
num_workers = 0
pin_memory = false
[optim]
name = "sgd"
lr = 0.01
base_batch_size = 4
batch_size = 4
epochs = 1
milestones = [1]
[train]
seed = 3
amp = false
device = "cpu"
"""

STAGE2_TOML = """\
name = "{name}"
[model]
backbone = "tsm_resnet18"
stage = 2
init_from = "{init_from}"
num_segments = 4
dropout = 0.5
[model.aknet]
split = "res3"
alpha = 0.3
[data]
dataset = "{dataset}"
resize = 36
crop = 32
resize_mode = "square"
num_workers = 0
pin_memory = false
[optim]
name = "adamw"
lr = 0.001
base_batch_size = 4
batch_size = 4
epochs = 1
milestones = [1]
[train]
seed = 3
amp = false
device = "cpu"
"""


class BuildError(RuntimeError):
    """An input could not be built: no case that reads it can run."""


class Inputs:
    """Named scratch inputs under ``root`` (see the module docstring).

    Every name is known from the start (the case tables read them while pytest collects);
    :meth:`build` makes a step's files.
    """

    def __init__(self, root: Path, aknet: str) -> None:
        self.root = root
        self.aknet = aknet
        self.paths: dict[str, Path] = {}
        self._built: dict[str, dict[str, str]] = {}  # step -> SHA-256 of its files once built
        for step in STEPS:
            getattr(self, f"_{step}")(build=False)

    def __getitem__(self, name: str) -> str:
        return str(self.paths[name])

    def path(self, name: str) -> Path:
        return self.paths[name]

    # ------------------------------------------------------------------ building
    def build(self, step: str, log: Callable[[str], None] = print) -> None:
        """Make ``step``'s files, unless a kept folder holds them for this :data:`VERSION`, built
        after every step they read (a stamp per step, compared like make's targets), and note
        their SHA-256 for :meth:`changed_since_built`. The steps it reads must be built first."""
        self.root.mkdir(parents=True, exist_ok=True)
        if not self._current(step):
            log(f"hostile inputs: building {step.replace('_', ' ')}")
            self._stamp(step).unlink(missing_ok=True)
            for folder in FOLDERS[step]:
                shutil.rmtree(self.root / folder, ignore_errors=True)
            getattr(self, f"_{step}")(build=True)
            self._stamp(step).write_text(VERSION)
        self._built[step] = self._digest(step)

    def changed_since_built(self) -> list[str]:
        """Files of the built steps whose bytes differ from when they were built (or reused)."""
        changed = []
        for step, before in self._built.items():
            after = self._digest(step)
            changed += sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        return changed

    def _digest(self, step: str) -> dict[str, str]:
        return {f"{folder}/{rel}": digest for folder in FOLDERS[step]
                for rel, digest in deep_digest(self.root / folder).items()}

    def _stamp(self, step: str) -> Path:
        return self.root / f".built-{step}"

    def _current(self, step: str) -> bool:
        stamp = self._stamp(step)
        if not (stamp.is_file() and stamp.read_text() == VERSION):
            return False
        built = stamp.stat().st_mtime_ns
        return all(self._stamp(dep).is_file() and self._stamp(dep).stat().st_mtime_ns <= built
                   for dep in DEPENDS.get(step, ()))

    def _aknet(self, *argv: str, cwd: Path | None = None) -> None:
        result = subprocess.run([self.aknet, *map(str, argv)], cwd=cwd or self.root, capture_output=True, text=True)
        if result.returncode != 0:
            raise BuildError(f"aknet {' '.join(map(str, argv))} failed ({result.returncode}): "
                             f"{(result.stderr or result.stdout)[-2000:]}")

    def _add(self, name: str, rel: str) -> Path:
        path = self.root / rel
        self.paths[name] = path
        return path

    # ------------------------------------------------------------------ plain files
    def _misc(self, build: bool) -> None:
        afile, adir = self._add("afile", "misc/a_file.txt"), self._add("adir", "misc/a_dir")
        self._add("missing", "misc/does_not_exist")
        self._add("under_file", "misc/a_file.txt/sub")
        self._add("pwned", "misc/PWNED")  # created only if a malicious pickle ran
        if build:
            adir.mkdir(parents=True)
            (adir / "keep.txt").write_text("the user's file\n")
            afile.write_text("not a folder\n")

    # ------------------------------------------------------------------ prepared datasets
    def _datasets(self, build: bool) -> None:
        for name, fmt, test in (("v1", "sthv1", 1), ("v2", "sthv2", 1), ("d48", "diving48", 1), ("v1_notest", "sthv1", 0)):
            out = self._add(name, f"data/{name}")
            if build:
                self._aknet("prepare", "synthetic", "--out", out, "--format", fmt, "--classes", 2,
                            "--train-per-class", 2, "--val-per-class", 1, "--test-per-class", test,
                            "--size", 32, "--frames", 4, "--workers", 1)
        self._add("v1_raw", "data/v1/raw")
        self._add("v1_clip", "data/v1/raw/2")   # a val clip (frame folder)
        self._add("v2_raw", "data/v2/raw")
        self._add("d48_raw", "data/d48/raw")
        self._add("v2_video", "data/v2/raw/2.webm")
        self._add("d48_video", "data/d48/raw/rgb/2.mp4")

    def _prepared_variants(self, build: bool) -> None:
        """Copies of ``v1``'s CSVs and dataset.json with one thing wrong each (media stay in v1/raw)."""
        def variant(name: str, edit: Callable[[Path], None]) -> None:
            folder = self._add(f"ds_{name}", f"variants/ds_{name}")
            if build:
                folder.mkdir(parents=True)
                for f in self.path("v1").iterdir():
                    if f.is_file():
                        shutil.copy2(f, folder / f.name)
                edit(folder)

        def replace_in(file: str, old: str, new: str) -> Callable[[Path], None]:
            def edit(folder: Path) -> None:
                text = (folder / file).read_text()
                assert old in text, (file, old)
                (folder / file).write_text(text.replace(old, new, 1))
            return edit

        def rewrite_json(change: Callable[[dict], None]) -> Callable[[Path], None]:
            def edit(folder: Path) -> None:
                data = json.loads((folder / "dataset.json").read_text())
                change(data)
                (folder / "dataset.json").write_text(json.dumps(data))
            return edit

        variant("good_copy", lambda f: None)
        variant("label_out_of_range", replace_in("train.csv", "1,1,4,1", "1,1,4,7"))
        variant("label_float", replace_in("train.csv", "1,1,4,1", "1,1,4,1.0"))
        variant("empty_val", lambda f: (f / "val.csv").write_text("id,path,num_frames,label\n"))
        variant("dup_id", replace_in("train.csv", "3,3,4,0", "1,1,4,1"))
        variant("bad_frames", replace_in("train.csv", "1,1,4,1", "1,1,four,1"))
        variant("no_val_csv", lambda f: (f / "val.csv").unlink())
        variant("no_manifest", lambda f: (f / "dataset.json").unlink())
        variant("bad_manifest", lambda f: (f / "dataset.json").write_text("{not json"))
        variant("columns", lambda f: (f / "train.csv").write_text("id;path;frames;label\n1;1;4;1\n"))
        variant("media_gone", rewrite_json(lambda d: d.update(media_root=str(self.root / "nowhere"),
                                                              root=str(self.root / "nowhere"))))
        variant("no_classes", rewrite_json(lambda d: d.update(classes=[])))
        variant("unlabelled_test", replace_in("test.csv", ",1\n", ",-1\n"))
        # a training clip whose first frame is not a JPEG: found when training reads it
        folder = self._add("ds_corrupt_jpeg", "variants/ds_corrupt_jpeg")
        if build:
            shutil.copytree(self.path("v1"), folder)
            (folder / "raw" / "1" / "00001.jpg").write_bytes(b"\xff\xd8 this is not a JPEG")
            data = json.loads((folder / "dataset.json").read_text())
            data.update(media_root=str(folder / "raw"), root=str(folder / "raw"))
            (folder / "dataset.json").write_text(json.dumps(data))

    # ------------------------------------------------------------------ official releases
    def _release(self, fmt: str, name: str, base: str, edit: Callable[[Path], None] | None, build: bool) -> None:
        root = self._add(f"{fmt}_{name}", f"rel/{fmt}/{name}")
        if build:
            shutil.copytree(self.path(base), root)
            (root / "synth-sth.json").unlink()  # a plain release, not the generator's
            if edit:
                edit(root)

    def _sthv1_releases(self, build: bool) -> None:
        labels, train, val = ("something-something-v1-labels.csv", "something-something-v1-train.csv",
                              "something-something-v1-validation.csv")
        names = ("Moving something from left to right", "Moving something from right to left")

        def write(file: str, text: str) -> Callable[[Path], None]:
            return lambda r: (r / file).write_text(text)

        def append(file: str, text: str) -> Callable[[Path], None]:
            return lambda r: (r / file).write_text((r / file).read_text() + text)

        def latin1_names(r: Path) -> None:
            (r / labels).write_bytes("Déplacer à gauche\nDéplacer à droite\n".encode("latin-1"))
            rows = (r / train).read_text().replace(names[0], "Déplacer à gauche").replace(names[1], "Déplacer à droite")
            (r / train).write_bytes(rows.encode("latin-1"))

        def remove(rel: str) -> Callable[[Path], None]:
            return lambda r: shutil.rmtree(r / rel) if (r / rel).is_dir() else (r / rel).unlink()

        def empty_folder(r: Path) -> None:
            for f in (r / "1").iterdir():
                f.unlink()

        def remove_val_clips(r: Path) -> None:
            for row in (r / val).read_text().splitlines():
                shutil.rmtree(r / row.split(";")[0])

        edits: dict[str, Callable[[Path], None] | None] = {
            "good": None,
            "latin1": latin1_names,
            "bom": lambda r: (r / labels).write_bytes(b"\xef\xbb\xbf" + (r / labels).read_bytes()),
            "crlf": lambda r: [(r / f).write_bytes((r / f).read_bytes().replace(b"\n", b"\r\n")) for f in (labels, train, val)],
            "no_labels": remove(labels),
            "no_train": remove(train),
            "no_val": remove(val),
            "empty_labels": write(labels, ""),
            "no_separator": write(train, "1 Moving something from right to left\n"),
            "unknown_class": append(train, "9;Juggling chainsaws\n"),
            "dup_two_labels": append(train, f"1;{names[0]}\n"),
            "dup_same_label": append(train, f"1;{names[1]}\n"),
            "leak": append(train, f"2;{names[1]}\n"),
            "empty_class": write(labels, f"{names[0]}\n\n{names[1]}\n"),
            "dup_class": write(labels, f"{names[0]}\n{names[1]}\n{names[0]}\n"),
            "clip_missing": remove("1"),
            "clip_empty": empty_folder,
            "binary_csv": lambda r: (r / train).write_bytes(bytes(range(256)) * 4),
            "all_missing": lambda r: [shutil.rmtree(r / str(i)) for i in range(1, 9)],
            "labels_is_dir": lambda r: ((r / labels).unlink(), (r / labels).mkdir()),
            "empty_val": write(val, ""),
            "val_missing": remove_val_clips,
        }
        for name, edit in edits.items():
            self._release("sthv1", name, "v1_raw", edit, build)
        self._add("sthv1_frames_sub", "rel/sthv1/frames_sub")
        if build:  # the frame folders in a subfolder, as the official tarball unpacks
            sub = self.path("sthv1_frames_sub")
            shutil.copytree(self.path("sthv1_good"), sub)
            (sub / "20bn-something-something-v1").mkdir()
            for i in range(1, 9):
                (sub / str(i)).rename(sub / "20bn-something-something-v1" / str(i))

    def _sthv2_releases(self, build: bool) -> None:
        labels, train = "something-something-v2-labels.json", "something-something-v2-train.json"

        def write(file: str, text: str) -> Callable[[Path], None]:
            return lambda r: (r / file).write_text(text)

        def edit_labels(change: Callable[[dict], dict]) -> Callable[[Path], None]:
            return lambda r: (r / labels).write_text(json.dumps(change(json.loads((r / labels).read_text()))))

        edit_train = functools.partial(edit_records, train)

        def video(name: str, make: Callable[[Path], None]) -> Callable[[Path], None]:
            return lambda r: make(r / f"{name}.webm")

        def audio_only(path: Path) -> None:
            path.unlink()
            media.write_audio_only(path)

        edits: dict[str, Callable[[Path], None] | None] = {
            "good": None,
            "labels_not_json": write(labels, "{oops"),
            "labels_list": write(labels, json.dumps(["a", "b"])),
            "labels_float_index": edit_labels(lambda m: {k: f"{i}.5" for i, k in enumerate(m)}),
            "labels_word_index": edit_labels(lambda m: {k: "first" if i == 0 else str(i) for i, k in enumerate(m)}),
            "labels_dup_index": edit_labels(lambda m: {k: "0" for k in m}),
            "labels_gap": edit_labels(lambda m: {k: str(5 * i) for i, k in enumerate(m)}),
            "labels_latin1": lambda r: (r / labels).write_bytes(
                json.dumps({"Déplacer à gauche": "0", "Déplacer à droite": "1"}, ensure_ascii=False).encode("latin-1")),
            "train_not_list": write(train, json.dumps({"id": "1"})),
            "no_template": edit_train(lambda rs: rs[0].pop("template")),
            "unknown_template": edit_train(set_first("template", "Juggling [something]")),
            "null_id": edit_train(set_first("id", None)),
            "dup_two_labels": edit_train(lambda rs: rs.append(dict(rs[0], template="Moving [something] from left to right"))),
            "zero_byte": video("1", lambda p: p.write_bytes(b"")),
            "truncated": video("1", lambda p: media.truncated(p, p, 0.4)),
            "audio_only": video("1", audio_only),
            "text_video": video("1", lambda p: p.write_text("not a video\n")),
            "video_missing": video("1", lambda p: p.unlink()),
        }
        for name, edit in edits.items():
            self._release("sthv2", name, "v2_raw", edit, build)

    def _diving48_releases(self, build: bool) -> None:
        vocab, train = "Diving48_vocab.json", "Diving48_V2_train.json"

        def write(file: str, text: str) -> Callable[[Path], None]:
            return lambda r: (r / file).write_text(text)

        edit_train = functools.partial(edit_records, train)

        edits: dict[str, Callable[[Path], None] | None] = {
            "good": None,
            "vocab_dup": lambda r: (r / vocab).write_text(json.dumps(json.loads((r / vocab).read_text()) * 2)),
            "vocab_not_list": write(vocab, json.dumps({"a": 1})),
            "vocab_latin1": lambda r: (r / vocab).write_bytes(
                json.dumps([["Départ", "é"], ["Arrivée", "à"]], ensure_ascii=False).encode("latin-1")),
            "label_out_of_range": edit_train(set_first("label", 5)),
            "label_negative": edit_train(set_first("label", -1)),
            "label_float": edit_train(set_first("label", 1.5)),
            "no_vid_name": edit_train(lambda rs: rs[0].pop("vid_name")),
            "start_after_end": edit_train(lambda rs: rs[0].update(start_frame=3, end_frame=0)),
            "dup_two_labels": edit_train(lambda rs: rs.append(dict(rs[0], label=1 - rs[0]["label"]))),
            "zero_byte": lambda r: (r / "rgb" / "1.mp4").write_bytes(b""),
            "truncated": lambda r: media.truncated(r / "rgb" / "1.mp4", r / "rgb" / "1.mp4", 0.3),
            "no_rgb": lambda r: shutil.rmtree(r / "rgb"),
        }
        for name, edit in edits.items():
            self._release("diving48", name, "d48_raw", edit, build)

    # ------------------------------------------------------------------ a user's own clips
    def _user_trees(self, build: bool) -> None:
        tree = self._add("tree", "user/tree")
        self._add("tree_val", "user/tree_val")
        frames_tree = self._add("frames_tree", "user/frames_tree")
        for name in ("tree_empty", "tree_files_only", "tree_empty_class", "tree_copy_val", "tree_odd_files",
                     "tree_latin1"):
            self._add(name, f"user/{name}")
        lists = {name: self._add(f"list_{name}", f"user/lists/{name}.txt") for name in (
            "train", "val", "test", "frames_train", "frames_val", "one_token", "word_label", "negative_label",
            "float_label", "escape", "missing_media", "empty", "crlf", "dup_two_labels")}
        for name in ("labels_txt", "labels_latin1", "labels_short", "labels_json_bad", "labels_json_dup"):
            self._add(name, f"user/{name}")
        for name, suffix in (("flip_bad_json", ".json"), ("flip_unknown", ".json"), ("flip_self", ".json"),
                             ("flip_latin1", ".csv"), ("flip_ok", ".csv")):  # --flip-map reads JSON by its suffix
            self._add(name, f"user/{name}{suffix}")
        if not build:
            return
        classes = ("clap", "jump", "wave")
        for k, cls in enumerate(classes):
            for i in range(3):
                media.write_video(tree / cls / f"{cls}_{i}.mp4", media.frames(6 + i, 32, 32, seed=10 * k + i))
                media.write_video(self.path("tree_val") / cls / f"{cls}_v{i}.mp4", media.frames(6, 32, 32, seed=100 + 10 * k + i))
                media.write_frames(frames_tree / cls / f"{cls}_{i}", media.frames(5, 24, 24, seed=200 + 10 * k + i),
                                   template="img_{:05d}.jpg")
        self.path("tree_empty").mkdir(parents=True)
        (self.path("tree_files_only")).mkdir(parents=True)
        (self.path("tree_files_only") / "readme.txt").write_text("no class folders here\n")
        shutil.copytree(tree, self.path("tree_empty_class"))
        (self.path("tree_empty_class") / "dance").mkdir()
        shutil.copytree(self.path("tree_val"), self.path("tree_copy_val"))
        shutil.copy2(tree / "clap" / "clap_0.mp4", self.path("tree_copy_val") / "clap" / "copied.mp4")
        shutil.copytree(tree, self.path("tree_odd_files"))
        (self.path("tree_odd_files") / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
        (self.path("tree_odd_files") / "clap" / "notes.txt").write_text("a note, not a clip\n")
        (self.path("tree_odd_files") / "clap" / "._clap_0.mp4").write_bytes(b"\0\5\26\7 AppleDouble")
        for clip in sorted(tree.rglob("*.mp4")):  # names a Latin-1 system writes: valid on Linux, not UTF-8
            latin1 = self.path("tree_latin1") / clip.parent.name / os.fsdecode(b"caf\xe9_" + clip.name.encode())
            latin1.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(clip, latin1)

        videos = sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*.mp4"))
        label = {c: i for i, c in enumerate(classes)}
        rows = [f"{v} {label[v.split('/')[0]]}" for v in videos]
        lists["train"].parent.mkdir(parents=True)
        # the last clip is held out for --test: a clip must be in one split only
        lists["train"].write_text("\n".join(rows[i] for i in range(len(rows) - 1) if i % 3 != 0) + "\n")
        lists["val"].write_text("\n".join(rows[i] for i in range(len(rows) - 1) if i % 3 == 0) + "\n")
        lists["test"].write_text(rows[-1] + "\n")
        frame_dirs = sorted(p.relative_to(frames_tree).as_posix() for p in frames_tree.glob("*/*"))
        frame_rows = [f"{d} 5 {label[d.split('/')[0]]}" for d in frame_dirs]
        lists["frames_train"].write_text("\n".join(frame_rows[1:]) + "\n")
        lists["frames_val"].write_text(frame_rows[0] + "\n")
        good = lists["train"].read_text()
        lists["one_token"].write_text(good + "clap/clap_0.mp4\n")
        lists["word_label"].write_text(good + "clap/clap_0.mp4 clap\n")
        lists["negative_label"].write_text(good.replace(" 0\n", " -1\n", 1))
        lists["float_label"].write_text(good.replace(" 0\n", " 0.5\n", 1))
        lists["escape"].write_text(good + "../../tree_val/clap/clap_v0.mp4 0\n")
        lists["missing_media"].write_text(good + "clap/not_there.mp4 0\n")
        lists["empty"].write_text("")
        lists["crlf"].write_text(good.replace("\n", "\r\n"))
        lists["dup_two_labels"].write_text(good + rows[1].rsplit(" ", 1)[0] + " 2\n")
        self.path("labels_txt").write_text("clap\njump\nwave\n")
        media.latin1(self.path("labels_latin1"), "applaudir\nsauter\nsaluer é\n")
        self.path("labels_short").write_text("clap\njump\n")
        self.path("labels_json_bad").write_text(json.dumps({"clap": "zero", "jump": 1, "wave": 2}))
        self.path("labels_json_dup").write_text(json.dumps({"clap": 0, "jump": 0, "wave": 2}))
        self.path("flip_bad_json").write_text("[[\"clap\", ")
        self.path("flip_unknown").write_text(json.dumps([["clap", "moonwalk"]]))
        self.path("flip_self").write_text(json.dumps([["clap", "clap"]]))
        media.latin1(self.path("flip_latin1"), "clap,jump é\n")
        self.path("flip_ok").write_text("clap,wave\n")

    # ------------------------------------------------------------------ checkpoints
    def _checkpoints(self, build: bool) -> None:
        s1, s2 = self._add("s1", "runs/s1"), self._add("s2", "runs/s2")
        names = ("s1_best", "s1_last", "s2_best", "ak", "ak_res4")
        rels = ("runs/s1/best.pt", "runs/s1/last.pt", "runs/s2/best.pt", "ckpt/ak.pt", "ckpt/ak_res4.pt")
        for name, rel in zip(names, rels):
            self._add(name, rel)
        forged = ("zero", "truncated", "text", "flipped", "malicious", "bare_state", "bare_ak_state", "no_tensors",
                  "a_list", "no_rng", "classes5", "kind_unknown", "future_format", "tsm_official_noseg", "adamw_last",
                  "meta_kwargs", "meta_word_classes", "meta_no_aknet", "meta_alpha", "meta_edited")
        for name in forged:
            self._add(f"ck_{name}", f"ckpt/{name}.pt" if name != "tsm_official_noseg" else "ckpt/tsm_official.pth")
        self._add("ck_dir", "ckpt/a_dir.pt")
        if not build:
            return
        cfg = self.root / "runs" / "cfg_fixture"
        cfg.mkdir(parents=True)
        (cfg / "s1.toml").write_text(STAGE1_TOML.format(name="s1", dataset=self.path("v1")))
        self._aknet("train", cfg / "s1.toml", "--work-dir", s1, "--quiet")
        (cfg / "s2.toml").write_text(STAGE2_TOML.format(name="s2", dataset=self.path("v1"), init_from=self.path("s1_best")))
        self._aknet("train", cfg / "s2.toml", "--work-dir", s2, "--quiet")
        self._aknet("convert-1d", "-c", self.path("s1_best"), "--split", "res3", "-o", self.path("ak"))
        self._aknet("convert-1d", "-c", self.path("s1_best"), "--split", "res4", "-o", self.path("ak_res4"))
        (s1 / ".aknet-train.lock").unlink(missing_ok=True)
        (s2 / ".aknet-train.lock").unlink(missing_ok=True)
        shutil.rmtree(cfg)
        self._forge_checkpoints()

    def _forge_checkpoints(self) -> None:
        import torch

        from aknet_cli import create_backbone
        from aknet_cli.checkpoints.format import save_checkpoint
        from aknet_backbones.tsm_layouts import tsm_name_in_file

        best, last = self.path("s1_best"), self.path("s1_last")
        self.path("ck_zero").write_bytes(b"")
        media.truncated(best, self.path("ck_truncated"), 0.5)
        self.path("ck_text").write_text("these are not weights\n")
        media.flip_tensor_bytes(best, self.path("ck_flipped"))
        media.malicious_checkpoint(self.path("ck_malicious"), self.path("pwned"))
        self.path("ck_dir").mkdir()
        ckpt = torch.load(best, map_location="cpu", weights_only=True)
        torch.save(ckpt["state_dict"], self.path("ck_bare_state"))
        torch.save(torch.load(self.path("ak"), map_location="cpu", weights_only=True)["state_dict"], self.path("ck_bare_ak_state"))
        torch.save({"epoch": 3, "note": "no tensors"}, self.path("ck_no_tensors"))
        torch.save([1, 2, 3], self.path("ck_a_list"))
        full = torch.load(last, map_location="cpu", weights_only=True)
        state = dict(full["train_state"])
        state.pop("rng")
        save_checkpoint(self.path("ck_no_rng"), kind=full["kind"], config=full["config"], state_dict=full["state_dict"],
                        meta=full.get("meta"), train_state=state)
        net = create_backbone("tsm_resnet18", num_classes=5, num_segments=4)
        save_checkpoint(self.path("ck_classes5"), kind="backbone",
                        config={"backbone": "tsm_resnet18", "num_classes": 5, "num_segments": 4}, state_dict=net.state_dict())
        save_checkpoint(self.path("ck_kind_unknown"), kind="teacher", config=ckpt["config"], state_dict=ckpt["state_dict"])
        future = dict(ckpt, format="aknet-checkpoint/9")
        torch.save(future, self.path("ck_future_format"))
        self._forge_metadata(ckpt)
        # the official TSM layout (module.base_model.*, new_fc), its file name without a frame count
        torch.save({"state_dict": {tsm_name_in_file(k): v for k, v in ckpt["state_dict"].items()}},
                   self.path("ck_tsm_official_noseg"))

    def _forge_metadata(self, ckpt: dict) -> None:
        """Checkpoints whose tensors are intact but whose model description is wrong: written
        so (the digest matches), or edited after saving (it does not)."""
        import torch

        from aknet_cli.checkpoints.format import save_checkpoint

        ak = torch.load(self.path("ak"), map_location="cpu", weights_only=True)
        for name, kind, config, state in (
                ("meta_kwargs", "backbone", dict(ckpt["config"], backbone_kwargs={"bogus": 1}), ckpt["state_dict"]),
                ("meta_word_classes", "backbone", dict(ckpt["config"], num_classes="four"), ckpt["state_dict"]),
                ("meta_no_aknet", "aknet", {k: v for k, v in ak["config"].items() if k != "aknet"}, ak["state_dict"]),
                ("meta_alpha", "aknet", dict(ak["config"], aknet=dict(ak["config"]["aknet"], alpha=5.0)), ak["state_dict"])):
            save_checkpoint(self.path(f"ck_{name}"), kind=kind, config=config, state_dict=state)
        edited = torch.load(self.path("s1_best"), map_location="cpu", weights_only=True)
        edited["config"]["num_classes"] = 3
        torch.save(edited, self.path("ck_meta_edited"))

    # ------------------------------------------------------------------ configs
    def _configs(self, build: bool) -> None:
        names = ("good", "s2", "syntax", "binary", "latin1", "empty", "unknown_key", "unknown_section",
                 "wrong_type", "bom", "crlf", "raw_dataset", "stage2_no_init", "aknet_on_stage1", "notest")
        for name in names:
            self._add(f"cfg_{name}", f"cfg/{name}.toml")
        self._add("cfg_dir", "cfg/a_dir.toml")
        if not build:
            return
        good = STAGE1_TOML.format(name="good", dataset=self.path("v1"))
        files = {
            "good": good,
            "s2": STAGE2_TOML.format(name="s2", dataset=self.path("v1"), init_from=self.path("s1_best")),
            "syntax": "[model\nbackbone = \n",
            "empty": "",
            "unknown_key": good.replace("dropout = 0.5", "dropout = 0.5\nbakbone = \"resnet18\""),
            "unknown_section": good + "[trainer]\nfast = true\n",
            "wrong_type": good.replace("epochs = 1", "epochs = \"two\""),
            "crlf": good.replace("\n", "\r\n"),
            "raw_dataset": STAGE1_TOML.format(name="raw", dataset=self.path("v1_raw")),
            "stage2_no_init": good.replace("num_segments = 4", "stage = 2\nnum_segments = 4"),
            "aknet_on_stage1": good.replace("dropout = 0.5", "dropout = 0.5\n[model.aknet]\nalpha = 0.3"),
            "notest": STAGE1_TOML.format(name="notest", dataset=self.path("v1_notest")),
        }
        self.path("cfg_good").parent.mkdir(parents=True)
        for name, text in files.items():
            self.path(f"cfg_{name}").write_text(text)
        self.path("cfg_binary").write_bytes(bytes(range(256)))
        self.path("cfg_latin1").write_bytes(("# réglages du café\n" + good).encode("latin-1"))
        self.path("cfg_bom").write_bytes(b"\xef\xbb\xbf" + good.encode())
        self.path("cfg_dir").mkdir()

    # ------------------------------------------------------------------ videos
    def _videos(self, build: bool) -> None:
        names = {"mp4": "ok.mp4", "webm": "ok.webm", "one_px": "one_px.webm", "wide": "wide_10000x16.webm",
                 "tall": "tall_16x10000.webm", "strip": "strip_2000x32.webm", "tiny": "tiny_8x8.webm", "one_frame": "one_frame.webm",
                 "zero_mp4": "zero.mp4", "trunc_mp4": "truncated.mp4", "trunc_webm": "truncated.webm",
                 "audio": "audio_only.mp4", "text_mp4": "text.mp4", "unicode": "vidéo ñ 1.webm",
                 "frames_ok": "frames_ok", "frames_empty": "frames_empty", "frames_corrupt": "frames_corrupt",
                 "frames_zero": "frames_zero", "vids": "folder_of_videos", "vids_one_bad": "folder_one_bad",
                 "vids_empty": "folder_empty", "list_ok": "list_ok.txt", "list_missing": "list_missing.txt",
                 "list_latin1": "list_latin1.txt", "list_empty": "list_empty.txt"}
        for name, rel in names.items():
            self._add(f"vid_{name}", f"media/{rel}")
        self._add("vid_latin1_name", os.fsdecode(b"media/caf\xe9.mp4"))  # valid on Linux, not UTF-8
        if not build:
            return
        p = self.path
        media.write_video(p("vid_mp4"), media.frames(8, 32, 32))
        media.write_video(p("vid_webm"), media.frames(8, 32, 32), codec="libvpx")
        media.write_video(p("vid_one_px"), media.frames(4, 1, 1), codec="libvpx")
        media.write_video(p("vid_wide"), media.frames(4, 16, 10000), codec="libvpx")
        media.write_video(p("vid_tall"), media.frames(4, 10000, 16), codec="libvpx")
        media.write_video(p("vid_strip"), media.frames(6, 32, 2000), codec="libvpx")
        media.write_video(p("vid_tiny"), media.frames(4, 8, 8), codec="libvpx")
        media.write_video(p("vid_one_frame"), media.frames(1, 32, 32), codec="libvpx")
        media.write_video(p("vid_unicode"), media.frames(6, 32, 32), codec="libvpx")
        shutil.copy2(p("vid_mp4"), p("vid_latin1_name"))
        p("vid_zero_mp4").write_bytes(b"")
        media.truncated(p("vid_mp4"), p("vid_trunc_mp4"), 0.3)
        media.truncated(p("vid_webm"), p("vid_trunc_webm"), 0.3)
        media.write_audio_only(p("vid_audio"))
        p("vid_text_mp4").write_text("I am text pretending to be a video\n")
        media.write_frames(p("vid_frames_ok"), media.frames(6, 32, 32))
        p("vid_frames_empty").mkdir()
        media.write_frames(p("vid_frames_corrupt"), media.frames(6, 32, 32))
        (p("vid_frames_corrupt") / "00003.jpg").write_bytes(b"\xff\xd8 garbage, not a JPEG")
        media.write_frames(p("vid_frames_zero"), media.frames(6, 32, 32))
        (p("vid_frames_zero") / "00003.jpg").write_bytes(b"")  # a frame 4-frame sampling reads, as frames_corrupt's
        media.write_video(p("vid_vids") / "a.mp4", media.frames(8, 32, 32, seed=1))
        media.write_video(p("vid_vids") / "b.webm", media.frames(8, 32, 32, seed=2), codec="libvpx")
        media.write_video(p("vid_vids_one_bad") / "a.mp4", media.frames(8, 32, 32, seed=1))
        media.truncated(p("vid_mp4"), p("vid_vids_one_bad") / "broken.mp4", 0.2)
        p("vid_vids_empty").mkdir()
        p("vid_list_ok").write_text(f"{p('vid_mp4')}\n\n{p('vid_frames_ok')}\n")
        p("vid_list_missing").write_text(f"{p('vid_mp4')}\n{self.root / 'media' / 'not_there.mp4'}\n")
        media.latin1(p("vid_list_latin1"), f"{p('vid_mp4')}\n{self.root / 'media' / 'vidéo.mp4'}\n")
        p("vid_list_empty").write_text("")

    def _label_files(self, build: bool) -> None:
        names = ("lab_ok", "lab_latin1", "lab_three", "lab_list_json", "lab_map_json", "lab_map_word", "lab_map_gap",
                 "lab_not_json", "lab_empty")
        exts = (".csv", ".csv", ".csv", ".json", ".json", ".json", ".json", ".json", ".csv")
        for name, ext in zip(names, exts):
            self._add(name, f"labels/{name[4:]}{ext}")
        if not build:
            return
        p = self.path
        p("lab_ok").parent.mkdir(parents=True)
        p("lab_ok").write_text("left to right\nright to left\n")
        media.latin1(p("lab_latin1"), "gauche à droite\ndroite à gauche\n")
        p("lab_three").write_text("a\nb\nc\n")
        p("lab_list_json").write_text(json.dumps(["left to right", "right to left"]))
        p("lab_map_json").write_text(json.dumps({"left to right": "0", "right to left": "1"}))
        p("lab_map_word").write_text(json.dumps({"left to right": "zero", "right to left": "1"}))
        p("lab_map_gap").write_text(json.dumps({"left to right": "0", "right to left": "7"}))
        p("lab_not_json").write_text("{\"left\": ")
        p("lab_empty").write_text("")

    # ------------------------------------------------------------------ a broken plugin
    def _plugin(self, build: bool) -> None:
        """A third-party distribution whose ``aknet.backbones`` entry point names a module that
        does not exist (put on ``PYTHONPATH``)."""
        site = self._add("plugin_site", "plugin")
        if not build:
            return
        info = site / "broken_plugin-0.1.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text("[aknet.backbones]\nbroken_net = broken_plugin_missing.nets:broken_net\n")

    # ------------------------------------------------------------------ a reference evaluation
    def _reference_eval(self, build: bool) -> None:
        """``aknet eval`` of the stage-1 model on v1's val split: predict must score the same clip alike."""
        out = self._add("ref_eval", "ref/eval_s1")
        if build:
            self._aknet("eval", self.path("s1_best"), "--data", self.path("v1"), "--out", out, "--workers", 0,
                        "--device", "cpu")
