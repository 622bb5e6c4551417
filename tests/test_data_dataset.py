"""VideoDataset over prepared frame and video datasets; error policies; DataLoader."""

import pytest
import torch
from data_fixtures import make_diving48, make_sthv1, write_frames

from aknet_cli.data import VideoDataset, build_dataloader, build_transform
from aknet_cli.data.formats import read_diving48, read_sthv1
from aknet_cli.data.prepare import prepare_release
from aknet_cli.exceptions import DataError, VideoDecodeError

SMALL = dict(resize=16, crop=16)


@pytest.fixture()
def frames_ds(tmp_path):
    root = make_sthv1(tmp_path / "raw", frames=6)
    prepare_release(read_sthv1(root, frames_dir="frames"), out=tmp_path / "ds")
    return tmp_path / "ds", root


def test_frame_dataset_shapes(frames_ds):
    ds_dir, _ = frames_ds
    ds = VideoDataset(ds_dir, "train", num_segments=4, transform=build_transform(train=False, **SMALL))
    clip, label = ds[0]
    assert clip.shape == (4, 3, 16, 16) and label == 2
    tdn = VideoDataset(ds_dir, "val", num_segments=3, frames_per_segment=5, num_clips=2,
                       transform=build_transform(train=False, **SMALL))
    assert tdn[0][0].shape == (2, 3, 5, 3, 16, 16)


def test_frames_are_the_sampled_ones(frames_ds):
    ds_dir, _ = frames_ds
    # Frame i has grey value 20*i; 6 frames, T=3 -> centres 1, 3, 5.
    ds = VideoDataset(ds_dir, "train", num_segments=3,
                      transform=lambda frames, label: (frames, label))
    clip, _ = ds[0]
    assert clip[:, 0, 0, 0].tolist() == [20, 60, 100]


def test_video_dataset_both_backends(tmp_path):
    root = make_diving48(tmp_path / "raw")
    prepare_release(read_diving48(root), out=tmp_path / "ds")
    for backend in ("decord", "pyav"):
        ds = VideoDataset(tmp_path / "ds", "train", num_segments=4, backend=backend, train=True,
                          transform=build_transform(train=True, resize=32, crop=24))
        clip, label = ds[1]
        assert clip.shape == (4, 3, 24, 24) and label == 1


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
