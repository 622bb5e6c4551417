"""Checkpoint files: written atomically, read with ``weights_only=True``.

A checkpoint is a plain dict (so ``torch.load(..., weights_only=True)`` can read it)::

    {"format": "aknet-checkpoint/1", "kind": "backbone" | "aknet",
     "config": {"backbone": ..., "num_classes": ..., "num_segments": ..., "aknet": {...}},
     "state_dict": {...}, "meta": {...}[, "train_state": {...}]}

``train_state`` (in a training run's ``last.pt``) holds what an exact resume needs: the
optimizer, scheduler and AMP scaler states, epoch and step, and every RNG state.

Plain state dicts (ours or another toolkit's, possibly under ``state_dict`` / ``model``) are
accepted too; ``module.`` prefixes left by DataParallel/DDP are removed on load.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .._atomic import atomic_output
from ..exceptions import CheckpointError

FORMAT = "aknet-checkpoint/1"


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename over it."""
    with atomic_output(path) as tmp:
        torch.save(obj, tmp)


def save_checkpoint(
    path: str | os.PathLike,
    *,
    kind: str,
    config: dict[str, Any],
    state_dict: dict[str, torch.Tensor],
    meta: dict[str, Any] | None = None,
    train_state: dict[str, Any] | None = None,
) -> None:
    """Write a checkpoint atomically (see module docstring for the layout)."""
    obj = {"format": FORMAT, "kind": kind, "config": config, "state_dict": state_dict, "meta": meta or {}}
    if train_state is not None:
        obj["train_state"] = train_state
    atomic_torch_save(obj, path)


def strip_module_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove the ``module.`` prefix DataParallel / DDP put in front of every key."""
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint or a plain state dict.

    Returns:
        ``{"kind": str | None, "config": dict, "state_dict": dict, "meta": dict,
        "train_state": dict | None}``; ``kind`` is ``None`` for a plain state dict.

    Raises:
        CheckpointError: the file is missing, unreadable, or holds no state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"cannot read checkpoint {path}: not a PyTorch file, truncated, or holding objects "
            f"other than tensors ({type(exc).__name__})"
        ) from None
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        return {
            "kind": obj.get("kind"),
            "config": dict(obj.get("config") or {}),
            "state_dict": strip_module_prefix(obj["state_dict"]),
            "meta": dict(obj.get("meta") or {}),
            "train_state": obj.get("train_state"),
        }
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} holds neither an aknet checkpoint nor a state dict")
    return {"kind": None, "config": {}, "state_dict": strip_module_prefix(obj), "meta": {}, "train_state": None}


def load_state_strict(
    module: torch.nn.Module,
    state: dict[str, torch.Tensor],
    source: str,
    *,
    allow_missing: tuple[str, ...] = (),
) -> None:
    """``load_state_dict(strict=True)`` with a one-line error that names the file.

    Args:
        allow_missing: key prefixes the file may lack (e.g. ``("fc.",)`` for ImageNet
            weights loaded under a new classifier).
    """
    own = module.state_dict()
    wrong = [k for k, v in state.items() if k in own and tuple(own[k].shape) != tuple(v.shape)]
    if wrong:
        k = wrong[0]
        raise CheckpointError(
            f"{source} does not match the model: {len(wrong)} tensors differ in shape (e.g. {k}: "
            f"{tuple(state[k].shape)} in the file, {tuple(own[k].shape)} in the model); "
            f"is it a checkpoint of this backbone, class count and frame count?"
        )
    missing, unexpected = module.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith(allow_missing)] if allow_missing else missing
    if missing or unexpected:
        sample = ", ".join((list(missing) + list(unexpected))[:3])
        raise CheckpointError(
            f"{source} does not match the model: {len(missing)} missing and {len(unexpected)} "
            f"unexpected keys (e.g. {sample}); is it a checkpoint of this backbone?"
        )
