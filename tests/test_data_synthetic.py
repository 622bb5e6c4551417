"""synth-sth: determinism, balance, and the time-reversed pairs."""

import numpy as np
import pandas as pd
import pytest

from aknet_cli.data.manifest import load_manifest
from aknet_cli.data.synthetic import CLASS_NAMES, REVERSED_PAIRS, SynthConfig, prepare_synthetic, render_clip
from aknet_cli.exceptions import ConfigError, DataError

TINY = dict(classes=4, train_per_class=3, val_per_class=2, size=32, frames=8)


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
    assert summary.splits == {"train": 12, "val": 8} and not summary.skipped and note is None
    manifest = load_manifest(tmp_path / "s")
    assert manifest.data["source_format"] == "sthv1" and manifest.data["name"] == "synth-sth"
    assert manifest.classes == sorted(CLASS_NAMES[:4])
    assert (tmp_path / "s" / "raw" / "something-something-v1-train.csv").is_file()
    counts = pd.read_csv(tmp_path / "s" / "train.csv")["label"].value_counts()
    assert counts.tolist() == [3, 3, 3, 3]
    # The same inputs again: accepted (idempotent); another seed needs --force.
    prepare_synthetic(SynthConfig(**TINY), out=tmp_path / "s")
    with pytest.raises(DataError, match="different dataset"):
        prepare_synthetic(SynthConfig(**TINY, seed=9), out=tmp_path / "s")


def _object_x(clip):
    """x of the pixels that change most over time (the moving object), per frame."""
    motion = np.abs(np.diff(clip.astype(np.float32), axis=0)).sum(-1)
    xs = []
    for frame in motion:
        ys, x = np.nonzero(frame > np.percentile(frame, 99))
        xs.append(x.mean())
    return np.array(xs)


def test_reversed_pairs_are_time_reversals():
    for a, b in REVERSED_PAIRS:
        # same seed/number: class b draws the same parameters as a and plays them backwards,
        # apart from the independent background drift and sensor noise.
        clip_a = render_clip(cls=a, seed=0, split="train", number=0, size=64, frames=12)
        clip_b = render_clip(cls=b, seed=0, split="train", number=0, size=64, frames=12)
        assert clip_a.shape == clip_b.shape
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


def test_growing_vs_shrinking_object():
    def area(clip):
        motion = np.abs(np.diff(clip.astype(np.float32), axis=0)).sum(-1)
        return motion.reshape(len(motion), -1).max(1)

    grow = render_clip(cls=2, seed=0, split="val", number=1, size=64, frames=12)
    shrink = render_clip(cls=3, seed=0, split="val", number=1, size=64, frames=12)
    assert (np.abs(grow[-1].astype(int) - grow[0]).sum() > 0) and area(grow).shape == area(shrink).shape


def test_video_formats(tmp_path):
    small = dict(classes=2, train_per_class=1, val_per_class=1, size=32, frames=8)
    summary, _ = prepare_synthetic(SynthConfig(**small, format="sthv2"), out=tmp_path / "v2")
    assert summary.splits == {"train": 2, "val": 2} and not summary.skipped
    assert pd.read_csv(tmp_path / "v2" / "train.csv")["num_frames"].tolist() == [8, 8]
    summary, _ = prepare_synthetic(SynthConfig(**small, format="diving48"), out=tmp_path / "d48")
    assert summary.splits == {"train": 2, "val": 2} and not summary.skipped
    assert load_manifest(tmp_path / "d48").classes == list(CLASS_NAMES[:2])


def test_bad_options():
    with pytest.raises(ConfigError, match="--classes"):
        SynthConfig(classes=99).check()
    with pytest.raises(ConfigError, match="--format"):
        SynthConfig(format="kinetics").check()
