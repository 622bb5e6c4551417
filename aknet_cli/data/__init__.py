"""Data layer: official-format readers, ``prepare``, sampling, transforms, loading, synthetic data.

Typical use::

    from aknet_cli.data import build_dataloader
    loader = build_dataloader("data/synth", "train", num_segments=8, batch_size=4, train=True,
                              resize=128, crop=112)
"""

from .dataset import VideoDataset, build_dataloader
from .manifest import Manifest, flip_map, load_manifest
from .sampling import sample_indices
from .transforms import ClipTransform, build_transform

__all__ = [
    "ClipTransform",
    "Manifest",
    "VideoDataset",
    "build_dataloader",
    "build_transform",
    "flip_map",
    "load_manifest",
    "sample_indices",
]
