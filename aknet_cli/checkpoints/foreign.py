"""Read backbone weights trained with other code bases: official TSM and TDN, mmaction2 1.x.

Each layout is a renaming of the file's keys into aknet's ``VideoBackbone`` names (and back,
so that an error names keys the way the file does). :func:`detect_layout` is the one place
that recognises a layout from the keys; :class:`Layout` says what it recognised.

TSM's ``TSN`` wrapper keeps a torchvision ResNet as ``base_model`` (its residual shift wraps
``conv1`` as ``TemporalShift.net``, exactly like ours) and a new classifier ``new_fc`` (or,
trained with ``--dropout 0``, the ResNet's own ``base_model.fc``).

mmaction2 1.x (``ResNetTSM`` / ``ResNet`` + ``TSMHead`` / ``TSNHead``) keeps the backbone under
``backbone.`` with mmcv's ``ConvModule`` naming (``conv1.conv``, ``conv1.bn``,
``downsample.conv``/``.bn``), its shift wrapping ``conv1.conv`` as ``.net``, and the classifier
as ``cls_head.fc_cls``. It is renamed to TSM's naming first, then to ours. mmaction2 has no TDN
model; the one mmaction2-layout "TDN" found in public code (a fork's ``ResNetTDN``, keys
``backbone.conv1_5`` …) has no long-term module and is refused by name.

TDN's ``TSN`` wrapper keeps a ``TDN_Net`` as ``base_model``: the RGB ResNet's layers as
``layer1_bak`` … ``layer4_bak``, the difference path as ``conv1_5`` and ``resnext_layer1``, the
long-term module of a block as ``mse`` and its learnable shift as ``shift`` (beside ``conv2``,
where ours wraps ``conv2``). Its ResNet is the "fb" variant whose convolutions carry biases;
each of those convolutions feeds a BatchNorm, so the bias is folded into that BatchNorm's
running mean (exact, see :func:`translate_tdn_state_dict`).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Callable

import torch

from ..exceptions import CheckpointError

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


# ------------------------------------------------------------------------------------- TDN
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


def _strip_module(key: str) -> str:
    return key[len("module."):] if key.startswith("module.") else key


def is_tdn_state_dict(state: dict[str, torch.Tensor]) -> bool:
    """Whether ``state`` comes from the official TDN code (``base_model.layer1_bak.`` etc.)."""
    return any(_strip_module(k).startswith(_TDN_MARKERS) for k in state)


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
        key = _strip_module(raw)
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


# ------------------------------------------------------------------------------- detection
@dataclass(frozen=True)
class Layout:
    """A checkpoint layout of another code base that aknet reads.

    Attributes:
        name: what it is, as a user would say it ("an mmaction2 TSM checkpoint").
        family: ``"tsn"``, ``"tsm"`` or ``"tdn"``: the kind of aknet backbone it fills.
        label_order: the class-index order that code base uses by default (``"sorted"``: TSM
            and TDN sort Sth-Sth V1's class names; ``"file"``: mmaction2 keeps the labels file's).
        translate: file state dict (``module.`` stripped) → our names.
        name_in_file: our key → the file's name for it, for error messages.
        protocol: the test protocol its code base scores it under
            (:mod:`~aknet_cli.data.protocols`: ``tsm``, ``tdn``, ``mmaction2``).
    """

    name: str
    family: str
    label_order: str
    translate: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]
    name_in_file: Callable[[str], str]
    protocol: str = "tsm"


KNOWN_LAYOUTS = ("aknet checkpoints (stages.*, fc.*)", "official TSM (base_model.layer1.*, new_fc.*)",
                 "official TDN (base_model.layer1_bak.*, base_model.conv1_5.*)",
                 "mmaction2 1.x TSM/TSN (backbone.layer1.*, cls_head.fc_cls.*)")


def _refuse(what: str, why: str) -> CheckpointError:
    return CheckpointError(f"the checkpoint is {what}, which aknet does not read: {why}")


def _mmaction2_layout(state: dict[str, torch.Tensor]) -> Layout:
    keys = list(state)
    if any(k.startswith("backbone.conv1_5.") for k in keys):
        raise _refuse("an mmaction2-layout TDN (ResNetTDN, from a fork; mmaction2 itself has no TDN)",
                      "its residual layers have no long-term module (mse/shift), so it is not the TDN "
                      "network; use the official TDN checkpoint (base_model.layer1_bak.*)")
    if any(".tam." in k for k in keys):
        raise _refuse("an mmaction2 TANet checkpoint", "aknet has no TANet backbone (see `aknet backbones`)")
    if any(".offset_net." in k for k in keys):
        raise _refuse("an mmaction2 TIN checkpoint", "aknet has no TIN backbone (see `aknet backbones`)")
    if any(".non_local_block." in k for k in keys):
        raise _refuse("an mmaction2 TSM checkpoint with non-local blocks",
                      "aknet's TSM has no non-local blocks")
    if any(re.match(r"backbone\.layer\d+\.\d+\.net\.", k) for k in keys):
        raise _refuse("an mmaction2 TSM checkpoint with shift_place='block'",
                      "aknet's TSM shifts inside the residual branch (shift_place='blockres')")
    shifted = any(re.match(r"backbone\.layer\d+\.\d+\.conv1\.conv\.net\.", k) for k in keys)
    return Layout("an mmaction2 TSM checkpoint" if shifted else "an mmaction2 TSN checkpoint",
                  "tsm" if shifted else "tsn", "file", translate_mmaction2_state_dict, mmaction2_name_in_file,
                  protocol="mmaction2")


def detect_layout(state: dict[str, torch.Tensor]) -> Layout | None:
    """The foreign layout of a state dict (``module.`` stripped), ``None`` for our own names.

    Raises:
        CheckpointError: a layout recognised but not readable (named, with why), or keys that
            match no layout (naming the prefixes seen and the layouts known).
    """
    keys = list(state)
    if any(_strip_module(k).startswith(_TDN_MARKERS) for k in keys):  # before TSM: both keep a base_model
        return Layout("an official TDN checkpoint", "tdn", "sorted", translate_tdn_state_dict, tdn_name_in_file,
                      protocol="tdn")
    if is_tsm_state_dict(state):
        if any(re.match(r"base_model\.layer\d+\.\d+\.net\.", k) for k in keys):
            raise _refuse("an official TSM checkpoint with --shift_place block",
                          "aknet's TSM shifts inside the residual branch (blockres)")
        shifted = any(re.match(r"base_model\.layer\d+\.\d+\.conv1\.net\.", k) for k in keys)
        return Layout("an official TSM checkpoint" if shifted else "an official TSM-code TSN checkpoint (no shift)",
                      "tsm" if shifted else "tsn", "sorted", translate_tsm_state_dict, tsm_name_in_file)
    if any(k.startswith("backbone.") for k in keys) and any(k.startswith("cls_head.") for k in keys):
        return _mmaction2_layout(state)
    if any(k.startswith(("stages.", "features.backbone.stages.")) for k in keys):
        return None
    prefixes = Counter(k.split(".", 1)[0] + "." for k in keys)
    seen = ", ".join(f"{p}* ({n} keys)" for p, n in prefixes.most_common(4))
    raise CheckpointError(f"the checkpoint's keys match no layout aknet reads: they start with {seen}; "
                          f"aknet reads {'; '.join(KNOWN_LAYOUTS)}")


# (blocks per stage, bottleneck?) → ResNet depth, as torchvision and mmaction2 build them.
_DEPTHS = {((2, 2, 2, 2), False): 18, ((3, 4, 6, 3), False): 34, ((3, 4, 6, 3), True): 50,
           ((3, 4, 23, 3), True): 101, ((3, 8, 36, 3), True): 152}
_FAMILY_PREFIX = {"tsn": "", "tsm": "tsm_", "tdn": "tdn_"}


def infer_backbone(state: dict[str, torch.Tensor], family: str) -> str:
    """The aknet backbone name a translated state dict (our names) needs, e.g. ``tsm_resnet50``.

    Raises:
        CheckpointError: its blocks per stage match no ResNet depth.
    """
    counts = []
    for stage in ("res2", "res3", "res4", "res5"):
        blocks = {int(m.group(1)) for k in state if (m := re.match(rf"stages\.{stage}\.(\d+)\.", k))}
        counts.append(max(blocks) + 1 if blocks else 0)
    bottleneck = any(k.startswith("stages.res2.0.conv3.") for k in state)
    depth = _DEPTHS.get((tuple(counts), bottleneck))
    if depth is None:
        kind = "bottleneck" if bottleneck else "basic"
        raise CheckpointError(f"the checkpoint's ResNet has {'/'.join(map(str, counts))} {kind} blocks per stage, "
                              f"which is no ResNet depth (18, 34, 50, 101, 152)")
    return f"{_FAMILY_PREFIX[family]}resnet{depth}"


def translate_foreign_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict of another code base renamed to aknet's names (unchanged if it is ours)."""
    layout = detect_layout(state)
    return state if layout is None else layout.translate(state)
