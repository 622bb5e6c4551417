"""Read backbone weights trained with other code bases: the detection loop, and the helpers a
layout's code shares.

The layouts themselves live with the backbones that read them, registered by the backbone
plugins (:func:`~aknet_cli._registry.register_checkpoint_layout`): official TSM and mmaction2
1.x TSM/TSN in ``aknet_backbones.tsm_layouts``, official TDN in ``aknet_backbones.tdn_layouts``,
and whatever a third-party plugin brings for its own published weights. :func:`detect_layout` is
the one place that asks them which layout a file is in; :class:`Layout` says what it recognised.
"""

from __future__ import annotations

import re
from collections import Counter

import torch

from .._registry import Layout, checkpoint_layouts
from ..exceptions import CheckpointError

__all__ = ["Layout", "detect_layout", "infer_resnet_backbone", "refuse_layout", "strip_module",
           "translate_foreign_state_dict"]

#: How the refusal of a file in no known layout names aknet's own, listed before the registered ones.
OWN_LAYOUT = "aknet checkpoints (stages.*, fc.*)"


def strip_module(key: str) -> str:
    """``key`` without DataParallel's ``module.`` (for layouts asked before the reader strips it)."""
    return key[len("module."):] if key.startswith("module.") else key


def refuse_layout(what: str, why: str) -> CheckpointError:
    """The refusal of a layout recognised but not readable, for a detection to raise."""
    return CheckpointError(f"the checkpoint is {what}, which aknet does not read: {why}")


def detect_layout(state: dict[str, torch.Tensor]) -> Layout | None:
    """The foreign layout of a state dict (``module.`` stripped), ``None`` for our own names.

    The registered layouts are asked in :func:`~aknet_cli._registry.checkpoint_layouts`' order,
    before our own names are looked for.

    Raises:
        CheckpointError: a layout recognised but not readable (named, with why), or keys that
            match no layout (naming the prefixes seen and the layouts known).
    """
    layouts, skipped = checkpoint_layouts()
    for layout in layouts:
        found = layout.detect(state)
        if found is not None:
            return found
    keys = list(state)
    if any(k.startswith(("stages.", "features.backbone.stages.")) for k in keys):
        return None
    prefixes = Counter(k.split(".", 1)[0] + "." for k in keys)
    seen = ", ".join(f"{p}* ({n} keys)" for p, n in prefixes.most_common(4))
    known = [OWN_LAYOUT] + [layout.known_as for layout in layouts]
    unasked = f" (not asked: {'; '.join(skipped)})" if skipped else ""
    raise CheckpointError(f"the checkpoint's keys match no layout aknet reads: they start with {seen}; "
                          f"aknet reads {'; '.join(known)}{unasked}")


def translate_foreign_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict of another code base renamed to aknet's names (unchanged if it is ours)."""
    layout = detect_layout(state)
    return state if layout is None else layout.translate(state)


# (blocks per stage, bottleneck?) → ResNet depth, as torchvision and mmaction2 build them.
_DEPTHS = {((2, 2, 2, 2), False): 18, ((3, 4, 6, 3), False): 34, ((3, 4, 6, 3), True): 50,
           ((3, 4, 23, 3), True): 101, ((3, 8, 36, 3), True): 152}


def infer_resnet_backbone(state: dict[str, torch.Tensor], prefix: str = "") -> str:
    """``prefix + "resnet" + depth`` for a ResNet state dict in our names (``stages.res2.0.…``),
    the depth read from its blocks per stage: e.g. ``tsm_resnet50`` with ``prefix="tsm_"``.

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
    return f"{prefix}resnet{depth}"

