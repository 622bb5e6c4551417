"""Turn a torchvision ResNet into a :class:`VideoBackbone` with named stages.

ImageNet weights (``pretrained="IMAGENET1K_V1"``) are read from the torch hub cache
(``$TORCH_HOME/hub/checkpoints``, by default ``~/.cache/torch/hub/checkpoints``) and downloaded
only when absent; on a compute node without internet the error says where to put the file. A
local file path works everywhere.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path
from urllib.parse import urlparse

import torch
import torchvision
from torch import nn

from aknet_cli.checkpoints.format import read_checkpoint_file, load_state_strict
from aknet_cli.exceptions import CheckpointError, ConfigError
from aknet_cli.models.backbone import StageSpec, VideoBackbone


def _resnet_weights(arch: str, pretrained: bool | str):
    """Resolve ``pretrained`` to torchvision weights, a local path, or nothing."""
    if pretrained is False or pretrained is None or pretrained == "":
        return None, None
    if pretrained is True:
        pretrained = "DEFAULT"
    path = Path(str(pretrained)).expanduser()
    if path.suffix in {".pt", ".pth", ".bin"} or path.exists():
        if not path.is_file():
            raise CheckpointError(f"pretrained weights file not found: {path}")
        return None, path
    enum_name = {"resnet18": "ResNet18_Weights", "resnet50": "ResNet50_Weights", "resnet101": "ResNet101_Weights"}[arch]
    try:
        return torchvision.models.get_weight(f"{enum_name}.{pretrained}"), None
    except (ValueError, KeyError, AttributeError):
        raise ConfigError(
            f"unknown pretrained weights {pretrained!r} for {arch}: use False, a file path, "
            f"or a torchvision name such as IMAGENET1K_V1"
        ) from None


def _hub_state_dict(arch: str, weights) -> dict:
    """torchvision's weights from the torch hub cache, downloading them only when absent there.

    Raises:
        CheckpointError: absent and not downloadable (an offline compute node), in one line that
            says where the file goes and what else works; or a download that arrived broken.
    """
    filename = os.path.basename(urlparse(weights.url).path)
    cache = Path(torch.hub.get_dir()) / "checkpoints" / filename
    name = f"{type(weights).__name__}.{weights.name}"
    said = io.StringIO()  # torch announces "Downloading: ..." before it tries: news only once it worked
    try:
        with contextlib.redirect_stdout(said):
            state = weights.get_state_dict(progress=False, check_hash=True)
        sys.stdout.write(said.getvalue())
        return state
    except OSError as exc:  # URLError, timeouts, refused connections, an unwritable cache
        reason = getattr(exc, "reason", None) or exc
        raise CheckpointError(
            f"pretrained weights {name} for {arch} are not in the torch hub cache ({cache}) and cannot be "
            f"downloaded ({reason}); on a machine without internet, copy {filename} to {cache.parent} (or set "
            f"TORCH_HOME to a folder whose hub/checkpoints/ holds it), or set pretrained to a local file path"
        ) from None
    except RuntimeError as exc:
        if "hash" not in str(exc):
            raise
        raise CheckpointError(f"the downloaded pretrained weights {filename} do not match their SHA-256 (a broken "
                              f"download); run again, or copy the file to {cache.parent} by hand") from None


def build_torchvision_resnet(arch: str, pretrained: bool | str) -> torchvision.models.ResNet:
    """Build ``torchvision.models.<arch>`` and load ImageNet or local weights (fc excluded)."""
    weights, path = _resnet_weights(arch, pretrained)
    net = getattr(torchvision.models, arch)(weights=None)
    if weights is not None:
        net.load_state_dict(_hub_state_dict(arch, weights))
    if path is not None:
        state = {k: v for k, v in read_checkpoint_file(path)["state_dict"].items() if not k.startswith("fc.")}
        load_state_strict(net, state, f"pretrained weights {path}", allow_missing=("fc.",))
    return net


def resnet_stages(net: torchvision.models.ResNet) -> tuple[dict[str, nn.Module], dict[str, StageSpec]]:
    """Split a torchvision ResNet into the named stages ``stem, res2..res5``."""
    stages = {
        "stem": nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool),
        "res2": net.layer1,
        "res3": net.layer2,
        "res4": net.layer3,
        "res5": net.layer4,
    }
    expansion = 4 if isinstance(net.layer1[0], torchvision.models.resnet.Bottleneck) else 1
    specs = {"stem": StageSpec("stem", 64, 4)}
    for i, name in enumerate(("res2", "res3", "res4", "res5")):
        specs[name] = StageSpec(name, 64 * 2**i * expansion, 4 * 2**i)
    return stages, specs


def make_video_resnet(
    arch: str,
    *,
    num_classes: int,
    num_segments: int,
    pretrained: bool | str = False,
    dropout: float = 0.5,
    customize=None,
) -> VideoBackbone:
    """Build a frame-wise ResNet backbone; ``customize(stages)`` may edit blocks in place."""
    net = build_torchvision_resnet(arch, pretrained)
    stages, specs = resnet_stages(net)
    if customize is not None:
        customize(stages)
    return VideoBackbone(
        stages=stages,
        specs=specs,
        num_classes=num_classes,
        num_segments=num_segments,
        dropout=dropout,
    )
