"""The one mixed-precision policy of training, evaluation and ``aknet bench``.

On CUDA, ``amp`` means autocast in bfloat16 where the GPU runs it natively (compute capability
8.0 and up: A100, H100, RTX 30xx+), else float16 with a ``GradScaler``. ``is_bf16_supported()``
alone also answers yes for *emulated* bf16 (V100, T4), which cuDNN does not run natively:
those GPUs get float16. On CPU everything runs in float32: autocast there is slower than fp32
on most CPUs and would change results between machines.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 in hardware (not emulated)."""
    if device.type != "cuda":
        return False
    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # torch < 2.3 has no including_emulation and did not count emulation
        return bool(torch.cuda.is_bf16_supported())


def autocast_dtype(device: torch.device, amp: bool) -> torch.dtype | None:
    """The autocast dtype for ``device``: ``None`` (float32) on CPU or with ``amp`` off."""
    if not amp or device.type != "cuda":
        return None
    return torch.bfloat16 if native_bf16(device) else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None):
    """``torch.autocast`` for ``dtype``, or a no-op context for float32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def grad_scaler(device: torch.device, dtype: torch.dtype | None) -> torch.amp.GradScaler:
    """A ``GradScaler``, enabled only for float16 (bf16 has float32's range and needs none)."""
    return torch.amp.GradScaler(device.type if device.type == "cuda" else "cpu", enabled=dtype == torch.float16)


def restore_scaler(scaler: torch.amp.GradScaler, state: dict[str, Any] | None) -> str | None:
    """Load a saved scaler state where it applies.

    A run saved with the scaler off (CPU, bf16, ``--no-amp``) has an empty state; resumed where
    float16 is chosen, the scaler starts afresh (its scale settles within a few steps). The
    converse, a float16 state resumed without a scaler, is simply not needed.

    Returns:
        A note for the user when the saved state could not be used, else ``None``.
    """
    if not scaler.is_enabled():
        return None
    if not state:
        return "the checkpoint was saved without a float16 GradScaler: it starts from its default scale"
    scaler.load_state_dict(state)
    return None
