"""synth-sth: determinism, balance, and the time-reversed pairs."""

import numpy as np
import pandas as pd
import pytest

from aknet_cli.data.manifest import load_manifest
from aknet_cli.data import synthetic
from aknet_cli.data.synthetic import CLASS_NAMES, REVERSED_PAIRS, SynthConfig, _track, prepare_synthetic, render_clip
from aknet_cli.exceptions import ConfigError, DataError

TINY = dict(classes=4, train_per_class=3, val_per_class=2, test_per_class=2, size=32, frames=8)


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_different_seed_differs(tmp_path):
    prepare_synthetic(SynthConfig(**TINY, seed=3), out=tmp_path / "a")
    prepare_synthetic(SynthConfig(**TINY, seed=3), out=tmp_path / "b")
    a, b = _files(tmp_path / "a" / "raw"), _files(tmp_path / "b" / "raw")
    assert a == b
    c = render_clip(cls=0, seed=4, split="train", number=0, size=32, frames=8)
    assert not np.array_equal(c, render_clip(cls=0, seed=3, split="train", number=0, size=32, frames=8))


def test_balanced_and_prepared_through_sthv1_reader(tmp_path):
    summary, note = prepare_synthetic(SynthConfig(**TINY), out=tmp_path / "s")
    assert summary.splits == {"train": 12, "val": 8, "test": 8} and not summary.skipped and note is None
    manifest = load_manifest(tmp_path / "s")
    assert manifest.data["source_format"] == "sthv1" and manifest.data["name"] == "synth-sth"
    assert manifest.classes == sorted(CLASS_NAMES[:4])
    assert (tmp_path / "s" / "raw" / "something-something-v1-train.csv").is_file()
    counts = pd.read_csv(tmp_path / "s" / "train.csv")["label"].value_counts()
    assert counts.tolist() == [3, 3, 3, 3]
    assert pd.read_csv(tmp_path / "s" / "test.csv")["label"].value_counts().tolist() == [2, 2, 2, 2]
    assert "never used for selection" in manifest.data["split_roles"]["test"]
    # The same inputs again: accepted (idempotent); another seed needs --force.
    prepare_synthetic(SynthConfig(**TINY), out=tmp_path / "s")
    with pytest.raises(DataError, match="different dataset"):
        prepare_synthetic(SynthConfig(**TINY, seed=9), out=tmp_path / "s")


def test_the_held_out_split_is_new_clips_and_leaves_train_and_val_unchanged(tmp_path):
    prepare_synthetic(SynthConfig(**{**TINY, "test_per_class": 0}), out=tmp_path / "without")
    prepare_synthetic(SynthConfig(**TINY), out=tmp_path / "with")
    without, with_test = _files(tmp_path / "without" / "raw"), _files(tmp_path / "with" / "raw")
    for name in ("train.csv", "val.csv"):
        assert (tmp_path / "without" / name).read_bytes() == (tmp_path / "with" / name).read_bytes()
    shared = {k: v for k, v in with_test.items() if k.endswith(".jpg") and k in without}
    assert len(shared) == (12 + 8) * 8 and all(without[k] == v for k, v in shared.items())
    test = pd.read_csv(tmp_path / "with" / "test.csv", dtype={"id": str})
    assert set(test["id"]).isdisjoint(pd.read_csv(tmp_path / "with" / "train.csv", dtype={"id": str})["id"])
    frames = {k: v for k, v in with_test.items() if k.split("/")[0] in set(test["id"]) and k.endswith(".jpg")}
    assert len(frames) == 8 * 8 and not set(frames.values()) & set(shared.values())  # no clip reused


def _object_x(clip):
    """x of the pixels that change most over time (the moving object), per frame."""
    motion = np.abs(np.diff(clip.astype(np.float32), axis=0)).sum(-1)
    xs = []
    for frame in motion:
        ys, x = np.nonzero(frame > np.percentile(frame, 99))
        xs.append(x.mean())
    return np.array(xs)


def _flat_background(monkeypatch):
    """Render on a flat grey background (no texture, no drift) so the object can be segmented."""
    monkeypatch.setattr(synthetic, "_background", lambda rng, size: np.full((size, size, 3), 128.0))


def _moving_object(clip):
    """Per frame, the pixels of the object: unlike the grey background, and not static (distractors)."""
    unlike = np.abs(clip.astype(np.float32) - 128).sum(-1) > 60
    return unlike & ~unlike.all(0)


def _object_stats(clip):
    """Per-frame x and y centroid and area (pixels) of the moving object."""
    mask = _moving_object(clip)
    ys = np.array([np.nonzero(m)[0].mean() if m.any() else np.nan for m in mask])
    xs = np.array([np.nonzero(m)[1].mean() if m.any() else np.nan for m in mask])
    return {"x": xs, "y": ys, "area": mask.reshape(len(mask), -1).sum(1).astype(float)}


def _slope(values):
    keep = ~np.isnan(values)
    return np.polyfit(np.arange(len(values))[keep], values[keep], 1)[0]


# For each reversed pair: the statistic that defines it and its sign for the first class.
# "up" moves towards y = 0 (image rows grow downwards); "clockwise" on screen grows the angle.
PAIR_STATISTIC = {(0, 1): ("x", +1), (2, 3): ("scale", +1), (4, 5): ("y", -1), (6, 7): ("alpha", +1), (8, 9): ("angle", +1)}
PIXEL_STATISTIC = {"x": "x", "y": "y", "scale": "area", "alpha": "area"}  # rotation: track only


def test_reversed_pairs_are_time_reversals(monkeypatch):
    assert set(PAIR_STATISTIC) == set(REVERSED_PAIRS)
    for (a, b), (stat, sign) in PAIR_STATISTIC.items():
        for k in range(10):
            # The generator's motion definition: from the same random state, class b's track
            # is exactly class a's played backwards, and the defining statistic moves oppositely.
            track_a = _track(np.random.default_rng(k), a, 64, 12)
            track_b = _track(np.random.default_rng(k), b, 64, 12)
            for field in ("x", "y", "scale", "angle", "alpha"):
                assert np.array_equal(getattr(track_b, field), getattr(track_a, field)[::-1]), (a, b, field)
            assert sign * _slope(getattr(track_a, stat)) > 0 and sign * _slope(getattr(track_b, stat)) < 0, (a, b, k)
    lr = [np.polyfit(np.arange(11), _object_x(render_clip(cls=0, seed=0, split="train", number=n, size=64, frames=12)), 1)[0]
          for n in range(5)]
    rl = [np.polyfit(np.arange(11), _object_x(render_clip(cls=1, seed=0, split="train", number=n, size=64, frames=12)), 1)[0]
          for n in range(5)]
    assert all(s > 0 for s in lr) and all(s < 0 for s in rl)
    # Frame averages of the two classes are statistically alike: the mean frames of many
    # left->right and right->left clips differ far less than a single clip's frames do.
    mean_lr = np.mean([render_clip(cls=0, seed=1, split="train", number=n, size=32, frames=8).mean(0) for n in range(30)], 0)
    mean_rl = np.mean([render_clip(cls=1, seed=1, split="train", number=n, size=32, frames=8).mean(0) for n in range(30)], 0)
    assert np.abs(mean_lr - mean_rl).mean() < 12
    # In the rendered pixels too (clips are seeded by class, so each class has its own clips):
    _flat_background(monkeypatch)
    for (a, b), (stat, sign) in PAIR_STATISTIC.items():
        if stat not in PIXEL_STATISTIC:
            continue
        for n in range(4):
            for cls, direction in ((a, sign), (b, -sign)):
                clip = render_clip(cls=cls, seed=0, split="train", number=n, size=64, frames=12)
                assert direction * _slope(_object_stats(clip)[PIXEL_STATISTIC[stat]]) > 0, (cls, stat, n)


def test_growing_vs_shrinking_object(monkeypatch):
    def area(clip):
        motion = np.abs(np.diff(clip.astype(np.float32), axis=0)).sum(-1)
        return motion.reshape(len(motion), -1).max(1)

    grow = render_clip(cls=2, seed=0, split="val", number=1, size=64, frames=12)
    shrink = render_clip(cls=3, seed=0, split="val", number=1, size=64, frames=12)
    assert (np.abs(grow[-1].astype(int) - grow[0]).sum() > 0) and area(grow).shape == area(shrink).shape
    # "towards the camera" grows the object, "away" shrinks it: its area in pixels, on a flat
    # background, rises (falls) from the first frame to the last, in every clip tried.
    _flat_background(monkeypatch)
    for n in range(6):
        towards = _object_stats(render_clip(cls=2, seed=0, split="val", number=n, size=64, frames=12))["area"]
        away = _object_stats(render_clip(cls=3, seed=0, split="val", number=n, size=64, frames=12))["area"]
        assert _slope(towards) > 0 and towards[-1] > 1.5 * towards[0], (n, towards)
        assert _slope(away) < 0 and away[0] > 1.5 * away[-1], (n, away)


def test_video_formats(tmp_path):
    small = dict(classes=2, train_per_class=1, val_per_class=1, test_per_class=1, size=32, frames=8)
    summary, _ = prepare_synthetic(SynthConfig(**small, format="sthv2"), out=tmp_path / "v2")
    assert summary.splits == {"train": 2, "val": 2, "test": 2} and not summary.skipped
    assert pd.read_csv(tmp_path / "v2" / "train.csv")["num_frames"].tolist() == [8, 8]
    assert sorted(pd.read_csv(tmp_path / "v2" / "test.csv")["label"]) == [0, 1]  # labelled, unlike the official
    summary, _ = prepare_synthetic(SynthConfig(**small, format="diving48"), out=tmp_path / "d48")
    assert summary.splits == {"train": 2, "val": 2, "test": 2} and not summary.skipped
    assert load_manifest(tmp_path / "d48").classes == list(CLASS_NAMES[:2])


def test_bad_options():
    with pytest.raises(ConfigError, match="--classes"):
        SynthConfig(classes=99).check()
    with pytest.raises(ConfigError, match="--format"):
        SynthConfig(format="kinetics").check()


class _Interrupt(KeyboardInterrupt):
    """Ctrl-C, raised from the progress callback after a few clips."""


def _interrupt_after(clips):
    calls = []

    def progress():
        calls.append(1)
        if len(calls) == clips:
            raise _Interrupt

    return progress


def test_interrupted_generation_is_recognised_and_regenerated(tmp_path):
    config = SynthConfig(**TINY)
    raw = tmp_path / "s" / "raw"
    with pytest.raises(_Interrupt):
        synthetic.generate_raw(config, raw, progress=_interrupt_after(5))
    assert len([p for p in raw.iterdir() if p.is_dir()]) == 5  # half-written: 5 of 28 clips
    # A plain re-run, and one with --force, both regenerate what the generator left.
    summary, _ = prepare_synthetic(config, out=tmp_path / "s")
    assert summary.splits == {"train": 12, "val": 8, "test": 8} and not summary.skipped
    with pytest.raises(_Interrupt):
        synthetic.generate_raw(config, raw, progress=_interrupt_after(3))
    summary, _ = prepare_synthetic(config, out=tmp_path / "s", force=True)
    assert summary.splits == {"train": 12, "val": 8, "test": 8}
    prepare_synthetic(config, out=tmp_path / "clean")
    assert _files(raw) == _files(tmp_path / "clean" / "raw")  # the same bytes as an uninterrupted run


def test_a_raw_folder_the_generator_did_not_write_is_never_replaced(tmp_path):
    raw = tmp_path / "mine"
    raw.mkdir()
    (raw / "notes.txt").write_text("my own files")
    for force in (False, True):
        with pytest.raises(DataError, match="not written by the generator"):
            prepare_synthetic(SynthConfig(**TINY), out=tmp_path / "s", raw=raw, force=force)
    assert (raw / "notes.txt").read_text() == "my own files"
