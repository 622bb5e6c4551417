"""aknet: the reference implementation of AK-Net (Action Keypoint Network).

Public API::

    from aknet_cli import create_backbone, build_aknet
"""

from ._registry import create_backbone, list_backbones
from .exceptions import AKNetError

__version__ = "0.1.0"

__all__ = ["AKNetError", "build_aknet", "create_backbone", "list_backbones", "__version__"]


def __getattr__(name: str):
    # Imported on first use so `aknet --help` and `aknet backbones` stay fast.
    if name == "build_aknet":
        from .models.aknet import build_aknet

        return build_aknet
    raise AttributeError(name)
