"""synth-relations: the relation of each class checked from what was drawn (object masks and
frame pixels), the time-reversed pairs, determinism and the official layouts."""

import numpy as np
import pytest

from aknet_cli.data.manifest import load_manifest
from aknet_cli.data.synthetic import SynthConfig, prepare_synthetic
from aknet_cli.data.synthetic_relations import (
    CLASS_NAMES, LAYOUT_CLASSES, REVERSED_PAIRS, relation_scene, render_relation_clip,
)
from aknet_cli.exceptions import ConfigError

SIZE, FRAMES, CLIPS = 96, 12, 6


def _clip(cls, number, split="train"):
    return render_relation_clip(cls=cls, seed=0, split=split, number=number, size=SIZE, frames=FRAMES,
                                with_masks=True)


def _centroids(mask):
    """``(frames, 2)`` centre (x, y) of one object's drawn coverage."""
    yy, xx = np.mgrid[0:mask.shape[1], 0:mask.shape[2]]
    weight = mask.reshape(len(mask), -1).sum(1)
    return np.stack([(mask * xx).reshape(len(mask), -1).sum(1) / weight,
                     (mask * yy).reshape(len(mask), -1).sum(1) / weight], axis=1)


def _gaps(masks, a, b):
    """Per frame, the least distance in pixels between the pixels of objects a and b (0 if they overlap)."""
    out = []
    for frame in masks:
        pa, pb = np.argwhere(frame[a] > 0.5), np.argwhere(frame[b] > 0.5)
        d = np.sqrt(((pa[:, None, :] - pb[None, :, :]) ** 2).sum(-1)).min()
        out.append(0.0 if d <= 1.0 else d)
    return np.array(out)


def _cos(u, v):
    return float(np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v)))


def _drawn_on_top(clip, masks, front, back):
    """In the frame where the two objects overlap most, is the overlap the colour of ``front``
    rather than of ``back`` (each estimated from the pixels where it is alone, in every frame)?"""
    overlap = (masks[:, front] > 0.99) & (masks[:, back] > 0.99)
    f = int(overlap.reshape(FRAMES, -1).sum(1).argmax())
    assert overlap[f].sum() >= 4, "the objects never overlap"
    colour = lambda k, other: clip[(masks[:, k] > 0.99) & (masks[:, other] < 0.01)].mean(0)  # noqa: E731
    seen = clip[f][overlap[f]].mean(0)
    return np.abs(seen - colour(front, back)).sum() < np.abs(seen - colour(back, front)).sum()


def _motion(track):
    return track[-1] - track[0]


def _check_relation(cls, clip, masks):
    a, b = _centroids(masks[:, 0]), _centroids(masks[:, 1])
    gaps = _gaps(masks, 0, 1)
    name = CLASS_NAMES[cls]
    if cls in (0, 1, 6):  # A alone moves; B static, far
        assert np.linalg.norm(_motion(a)) > 0.2 * SIZE and np.linalg.norm(_motion(b)) < 0.5, name
        heading = _motion(a) if cls != 1 else -_motion(a)  # "away" is "towards" played backwards
        near = a[-1] if cls == 0 else a[0] if cls == 1 else a[FRAMES // 2]
        alignment = _cos(heading, b[0] - near)
        assert (alignment > 0.9) if cls in (0, 1) else (abs(alignment) < 0.45), (name, alignment)
        assert gaps.min() > 0.07 * SIZE, (name, gaps.min())
        assert (np.diff(gaps) < 0).all() if cls == 0 else (np.diff(gaps) > 0).all() if cls == 1 else True, name
    elif cls in (2, 3, 7):  # both move, in opposite directions
        assert _cos(_motion(a), _motion(b)) < -0.95, name
        assert min(np.linalg.norm(_motion(a)), np.linalg.norm(_motion(b))) > 0.1 * SIZE, name
        on_line = _cos(b[FRAMES // 2] - a[FRAMES // 2], _motion(a))
        assert (abs(on_line) > 0.95) if cls in (2, 3) else (abs(on_line) < 0.6), (name, on_line)
        assert gaps.min() > 0.07 * SIZE, (name, gaps.min())
        assert (np.diff(gaps) < 0).all() if cls == 2 else (np.diff(gaps) > 0).all() if cls == 3 else True, name
    elif cls in (4, 5):  # A ends (starts) on top of B
        on, off = (-1, 0) if cls == 4 else (0, -1)
        assert gaps[on] == 0 and gaps[off] > 0, name
        assert _drawn_on_top(clip, masks, 0, 1), name
    elif cls in (8, 9):  # A crosses B, drawn in front of it (8) or behind it (9)
        assert gaps[0] > 0 and gaps[-1] > 0 and gaps.min() == 0, name
        assert _drawn_on_top(clip, masks, 0, 1) == (cls == 8), name
    else:  # 10: A moves up to B and stops; B then moves on in A's direction
        early, late = slice(0, FRAMES // 4), slice(-FRAMES // 4, None)
        assert np.ptp(b[early], axis=0).max() < 0.5 and np.ptp(a[late], axis=0).max() < 0.5, name
        assert _cos(b[-1] - b[0], a[-1] - a[0]) > 0.95 and gaps.min() < 0.03 * SIZE, name
    for k in range(2, masks.shape[1]):  # distractors: static, and never near A or B
        assert np.ptp(_centroids(masks[:, k]), axis=0).max() < 0.5
        assert min(_gaps(masks, k, 0).min(), _gaps(masks, k, 1).min()) > 0.15 * SIZE


@pytest.mark.parametrize("cls", range(len(CLASS_NAMES)), ids=lambda c: CLASS_NAMES[c].replace(" ", "_"))
def test_each_class_draws_its_relation(cls):
    for number in range(CLIPS):
        _check_relation(cls, *_clip(cls, number))


def test_layout_classes_keep_one_distance_distribution():
    """The nearest gap between A and B has the same range in every layout class, so that no one
    place of the frame tells them apart by how close the objects come."""
    nearest = {cls: [_gaps(_clip(cls, n)[1], 0, 1).min() / SIZE for n in range(CLIPS)] for cls in LAYOUT_CLASSES}
    lows, highs = [min(v) for v in nearest.values()], [max(v) for v in nearest.values()]
    assert max(lows) - min(lows) < 0.06 and max(highs) - min(highs) < 0.06, nearest


def test_reversed_pairs_are_time_reversals():
    for a, b in REVERSED_PAIRS:
        for k in range(8):
            first = relation_scene(np.random.default_rng(k), a, SIZE, FRAMES)
            second = relation_scene(np.random.default_rng(k), b, SIZE, FRAMES)
            for ta, tb in zip(first.tracks, second.tracks):
                np.testing.assert_array_equal(tb, ta[::-1])
    # A frame-averaging model sees the same thing in both classes of a pair: the mean frame over
    # many clips differs between the two classes far less than the frames of one clip do.
    for a, b in REVERSED_PAIRS[:2]:
        mean = lambda cls: np.mean([render_relation_clip(cls=cls, seed=1, split="train", number=n, size=32,  # noqa: E731
                                                         frames=8).mean(0) for n in range(30)], 0)
        assert np.abs(mean(a) - mean(b)).mean() < 12


def test_deterministic_and_prepared_in_every_official_layout(tmp_path):
    small = dict(kind="relations", classes=4, train_per_class=2, val_per_class=1, test_per_class=1, size=48,
                 frames=6, seed=5)
    prepare_synthetic(SynthConfig(**small), out=tmp_path / "a")
    prepare_synthetic(SynthConfig(**small), out=tmp_path / "b")
    files = lambda root: {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}  # noqa: E731
    assert files(tmp_path / "a" / "raw") == files(tmp_path / "b" / "raw")
    manifest = load_manifest(tmp_path / "a")
    assert manifest.data["name"] == "synth-relations" and manifest.data["info"]["synthetic"]["kind"] == "relations"
    assert manifest.classes == sorted(CLASS_NAMES[:4])
    assert {tuple(sorted(manifest.classes[i] for i in p)) for p in manifest.reversed_pairs} == {
        tuple(sorted(CLASS_NAMES[i] for i in p)) for p in REVERSED_PAIRS[:2]}
    for fmt in ("sthv2", "diving48"):
        summary, _ = prepare_synthetic(SynthConfig(**small, format=fmt), out=tmp_path / fmt)
        assert summary.splits == {"train": 8, "val": 4, "test": 4} and not summary.skipped, fmt


def test_kind_defaults_and_errors():
    assert (SynthConfig(kind="relations").classes, SynthConfig(kind="relations").size) == (len(CLASS_NAMES), 112)
    assert (SynthConfig().classes, SynthConfig().size) == (12, 112)
    assert "kind" not in SynthConfig().record()  # synth-sth datasets prepared before kinds existed still match
    with pytest.raises(ConfigError, match="--kind"):
        SynthConfig(kind="social").check()
    with pytest.raises(ConfigError, match="between 2 and 11 for --kind relations"):
        SynthConfig(kind="relations", classes=12).check()
