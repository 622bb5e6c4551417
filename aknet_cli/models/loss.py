"""The training objective (eqs. 15-16)."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def sparsity_regularizer(heatmap: torch.Tensor) -> torch.Tensor:
    """``r_e = mean 4H(1-H)`` (eq. 15): 0 for a binary heatmap, 1 where ``H = 0.5``.

    Eq. 15 averages over the ``H×W`` positions of a frame; we also average over frames and
    clips, so the term's scale does not depend on ``T`` or the batch size.

    Args:
        heatmap: ``(B, T, H, W)`` in [0, 1].
    """
    return (4.0 * heatmap * (1.0 - heatmap)).mean()


def aknet_loss(
    logits: torch.Tensor,
    aux_logits: torch.Tensor,
    heatmap: torch.Tensor,
    target: torch.Tensor,
    *,
    sparsity_reg: bool = True,
) -> dict[str, torch.Tensor]:
    """``L = (CE(y_cls, y) + CE(y_aux, y)) / 2 + r_e`` (eq. 16).

    Returns:
        ``{"loss", "cls", "aux", "sparsity"}``; ``loss`` is the one to back-propagate.
    """
    cls = F.cross_entropy(logits, target)
    aux = F.cross_entropy(aux_logits, target)
    reg = sparsity_regularizer(heatmap) if sparsity_reg else logits.new_zeros(())
    return {"loss": (cls + aux) / 2 + reg, "cls": cls, "aux": aux, "sparsity": reg}
