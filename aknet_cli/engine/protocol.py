"""Which protocol (:mod:`~aknet_cli.data.protocols`) a model is trained and scored under.

The default follows the model: an official TSM checkpoint is scored as TSM's
``test_models.py`` scores it, an official TDN one as TDN's scripts, an mmaction2 one through
mmaction2's ``test_pipeline``, and an aknet checkpoint under the protocol it recorded when it
was trained (``data.protocol``); one written before that was recorded follows its backbone's
family (TDN's for a TDN backbone, TSM's otherwise), which a backbone plugin names with a
``protocol_family`` class attribute.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .._registry import create_backbone
from ..data.protocols import Protocol, check_views, family_protocol, get_protocol
from ..exceptions import AKNetError

#: ``data.protocol`` of a training config that follows the backbone's family.
AUTO = "auto"


def model_family(model: nn.Module) -> str:
    """The protocol of a built backbone's (or AK-Net's backbone's) family."""
    backbone = getattr(model, "backbone", model)
    return family_protocol(getattr(backbone, "protocol_family", None))


def backbone_traits(config: dict[str, Any]) -> tuple[int, str]:
    """``(frames per segment, family protocol)`` of the backbone a model description names,
    asked of a copy built on the meta device (nothing allocated, no weights read)."""
    try:
        with torch.device("meta"):
            net = create_backbone(config["backbone"], num_classes=int(config["num_classes"]),
                                  num_segments=int(config.get("num_segments") or 1), pretrained=False,
                                  **dict(config.get("backbone_kwargs") or {}))
    except (AKNetError, TypeError, ValueError, RuntimeError, NotImplementedError):
        # A factory that cannot build on the meta device: judge by the name, as aknet names TDN.
        tdn = str(config.get("backbone", "")).startswith("tdn_")
        return (5, "tdn") if tdn else (1, "tsm")
    return int(getattr(net, "frames_per_segment", 1)), model_family(net)


def default_protocol(recorded: str | None, config: dict[str, Any]) -> str:
    """The protocol a checkpoint recorded (or its layout implies), else its backbone's family."""
    return recorded if recorded else backbone_traits(config)[1]


def resolve_protocol(option: str | None, recorded: str | None, config: dict[str, Any], *, clips: int,
                     source: str) -> Protocol:
    """The protocol to score a checkpoint under: ``option`` (``--protocol``) or its default,
    checked against the views and the model before any work.

    Raises:
        ConfigError: an unknown name, more clips than the protocol tests, or TDN windows
            under a protocol without TDN.
    """
    protocol = get_protocol(option if option is not None else default_protocol(recorded, config))
    frames_per_segment, _ = backbone_traits(config)
    check_views(protocol, clips=clips, frames_per_segment=frames_per_segment, model=source)
    return protocol


def training_protocol(setting: str, model: nn.Module) -> str:
    """``data.protocol`` of a training config, ``auto`` resolved to the backbone's family.

    Raises:
        ConfigError: an unknown protocol, or one that does not define the model's windows.
    """
    name = model_family(model) if setting == AUTO else setting
    protocol = get_protocol(name, option="data.protocol")
    backbone = getattr(model, "backbone", model)
    check_views(protocol, clips=1, frames_per_segment=int(getattr(backbone, "frames_per_segment", 1)),
                model=f"the {type(backbone).__name__} backbone", switch="data.protocol =")
    return name


def check_training_protocol(setting: str, backbone: str, *, num_segments: int) -> None:
    """What :func:`training_protocol` refuses, checked from the backbone's name before any model
    is built (``aknet train`` and ``ablate --dry-run`` check configs this way).

    Raises:
        ConfigError: an unknown protocol, or one that does not define the backbone's windows.
    """
    if setting == AUTO:
        return
    protocol = get_protocol(setting, option="data.protocol")
    frames_per_segment, _ = backbone_traits({"backbone": backbone, "num_classes": 2, "num_segments": num_segments})
    check_views(protocol, clips=1, frames_per_segment=frames_per_segment, model=f"backbone {backbone}",
                switch="data.protocol =")
