"""The data loaders of a training run (and of ``aknet eval``): built from the run's
:class:`~aknet_cli.engine.config.DataConfig` and the process group, sharded over the ranks,
deterministic enough for a bit-identical resume. (:func:`aknet_cli.data.build_dataloader` is
the plain loader for scripts and BN calibration: one process, no resume.)

Two facts make a resumed run equal to an uninterrupted one:

* the order of an epoch is a pure function of ``(seed, epoch)`` (``DistributedSampler``'s
  permutation), and a resumed epoch simply starts ``start`` samples into it;
* every clip's random sampling, crop and flip are drawn from a generator seeded by
  ``(seed, epoch, index)``, inside a forked RNG so the global stream (dropout) is untouched,
  whatever the number of workers.

The model decides what the data must look like (frames per segment for TDN, the flip map for
label-swapping flips), so the engine builds loaders from the model and the dataset together.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from ..data import VideoDataset, build_transform
from ..exceptions import ConfigError
from .config import DataConfig
from .distributed import DistContext


def item_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed for one clip of one epoch, independent of worker count and order."""
    state = np.random.SeedSequence([seed, epoch, index]).generate_state(1, dtype=np.uint64)[0]
    return int(state >> np.uint64(1))


class SeededClips(Dataset):
    """Wraps a :class:`VideoDataset` so an item is ``(index, seed)`` → a reproducible clip."""

    def __init__(self, dataset: VideoDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        index, seed = key
        with torch.random.fork_rng(devices=[]):
            # The CPU generator only: torch.manual_seed would also reseed every CUDA generator,
            # which fork_rng(devices=[]) does not restore, shifting the GPU's dropout stream.
            torch.default_generator.manual_seed(seed)
            return self.dataset[index]


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` that yields ``(index, seed)`` and can start mid-epoch."""

    def __init__(self, dataset: Dataset, ctx: DistContext, *, seed: int) -> None:
        super().__init__(dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=seed, drop_last=True)
        self.start = 0

    def set_start(self, start: int) -> None:
        """Skip the first ``start`` samples of this rank's share of the current epoch."""
        self.start = start

    def __iter__(self) -> Iterator[tuple[int, int]]:
        indices = list(super().__iter__())[self.start:]
        return iter([(i, item_seed(self.seed, self.epoch, i)) for i in indices])

    def __len__(self) -> int:
        return self.num_samples - self.start


class ShardSampler(Sampler):
    """Evaluation split over ranks without padding: every clip is counted exactly once."""

    def __init__(self, size: int, ctx: DistContext) -> None:
        self.indices = list(range(ctx.rank, size, ctx.world_size))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def _generator(seed: int) -> torch.Generator:
    # DataLoader draws its workers' base seed from this generator; without one it would draw
    # from the global RNG and shift the dropout stream between a resumed run and a straight one.
    return torch.Generator().manual_seed(seed)


def build_train_loader(cfg: DataConfig, ctx: DistContext, *, frames_per_segment: int, num_segments: int,
                       batch_size: int, seed: int, protocol: str = "aknet") -> tuple[DataLoader, ResumableSampler]:
    """The training loader and its sampler (call ``sampler.set_epoch`` / ``set_start``); ``protocol``
    is the resolved one (:func:`~aknet_cli.engine.protocol.training_protocol`)."""
    dataset = VideoDataset(cfg.dataset, cfg.train_split, num_segments=num_segments,
                           frames_per_segment=frames_per_segment, train=True, backend=cfg.backend,
                           on_error=cfg.on_error, protocol=protocol)
    flip_map = dataset.manifest.flip_map
    if cfg.flip and cfg.flip_labels == "swap" and not flip_map:
        # A plain flip would mislabel direction-sensitive classes; only swap where the data says how.
        raise ConfigError(f"data.flip = true, but {cfg.dataset} has no flip map (no left/right class pairs); "
                          f"set data.flip = false, or data.flip_labels = \"keep\" if a mirror changes no class")
    if cfg.flip and cfg.flip_labels == "keep" and flip_map:
        raise ConfigError(f"data.flip_labels = \"keep\", but {cfg.dataset} has left/right class pairs (its flip map) "
                          f"that a kept label would mislabel; set data.flip_labels = \"swap\"")
    if cfg.flip_labels == "keep":
        flip_map = {}
    dataset.transform = build_transform(train=True, resize=cfg.resize, crop=cfg.crop, resize_mode=cfg.resize_mode,
                                        crop_mode=cfg.crop_mode, flip=cfg.flip, flip_map=flip_map, protocol=protocol)
    if len(dataset) < batch_size * ctx.world_size:
        raise ConfigError(f"{cfg.dataset} split {cfg.train_split!r} has {len(dataset)} clips, fewer than one global "
                          f"batch ({batch_size * ctx.world_size}); lower optim.batch_size")
    sampler = ResumableSampler(dataset, ctx, seed=seed)
    loader = DataLoader(SeededClips(dataset), batch_size=batch_size, sampler=sampler, drop_last=True,
                        **_worker_options(cfg, ctx), generator=_generator(seed))
    return loader, sampler


def build_eval_loader(cfg: DataConfig, ctx: DistContext, *, split: str, frames_per_segment: int, num_segments: int,
                      batch_size: int, num_clips: int = 1, three_crop: bool = False, crop: int | None = None,
                      persistent: bool | None = None, protocol: str = "aknet") -> DataLoader:
    """A deterministic evaluation loader over ``split`` (each clip on exactly one rank), its clips
    sampled and cropped under ``protocol``."""
    dataset = VideoDataset(cfg.dataset, split, num_segments=num_segments, frames_per_segment=frames_per_segment,
                           train=False, backend=cfg.backend, num_clips=num_clips, on_error=cfg.on_error,
                           protocol=protocol)
    dataset.transform = build_transform(train=False, resize=cfg.resize, crop=crop or cfg.crop,
                                        resize_mode=cfg.resize_mode, three_crop=three_crop, protocol=protocol)
    options = _worker_options(cfg, ctx)
    if persistent is not None:
        options["persistent_workers"] = persistent and options["num_workers"] > 0
    return DataLoader(dataset, batch_size=batch_size, sampler=ShardSampler(len(dataset), ctx), **options,
                      generator=_generator(0))


def _worker_options(cfg: DataConfig, ctx: DistContext) -> dict:
    workers = max(0, cfg.num_workers)
    return {
        "num_workers": workers,
        "pin_memory": cfg.pin_memory and ctx.device.type == "cuda",
        "persistent_workers": cfg.persistent_workers and workers > 0,
    }
