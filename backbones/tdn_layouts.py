"""The official TDN checkpoint layout (MCG-NJU/TDN) our ``tdn_*`` backbones read, registered
when :mod:`.tdn` is imported.

TDN's ``TSN`` wrapper keeps a ``TDN_Net`` as ``base_model``: the RGB ResNet's layers as
``layer1_bak`` … ``layer4_bak``, the difference path as ``conv1_5`` and ``resnext_layer1``, the
long-term module of a block as ``mse`` and its learnable shift as ``shift`` (beside ``conv2``,
where ours wraps ``conv2``). Its ResNet is the "fb" variant whose convolutions carry biases;
each of those convolutions feeds a BatchNorm, so the bias is folded into that BatchNorm's
running mean (exact, see :func:`translate_tdn_state_dict`).
"""

from __future__ import annotations

import re

import torch

from aknet_cli._registry import Layout, register_checkpoint_layout
from aknet_cli.checkpoints.foreign import infer_resnet_backbone, strip_module
from aknet_cli.exceptions import CheckpointError

# Official TDN_Net children (under ``base_model.``) outside the residual layers: module → ours.
_TDN_MODULES = {
    "conv1": "stages.stem.0",
    "bn1": "stages.stem.1",
    "conv1_5.0": "short_term.stem.1",
    "conv1_5.1": "short_term.stem.2",
    "fc": "fc",  # a Linear only when TDN trained with dropout 0 (otherwise new_fc, below)
}
# Copies of the difference path's ImageNet conv1, used only to initialise conv1_5.
_TDN_UNUSED = ("conv1_temp", "conv1_temp1")
# Residual layers: official name → (ours, whether its blocks carry the long-term TDM).
_TDN_LAYERS = {
    "resnext_layer1": ("short_term.res2", False),
    "layer1_bak": ("stages.res2", False),
    "layer2_bak": ("stages.res3", True),
    "layer3_bak": ("stages.res4", True),
    "layer4_bak": ("stages.res5", True),
}
# Inside a block: the ResNet's own modules keep their names, except conv2 when it is wrapped.
_TDN_BLOCK = {m: m for m in ("conv1", "bn1", "conv2", "bn2", "conv3", "bn3", "downsample.0", "downsample.1")}
# Inside a block with the long-term TDM (official mSEModule ``mse`` + ShiftModule ``shift``).
_TDN_LONG_TERM = {
    "conv2": "conv2.net",
    "mse.conv1": "conv2.reduce.0",
    "mse.bn1": "conv2.reduce.1",
    "mse.conv2": "conv2.neighbour",
    "mse.conv3_smallscale4": "conv2.scale_full.0",  # the full-resolution 3×3 scale
    "mse.bn3_smallscale4": "conv2.scale_full.1",
    "mse.conv3_smallscale2": "conv2.scale_half.1",  # the 3×3 after 2×2 average pooling
    "mse.bn3_smallscale2": "conv2.scale_half.2",
    "mse.conv3": "conv2.expand.0",
    "mse.bn3": "conv2.expand.1",
    "shift.conv": "conv2.shift.conv",
}
# Biased convs of the fb-ResNet and the BatchNorm each one feeds (block-relative or top level).
_TDN_CONV_BN = {"conv1": "bn1", "conv2": "bn2", "conv3": "bn3", "downsample.0": "downsample.1"}
_TDN_BLOCK_KEY = re.compile(r"^(resnext_layer1|layer[1-4]_bak)\.(\d+)\.(.+)\.([^.]+)$")
_TDN_MARKERS = ("base_model.conv1_5.", "base_model.layer1_bak.", "base_model.resnext_layer1.")


def is_tdn_state_dict(state: dict[str, torch.Tensor]) -> bool:
    """Whether ``state`` comes from the official TDN code (``base_model.layer1_bak.`` etc.)."""
    return any(strip_module(k).startswith(_TDN_MARKERS) for k in state)


def _no_counterpart(key: str, why: str) -> CheckpointError:
    return CheckpointError(f"official TDN checkpoint key {key} has no counterpart in aknet's TDN backbone: {why}")


def _tdn_target(key: str) -> tuple[str, str | None]:
    """``(our key, BatchNorm module to fold into)`` for one official key (``module.`` stripped).

    The second item is set for the bias of a conv that feeds a BatchNorm: our convs have no
    bias, so that bias goes into the BatchNorm's running mean instead of a key of its own.
    """
    if key.startswith("new_fc."):
        return "fc." + key[len("new_fc."):], None
    if not key.startswith("base_model."):
        raise _no_counterpart(key, "outside base_model and new_fc")
    inner = key[len("base_model."):]
    match = _TDN_BLOCK_KEY.match(inner)
    if match:
        layer, index, module, param = match.groups()
        ours, long_term = _TDN_LAYERS[layer]
        table = {**_TDN_BLOCK, **_TDN_LONG_TERM} if long_term else _TDN_BLOCK
        if module not in table:
            why = ("aknet's TDN has no long-term TDM in res2 (TDN attaches it to layer2-layer4 only)"
                   if module.startswith(("mse.", "shift.")) and not long_term else f"unknown module {module}")
            raise _no_counterpart(key, why)
        prefix = f"{ours}.{index}."
        if param == "bias" and module in _TDN_CONV_BN:
            return prefix + _TDN_CONV_BN[module], prefix + _TDN_CONV_BN[module]
        return prefix + table[module] + "." + param, None
    module, _, param = inner.rpartition(".")
    if module in _TDN_MODULES:
        if module == "conv1" and param == "bias":
            return "stages.stem.1", "stages.stem.1"
        return _TDN_MODULES[module] + "." + param, None
    raise _no_counterpart(key, f"unknown module {module or inner}")


def translate_tdn_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an official TDN checkpoint's keys to aknet's :mod:`aknet_backbones.tdn` names.

    Accepts the keys with or without DataParallel's ``module.``. The unused copies of the
    difference path's first conv (``conv1_temp``, ``conv1_temp1``) are dropped. The bias ``b``
    of each backbone conv (TDN's fb-ResNet has them, ours has not) is folded into the
    BatchNorm it feeds: ``running_mean ← running_mean − b``. That is exact in eval mode, and in
    training mode a BatchNorm subtracts the batch mean, which cancels ``b`` anyway.

    Raises:
        CheckpointError: a key with no counterpart in our TDN (one line naming it and why),
            or a conv bias whose BatchNorm has no running mean in the file.
    """
    out: dict[str, torch.Tensor] = {}
    folds: list[tuple[str, str, torch.Tensor]] = []
    for raw, value in state.items():
        key = strip_module(raw)
        if key.startswith("base_model.") and key[len("base_model."):].startswith(tuple(m + "." for m in _TDN_UNUSED)):
            continue
        target, bn = _tdn_target(key)
        if bn is not None:
            folds.append((raw, bn + ".running_mean", value))
        else:
            out[target] = value
    for raw, mean_key, bias in folds:
        mean = out.get(mean_key)
        if mean is None or mean.shape != bias.shape:
            raise CheckpointError(f"official TDN checkpoint key {raw} cannot be folded into the BatchNorm it feeds: "
                                  f"the file has no running mean of its size for it ({mean_key} in our names)")
        out[mean_key] = mean - bias.to(mean.dtype)
    return out


def tdn_name_in_file(ours: str) -> str:
    """Our key → its name in an official TDN checkpoint (without DataParallel's ``module.``)."""
    module, _, param = ours.rpartition(".")
    for official, mine in _TDN_MODULES.items():
        if module == mine:
            return f"{'new_fc' if official == 'fc' else 'base_model.' + official}.{param}"
    match = re.fullmatch(r"(short_term\.res2|stages\.res[2-5])\.(\d+)\.(.+)", module)
    if not match:
        return ours
    layer, index, inner = match.groups()
    official_layer = next(name for name, (mine, _) in _TDN_LAYERS.items() if mine == layer)
    inverse = {mine: official for official, mine in _TDN_LONG_TERM.items()}
    return f"base_model.{official_layer}.{index}.{inverse.get(inner, inner)}.{param}"


@register_checkpoint_layout("official TDN (base_model.layer1_bak.*, base_model.conv1_5.*)")
def official_tdn_layout(state: dict[str, torch.Tensor]) -> Layout | None:
    """An official TDN checkpoint. Asked before official TSM's layout: both keep a ``base_model``."""
    if not is_tdn_state_dict(state):
        return None
    return Layout("an official TDN checkpoint", "tdn", "sorted", translate_tdn_state_dict, tdn_name_in_file,
                  lambda ours: infer_resnet_backbone(ours, "tdn_"), protocol="tdn")
