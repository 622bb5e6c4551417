"""Data layer: official-format readers, ``prepare``, sampling, transforms, loading, synthetic data.

Typical use::

    from aknet_cli.data import build_dataloader
    loader = build_dataloader("data/synth", "train", num_segments=8, batch_size=4, train=True,
                              resize=128, crop=112)

The names below are imported on first use: ``aknet prepare`` reaches this package and must
not pay for torch/torchvision (seconds) when it only reads annotations and counts frames.
"""

from __future__ import annotations

from importlib import import_module

_EXPORTS = {
    "ClipTransform": ".transforms",
    "Manifest": ".manifest",
    "VideoDataset": ".dataset",
    "build_dataloader": ".dataset",
    "build_transform": ".transforms",
    "flip_map": ".manifest",
    "load_manifest": ".manifest",
    "sample_indices": ".sampling",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
