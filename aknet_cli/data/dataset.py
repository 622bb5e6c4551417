"""``VideoDataset``: clips from a prepared dataset folder, ready for a video backbone."""

from __future__ import annotations

import logging
import multiprocessing
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..exceptions import ConfigError, VideoDecodeError
from .manifest import load_manifest
from .sampling import sample_indices
from .transforms import build_transform
from .video_io import check_backend, read_frame_files, read_video

log = logging.getLogger(__name__)
ON_ERROR = ("fail", "skip")


class VideoDataset(Dataset):
    """Sampled, transformed clips of one split of a prepared dataset.

    Args:
        dataset_dir: folder written by ``aknet prepare`` (holds ``dataset.json``).
        split: ``train``, ``val`` or ``test``.
        num_segments: ``T``.
        frames_per_segment: 1 (TSN/TSM) or 5 (TDN); read it from
            ``VideoBackbone.frames_per_segment``.
        train: random sampling and the training transform.
        transform: a callable ``(uint8 (N, 3, H, W), label) -> (float clip, label)``; default
            :func:`~aknet_cli.data.transforms.build_transform` (resize 256, crop 224, no flip).
        backend: ``torchcodec``, ``decord`` or ``pyav`` for video datasets; ``None`` for
            :func:`~aknet_cli.data.video_io.default_backend`.
        num_clips: test clips per video (the protocol's: TSM's twice sample for 2).
        protocol: ``tsm``, ``tdn``, ``mmaction2`` or ``aknet``: which frames a clip is made of
            (:func:`~aknet_cli.data.sampling.sample_indices`); give the transform the same one.
        on_error: ``fail`` raises :class:`VideoDecodeError` naming the file; ``skip`` logs
            it, returns another clip (the next index, deterministically) and counts the bad
            clip in :attr:`num_skipped` (once, however often it is met).

    Item: ``(clip, label)`` with clip ``float32`` of shape ``(T, 3, H, W)``, or
    ``(T, 5, 3, H, W)`` if ``frames_per_segment == 5``; with ``num_clips * crops > 1`` a
    leading view dimension is added, ``(num_clips * crops, T, ...)``, clip-major.
    """

    def __init__(
        self,
        dataset_dir: str | Path,
        split: str,
        *,
        num_segments: int,
        frames_per_segment: int = 1,
        train: bool = False,
        transform: Callable | None = None,
        backend: str | None = None,
        num_clips: int = 1,
        on_error: str = "fail",
        protocol: str = "aknet",
    ) -> None:
        if on_error not in ON_ERROR:
            raise ConfigError(f"unknown on_error policy {on_error!r}; choose one of {', '.join(ON_ERROR)}")
        self.manifest = load_manifest(Path(dataset_dir))
        self.backend = check_backend(backend)
        table = self.manifest.check_split(split, need_labels=train)
        self.split = split
        self.paths = table["path"].tolist()
        self.num_frames = table["num_frames"].to_numpy()
        self.labels = table["label"].to_numpy()
        self.num_segments = num_segments
        self.frames_per_segment = frames_per_segment
        self.train = train
        self.num_clips = num_clips
        self.protocol = protocol
        self.on_error = on_error
        self.transform = transform if transform is not None else build_transform(train=train)
        # One flag per clip, in shared memory so DataLoader worker processes mark the bad clips
        # the main process counts; a flag (not a counter) counts a clip once, however many
        # substitution chains or epochs meet it.
        self._bad = multiprocessing.get_context().Array("b", len(self.paths))
        sample_indices(1, num_segments, train=train, frames_per_segment=frames_per_segment, num_clips=num_clips,
                       protocol=protocol)

    @property
    def classes(self) -> list[str]:
        return self.manifest.classes

    @property
    def num_skipped(self) -> int:
        """Distinct unreadable clips met under ``on_error="skip"`` since the last :meth:`reset_skipped`."""
        with self._bad.get_lock():
            return sum(self._bad[:])

    def reset_skipped(self) -> None:
        with self._bad.get_lock():
            self._bad[:] = bytes(len(self._bad))

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        for attempt in range(len(self)):
            current = (index + attempt) % len(self)
            try:
                return self._load(current)
            except VideoDecodeError as exc:
                if self.on_error == "fail":
                    raise
                with self._bad.get_lock():
                    self._bad[current] = 1
                log.warning("skipping unreadable clip %s: %s", self.path(current), exc)
        raise VideoDecodeError(f"no clip of split {self.split!r} in {self.manifest.folder} could be decoded")

    def path(self, index: int) -> Path:
        return self.manifest.media_root / self.paths[index]

    def _load(self, index: int) -> tuple[torch.Tensor, int]:
        # Draw from torch's generator: DataLoader seeds it per worker and per epoch.
        rng = np.random.default_rng(int(torch.randint(0, 2**62, ()))) if self.train else None
        indices = sample_indices(
            int(self.num_frames[index]), self.num_segments, train=self.train,
            frames_per_segment=self.frames_per_segment, num_clips=self.num_clips, rng=rng, protocol=self.protocol,
        )
        flat = indices.reshape(-1).tolist()
        if self.manifest.media == "frames":
            frames = read_frame_files(self.path(index), flat, template=self.manifest.frame_template,
                                      start_index=self.manifest.start_index)
        else:
            frames = read_video(self.path(index), flat, backend=self.backend)
        clip, label = self.transform(frames, int(self.labels[index]))
        # (views?, clips*T*fps, 3, h, w) -> (views*clips, T, fps, 3, h, w), clip-major.
        views = clip.reshape(-1, self.num_clips, self.num_segments, self.frames_per_segment, *clip.shape[-3:])
        clip = views.transpose(0, 1).reshape(-1, self.num_segments, self.frames_per_segment, *clip.shape[-3:])
        if self.frames_per_segment == 1:
            clip = clip.squeeze(2)
        if clip.shape[0] == 1:
            clip = clip.squeeze(0)
        return clip, label


def build_dataloader(
    dataset_dir: str | Path,
    split: str,
    *,
    num_segments: int,
    batch_size: int,
    train: bool,
    frames_per_segment: int = 1,
    num_workers: int = 0,
    resize: int = 256,
    crop: int = 224,
    resize_mode: str = "short",
    crop_mode: str = "random",
    flip: bool = False,
    three_crop: bool = False,
    num_clips: int = 1,
    backend: str | None = None,
    on_error: str = "fail",
    seed: int | None = None,
    protocol: str = "aknet",
) -> DataLoader:
    """A :class:`VideoDataset` wrapped in a DataLoader (shuffled, last batch dropped in training).

    Batches are ``(B, T, 3, crop, crop)`` (``(B, T, 5, 3, crop, crop)`` for TDN, with a view
    dimension after ``B`` for several clips or crops) and ``(B,)`` labels.
    """
    dataset = VideoDataset(dataset_dir, split, num_segments=num_segments, frames_per_segment=frames_per_segment,
                           train=train, backend=backend, num_clips=num_clips, on_error=on_error, protocol=protocol)
    dataset.transform = build_transform(train=train, resize=resize, crop=crop, resize_mode=resize_mode,
                                        crop_mode=crop_mode, flip=flip, flip_map=dataset.manifest.flip_map,
                                        three_crop=three_crop, protocol=protocol)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=train, drop_last=train, num_workers=num_workers,
        persistent_workers=num_workers > 0, generator=generator,
    )
