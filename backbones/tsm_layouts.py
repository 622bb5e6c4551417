"""The published TSM/TSN checkpoint layouts our ``tsm_*`` and ``resnet*`` backbones read:
official TSM's and mmaction2 1.x's, registered when :mod:`.tsm` is imported.

TSM's ``TSN`` wrapper keeps a torchvision ResNet as ``base_model`` (its residual shift wraps
``conv1`` as ``TemporalShift.net``, exactly like ours) and a new classifier ``new_fc`` (or,
trained with ``--dropout 0``, the ResNet's own ``base_model.fc``).

mmaction2 1.x (``ResNetTSM`` / ``ResNet`` + ``TSMHead`` / ``TSNHead``) keeps the backbone under
``backbone.`` with mmcv's ``ConvModule`` naming (``conv1.conv``, ``conv1.bn``,
``downsample.conv``/``.bn``), its shift wrapping ``conv1.conv`` as ``.net``, and the classifier
as ``cls_head.fc_cls``. It is renamed to TSM's naming first, then to ours. mmaction2 has no TDN
model; the one mmaction2-layout "TDN" found in public code (a fork's ``ResNetTDN``, keys
``backbone.conv1_5`` …) has no long-term module and is refused by name.
"""

from __future__ import annotations

import re

import torch

from aknet_cli._registry import Layout, register_checkpoint_layout
from aknet_cli.checkpoints.foreign import infer_resnet_backbone, refuse_layout
from aknet_cli.exceptions import CheckpointError

_TSM_PREFIXES = {
    "base_model.conv1.": "stages.stem.0.",
    "base_model.bn1.": "stages.stem.1.",
    "base_model.layer1.": "stages.res2.",
    "base_model.layer2.": "stages.res3.",
    "base_model.layer3.": "stages.res4.",
    "base_model.layer4.": "stages.res5.",
    "new_fc.": "fc.",
    "base_model.fc.": "fc.",  # the classifier when TSM trained with --dropout 0 (no new_fc then)
}
# The backbone name's prefix for a file that shifts (TSM) and for one that does not (TSN).
_PREFIX = {"tsm": "tsm_", "tsn": ""}


def is_tsm_state_dict(state: dict[str, torch.Tensor]) -> bool:
    return any(k.startswith("base_model.layer1.") for k in state)


def _tsm_key(key: str) -> str | None:
    for old, new in _TSM_PREFIXES.items():
        if key.startswith(old):
            return new + key[len(old):]
    return None


def tsm_name_in_file(ours: str) -> str:
    """Our key → its name in an official TSM checkpoint (``new_fc`` for the classifier)."""
    for old, new in _TSM_PREFIXES.items():
        if ours.startswith(new):
            return old + ours[len(new):]
    return ours


def translate_tsm_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an official TSM checkpoint's keys to aknet's ``VideoBackbone`` names.

    Keys outside the mapping are dropped; the strict load that follows reports anything still
    missing.

    Raises:
        CheckpointError: the file holds both classifiers, ``new_fc`` and ``base_model.fc``.
    """
    if any(k.startswith("new_fc.") for k in state) and any(k.startswith("base_model.fc.") for k in state):
        raise CheckpointError("the checkpoint holds two classifiers, new_fc and base_model.fc; TSM writes one of them")
    out = {}
    for key, value in state.items():
        ours = _tsm_key(key)
        if ours is not None:
            out[ours] = value
    return out


@register_checkpoint_layout("official TSM (base_model.layer1.*, new_fc.*)")
def official_tsm_layout(state: dict[str, torch.Tensor]) -> Layout | None:
    """An official TSM checkpoint, or one of TSN trained with TSM's code (no shift)."""
    if not is_tsm_state_dict(state):
        return None
    if any(re.match(r"base_model\.layer\d+\.\d+\.net\.", k) for k in state):
        raise refuse_layout("an official TSM checkpoint with --shift_place block",
                            "aknet's TSM shifts inside the residual branch (blockres)")
    family = "tsm" if any(re.match(r"base_model\.layer\d+\.\d+\.conv1\.net\.", k) for k in state) else "tsn"
    return Layout("an official TSM checkpoint" if family == "tsm" else "an official TSM-code TSN checkpoint (no shift)",
                  family, "sorted", translate_tsm_state_dict, tsm_name_in_file,
                  lambda ours: infer_resnet_backbone(ours, _PREFIX[family]))


# ------------------------------------------------------------------------------- mmaction2
# mmcv ConvModule names (under backbone.) → torchvision names, as TSM's base_model uses them.
_MM_RULES = (
    (re.compile(r"^((?:layer\d+\.\d+\.)?)(conv\d)\.conv\.(.+)$"), r"\1\2.\3"),  # also conv1.conv.net.*
    (re.compile(r"^((?:layer\d+\.\d+\.)?)conv(\d)\.bn\.(.+)$"), r"\1bn\2.\3"),
    (re.compile(r"^(layer\d+\.\d+\.)downsample\.conv\.(.+)$"), r"\1downsample.0.\2"),
    (re.compile(r"^(layer\d+\.\d+\.)downsample\.bn\.(.+)$"), r"\1downsample.1.\2"),
)
_MM_INVERSE = (
    (re.compile(r"^((?:layer\d+\.\d+\.)?)(conv\d)\.(.+)$"), r"\1\2.conv.\3"),
    (re.compile(r"^((?:layer\d+\.\d+\.)?)bn(\d)\.(.+)$"), r"\1conv\2.bn.\3"),
    (re.compile(r"^(layer\d+\.\d+\.)downsample\.0\.(.+)$"), r"\1downsample.conv.\2"),
    (re.compile(r"^(layer\d+\.\d+\.)downsample\.1\.(.+)$"), r"\1downsample.bn.\2"),
)


def _rewrite(key: str, rules) -> str | None:
    for pattern, replacement in rules:
        if pattern.match(key):
            return pattern.sub(replacement, key)
    return None


def mmaction2_to_tsm_key(key: str) -> str | None:
    """An mmaction2 1.x ResNet/ResNetTSM + TSMHead/TSNHead key in TSM's naming, or ``None``."""
    if key.startswith("cls_head.fc_cls."):
        return "new_fc." + key[len("cls_head.fc_cls."):]
    if not key.startswith("backbone."):
        return None
    inner = key[len("backbone."):]
    renamed = _rewrite(inner, _MM_RULES)
    return None if renamed is None else "base_model." + renamed


def mmaction2_name_in_file(ours: str) -> str:
    """Our key → its name in an mmaction2 1.x checkpoint."""
    tsm = tsm_name_in_file(ours)
    if tsm.startswith("new_fc."):
        return "cls_head.fc_cls." + tsm[len("new_fc."):]
    if tsm.startswith("base_model."):
        inner = tsm[len("base_model."):]
        return "backbone." + (_rewrite(inner, _MM_INVERSE) or inner)
    return ours


def translate_mmaction2_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an mmaction2 1.x TSM/TSN checkpoint's keys to ours (unknown keys kept as they are,
    so that the strict load names them)."""
    out = {}
    for key, value in state.items():
        tsm = mmaction2_to_tsm_key(key)
        ours = _tsm_key(tsm) if tsm is not None else None
        out[ours if ours is not None else key] = value
    return out


@register_checkpoint_layout("mmaction2 1.x TSM/TSN (backbone.layer1.*, cls_head.fc_cls.*)")
def mmaction2_layout(state: dict[str, torch.Tensor]) -> Layout | None:
    """An mmaction2 1.x TSM or TSN checkpoint; its other models of this layout refused by name."""
    keys = list(state)
    if not (any(k.startswith("backbone.") for k in keys) and any(k.startswith("cls_head.") for k in keys)):
        return None
    if any(k.startswith("backbone.conv1_5.") for k in keys):
        raise refuse_layout("an mmaction2-layout TDN (ResNetTDN, from a fork; mmaction2 itself has no TDN)",
                            "its residual layers have no long-term module (mse/shift), so it is not the TDN "
                            "network; use the official TDN checkpoint (base_model.layer1_bak.*)")
    if any(".tam." in k for k in keys):
        raise refuse_layout("an mmaction2 TANet checkpoint", "aknet has no TANet backbone (see `aknet backbones`)")
    if any(".offset_net." in k for k in keys):
        raise refuse_layout("an mmaction2 TIN checkpoint", "aknet has no TIN backbone (see `aknet backbones`)")
    if any(".non_local_block." in k for k in keys):
        raise refuse_layout("an mmaction2 TSM checkpoint with non-local blocks",
                            "aknet's TSM has no non-local blocks")
    if any(re.match(r"backbone\.layer\d+\.\d+\.net\.", k) for k in keys):
        raise refuse_layout("an mmaction2 TSM checkpoint with shift_place='block'",
                            "aknet's TSM shifts inside the residual branch (shift_place='blockres')")
    family = "tsm" if any(re.match(r"backbone\.layer\d+\.\d+\.conv1\.conv\.net\.", k) for k in keys) else "tsn"
    return Layout(f"an mmaction2 {family.upper()} checkpoint", family, "file", translate_mmaction2_state_dict,
                  mmaction2_name_in_file, lambda ours: infer_resnet_backbone(ours, _PREFIX[family]),
                  protocol="mmaction2")
