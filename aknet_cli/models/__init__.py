"""AK-Net and the backbone contract it builds on."""

from __future__ import annotations

from torch import nn


def count_parameters(module: nn.Module | None) -> int:
    """Number of parameters of ``module`` (0 for ``None``, e.g. an absent position module)."""
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def __getattr__(name: str):
    # Lazy, so that importing aknet_cli.models stays cheap for the CLI.
    if name == "fuse_for_inference":
        from .fuse import fuse_for_inference

        return fuse_for_inference
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
