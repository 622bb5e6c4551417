"""VideoDataset over prepared frame and video datasets; error policies; DataLoader."""

import json
import re

import pytest
import torch
from data_fixtures import make_diving48, make_sthv1, video_backends, write_frames

from aknet_cli.data import VideoDataset, build_dataloader, build_transform, load_manifest
from aknet_cli.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from aknet_cli.data.formats import read_diving48, read_sthv1
from aknet_cli.data.prepare import prepare_release
from aknet_cli.exceptions import DataError, VideoDecodeError

SMALL = dict(resize=16, crop=16)


@pytest.fixture()
def frames_ds(tmp_path):
    root = make_sthv1(tmp_path / "raw", frames=6)
    prepare_release(read_sthv1(root, frames_dir="frames"), out=tmp_path / "ds")
    return tmp_path / "ds", root


def _grey(clip):
    """The grey level 0..255 of each frame of a normalised clip (..., 3, H, W) of flat frames."""
    red = clip[..., 0, :, :].mean(dim=(-2, -1))
    return torch.round((red * IMAGENET_STD[0] + IMAGENET_MEAN[0]) * 255).int().tolist()


def test_frame_dataset_shapes(frames_ds):
    ds_dir, _ = frames_ds
    ds = VideoDataset(ds_dir, "train", num_segments=4, transform=build_transform(train=False, **SMALL))
    clip, label = ds[0]
    assert clip.shape == (4, 3, 16, 16) and label == 2
    # Frame i is grey 20*i. 6 frames, T=4: L=1.5, test centres int(0.75 + 1.5 i) = 0, 2, 3, 5.
    assert _grey(clip) == [0, 40, 60, 100]
    tdn = VideoDataset(ds_dir, "val", num_segments=3, frames_per_segment=5, num_clips=2,
                       transform=build_transform(train=False, **SMALL))
    clip = tdn[0][0]
    assert clip.shape == (2, 3, 5, 3, 16, 16)
    # L=2; clip k takes floor(2 (i + (k + 0.5) / 2)): clip 0 -> 0, 2, 4; clip 1 -> 1, 3, 5;
    # TDN takes f-2 .. f+2 around each, clamped to 0..5. Layout (clip, segment, frame).
    expected = [[[0, 0, 0, 1, 2], [0, 1, 2, 3, 4], [2, 3, 4, 5, 5]],
                [[0, 0, 1, 2, 3], [1, 2, 3, 4, 5], [3, 4, 5, 5, 5]]]
    assert _grey(clip) == [[[20 * f for f in seg] for seg in c] for c in expected]
    views = VideoDataset(ds_dir, "val", num_segments=3, frames_per_segment=5, num_clips=2,
                         transform=build_transform(train=False, resize=16, crop=16, three_crop=True))[0][0]
    assert views.shape == (6, 3, 5, 3, 16, 16)
    # clip-major: views 0-2 are the three crops of clip 0, views 3-5 those of clip 1
    assert _grey(views) == [[[20 * f for f in seg] for seg in expected[v // 3]] for v in range(6)]


def test_frames_are_the_sampled_ones(frames_ds):
    ds_dir, _ = frames_ds
    # Frame i has grey value 20*i; 6 frames, T=3 -> centres 1, 3, 5.
    ds = VideoDataset(ds_dir, "train", num_segments=3,
                      transform=lambda frames, label: (frames, label))
    clip, _ = ds[0]
    assert clip[:, 0, 0, 0].tolist() == [20, 60, 100]


def _bar_width(frames):
    """Columns of the fixture's bright bar in each uint8 frame (N, 3, H, W)."""
    return (frames[:, 0].float().mean(dim=1) > 100).sum(dim=1).tolist()


@pytest.mark.parametrize("backend", video_backends())
def test_video_dataset_every_backend(tmp_path, backend):
    import av

    root = make_diving48(tmp_path / "raw")
    prepare_release(read_diving48(root), out=tmp_path / "ds", backend=backend)
    ds = VideoDataset(tmp_path / "ds", "train", num_segments=4, backend=backend, train=True,
                      transform=build_transform(train=True, resize=32, crop=24))
    clip, label = ds[1]
    assert clip.shape == (4, 3, 24, 24) and label == 1
    identity = lambda frames, label: (frames, label)  # noqa: E731
    frames = VideoDataset(tmp_path / "ds", "train", num_segments=4, backend=backend, transform=identity)[1][0]
    # An independent decode of b.mp4; 8 frames, T=4 -> centres int(1 + 2 i) = 1, 3, 5, 7.
    with av.open(str(root / "rgb" / "b.mp4")) as container:
        every = [torch.from_numpy(f.to_ndarray(format="rgb24")).permute(2, 0, 1) for f in container.decode(video=0)]
    expected = torch.stack([every[i] for i in (1, 3, 5, 7)])
    assert _bar_width(expected) == [4 + 3 * i for i in (1, 3, 5, 7)]  # frame f's bar is 4 + 3f wide
    assert torch.equal(frames, expected)


def test_video_dataset_default_backend_is_the_resolved_one(tmp_path):
    from aknet_cli.data.video_io import default_backend

    root = make_diving48(tmp_path / "raw")
    prepare_release(read_diving48(root), out=tmp_path / "ds")
    assert VideoDataset(tmp_path / "ds", "train", num_segments=4).backend == default_backend()


def test_corrupt_clip_fail_and_skip(frames_ds):
    ds_dir, root = frames_ds
    (root / "frames" / "1" / "00003.jpg").write_bytes(b"not a jpeg")  # index 2, sampled for T=4
    transform = build_transform(train=False, **SMALL)
    ds = VideoDataset(ds_dir, "train", num_segments=4, transform=transform)
    with pytest.raises(VideoDecodeError, match="00003.jpg"):
        ds[0]
    skip = VideoDataset(ds_dir, "train", num_segments=4, transform=transform, on_error="skip")
    clip, label = skip[0]
    assert label == 0 and skip.num_skipped == 1  # substituted by the next clip
    skip.reset_skipped()
    assert skip.num_skipped == 0


def test_dataloader_batches_and_bad_split(frames_ds, tmp_path):
    ds_dir, root = frames_ds
    write_frames(root / "frames" / "1", 6)
    loader = build_dataloader(ds_dir, "train", num_segments=2, batch_size=2, train=True, **SMALL, seed=0)
    clips, labels = next(iter(loader))
    assert clips.shape == (2, 2, 3, 16, 16) and labels.shape == (2,)
    with pytest.raises(DataError, match="no split 'test'"):
        VideoDataset(ds_dir, "test", num_segments=2)
    with pytest.raises(DataError, match="not a prepared dataset"):
        VideoDataset(tmp_path, "train", num_segments=2)


def test_num_skipped_counts_bad_clips_not_attempts(frames_ds):
    ds_dir, root = frames_ds
    for vid in ("1", "2"):  # train clips 0 and 1 unreadable: asking for clip 0 tries 0, 1, then 2
        (root / "frames" / vid / "00001.jpg").write_bytes(b"not a jpeg")
    ds = VideoDataset(ds_dir, "train", num_segments=6, on_error="skip", transform=lambda f, label: (f, label))
    assert ds[0][1] == 1 and ds.num_skipped == 2  # served by clip 2 ("3", label 1 in sorted order)
    assert ds[1][1] == 1 and ds[0][1] == 1 and ds.num_skipped == 2  # met again: still two bad clips
    ds.reset_skipped()
    assert ds.num_skipped == 0 and ds[1][1] == 1 and ds.num_skipped == 1


def test_frames_of_different_sizes_are_an_error(frames_ds):
    from PIL import Image

    ds_dir, root = frames_ds
    Image.new("RGB", (24, 18)).save(root / "frames" / "1" / "00006.jpg")  # the others are 20x16
    ds = VideoDataset(ds_dir, "train", num_segments=6, transform=build_transform(train=False, **SMALL))
    with pytest.raises(VideoDecodeError, match=r"frames of .*frames/1 differ in size"):
        ds[0]


@pytest.mark.parametrize("text, message", [
    ("{not json", "is not valid JSON"),
    ("[1, 2]", "is not a JSON object"),
    ('{"media": "video", "media_root": "/x"}', "lacks 'classes'"),
    ('{"media": "tape", "media_root": "/x", "classes": ["a"]}', "media is 'tape'"),
    ('{"media": "video", "media_root": "/x", "classes": "a,b"}', "classes must be a non-empty list"),
    ('{"media": "frames", "media_root": "/x", "classes": ["a"]}', "lacks the frame_template"),
])
def test_bad_dataset_json(tmp_path, text, message):
    (tmp_path / "dataset.json").write_text(text)
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "dataset.json")) + ".*" + re.escape(message)):
        VideoDataset(tmp_path, "train", num_segments=2)


def test_reversed_pair_naming_an_unknown_class(frames_ds):
    ds_dir, _ = frames_ds
    data = json.loads((ds_dir / "dataset.json").read_text())
    data["reversed_pairs"] = [["Moving something up", "Moving something down"]]
    (ds_dir / "dataset.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match="reversed pair"):
        load_manifest(ds_dir).reversed_pairs


def test_split_csv_missing_columns(frames_ds):
    ds_dir, _ = frames_ds
    (ds_dir / "train.csv").write_text("id,path,label\n1,1,2\n")
    with pytest.raises(DataError, match=r"train\.csv lacks columns \['num_frames'\]; re-run `aknet prepare`"):
        VideoDataset(ds_dir, "train", num_segments=2)


def test_training_loader_takes_the_configs_crop_mode_and_flip_map(frames_ds):
    from aknet_cli.engine.config import DataConfig
    from aknet_cli.engine.distributed import DistContext
    from aknet_cli.engine.run_loaders import build_train_loader

    ds_dir, _ = frames_ds
    cfg = DataConfig(dataset=str(ds_dir), resize=16, crop=12, crop_mode="multiscale", flip=True, num_workers=0,
                     pin_memory=False, persistent_workers=False)
    loader, _ = build_train_loader(cfg, DistContext(), frames_per_segment=1, num_segments=2, batch_size=2, seed=0)
    transform = loader.dataset.dataset.transform
    # Sorted V1 names: 1 = Pushing ... left to right, 2 = ... right to left (the fixture's pair).
    assert (transform.crop_mode, transform.flip, transform.flip_map) == ("multiscale", True, {1: 2, 2: 1})
    clips, labels = next(iter(loader))
    assert clips.shape == (2, 2, 3, 12, 12) and labels.shape == (2,)


def test_flip_labels_keep_only_where_no_class_has_a_mirror(frames_ds, tmp_path):
    from aknet_cli.engine.config import DataConfig
    from aknet_cli.engine.distributed import DistContext
    from aknet_cli.engine.run_loaders import build_train_loader
    from aknet_cli.exceptions import ConfigError

    def loader(dataset, **data):
        cfg = DataConfig(dataset=str(dataset), resize=32, crop=24, flip=True, num_workers=0, pin_memory=False,
                         persistent_workers=False, **data)
        return build_train_loader(cfg, DistContext(), frames_per_segment=1, num_segments=2, batch_size=2, seed=0)[0]

    root = make_diving48(tmp_path / "raw")
    prepare_release(read_diving48(root), out=tmp_path / "dv")
    with pytest.raises(ConfigError, match=r"has no flip map .* or data.flip_labels = \"keep\""):
        loader(tmp_path / "dv")  # swap, the default, needs a flip map: Diving48 has none
    transform = loader(tmp_path / "dv", flip_labels="keep").dataset.dataset.transform
    assert transform.flip and transform.flip_map == {}  # mirrored clips keep their dive
    with pytest.raises(ConfigError, match=r"data.flip_labels = \"keep\", but .* has left/right class pairs"):
        loader(frames_ds[0], flip_labels="keep")  # Sth-Sth: a kept label would mislabel the pair
