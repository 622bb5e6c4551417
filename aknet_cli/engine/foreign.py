"""Read backbone weights trained with the official TSM code base.

TSM's ``TSN`` wrapper keeps a torchvision ResNet as ``base_model`` (its residual shift wraps
``conv1`` as ``TemporalShift.net``, exactly like ours) and a new classifier ``new_fc``.
Renaming the keys is all it takes to use such a checkpoint as stage 1 of AK-Net.
"""

from __future__ import annotations

import torch

_TSM_PREFIXES = {
    "base_model.conv1.": "stages.stem.0.",
    "base_model.bn1.": "stages.stem.1.",
    "base_model.layer1.": "stages.res2.",
    "base_model.layer2.": "stages.res3.",
    "base_model.layer3.": "stages.res4.",
    "base_model.layer4.": "stages.res5.",
    "new_fc.": "fc.",
}


def is_tsm_state_dict(state: dict[str, torch.Tensor]) -> bool:
    return any(k.startswith("base_model.layer1.") for k in state)


def translate_tsm_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an official TSM checkpoint's keys to aknet's ``VideoBackbone`` names.

    Keys outside the mapping (e.g. ``base_model.fc`` when TSM replaced it by dropout) are
    dropped; the strict load that follows reports anything still missing.
    """
    out = {}
    for key, value in state.items():
        for old, new in _TSM_PREFIXES.items():
            if key.startswith(old):
                out[new + key[len(old):]] = value
                break
    return out


def translate_foreign_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict of another code base renamed to aknet's names (unchanged if it is ours)."""
    if is_tsm_state_dict(state):
        return translate_tsm_state_dict(state)
    return state


def foreign_classifier_size(state: dict[str, torch.Tensor]) -> int | None:
    """Classes predicted by a translated state dict, read from its classifier (``fc.weight``)."""
    weight = state.get("fc.weight")
    return int(weight.shape[0]) if weight is not None else None
