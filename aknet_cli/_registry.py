"""Backbone discovery through the ``aknet.backbones`` entry-point group.

Discovery is lazy: listing names only reads package metadata; a plugin's module is
imported the first time :func:`create_backbone` asks for it. A third-party package registers
a backbone exactly as our built-ins do, in its ``pyproject.toml``::

    [project.entry-points."aknet.backbones"]
    my_net = "my_pkg.models:my_net"

where ``my_net(*, num_classes, num_segments, pretrained=False, **kw)`` returns a
:class:`aknet_cli.models.backbone.VideoBackbone`.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from .exceptions import PluginError, UnknownBackboneError

ENTRY_POINT_GROUP = "aknet.backbones"
#: The distribution of the built-in plugins: a failure to import one of them is our bug.
OWN_DISTRIBUTION = "aknet"


@dataclass(frozen=True)
class BackboneEntry:
    """One registered backbone: its name, where it lives, and who provides it."""

    name: str
    target: str
    package: str
    version: str


def _entry_points() -> dict[str, EntryPoint]:
    # Read on every call (cheap metadata scan): packages installed after import are seen too.
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep)
    return found


def list_backbones() -> list[BackboneEntry]:
    """All registered backbones, sorted by name, without importing any of them."""
    rows = []
    for name, ep in sorted(_entry_points().items()):
        dist = ep.dist
        rows.append(
            BackboneEntry(
                name=name,
                target=ep.value,
                package=dist.metadata["Name"] if dist is not None else "?",
                version=dist.version if dist is not None else "?",
            )
        )
    return rows


def backbone_names() -> list[str]:
    return sorted(_entry_points())


def get_backbone_factory(name: str):
    """Import and return the factory registered under ``name``.

    Raises:
        UnknownBackboneError: nothing is registered under ``name``.
        PluginError: a third-party plugin's module or factory cannot be imported (one line
            naming the package that registered it); the built-ins' own failures keep their
            traceback.
    """
    eps = _entry_points()
    if name not in eps:
        available = ", ".join(sorted(eps)) or "(none installed)"
        raise UnknownBackboneError(
            f"unknown backbone {name!r}; available: {available} (see `aknet backbones`)"
        )
    ep = eps[name]
    package = ep.dist.metadata["Name"] if ep.dist is not None else None
    try:
        return ep.load()
    except Exception as exc:
        if package == OWN_DISTRIBUTION:
            raise
        who = f"package {package} {ep.dist.version}" if package else "a package"
        raise PluginError(
            f"backbone {name!r} is registered by {who} as {ep.value}, which cannot be imported "
            f"({type(exc).__name__}: {exc}); reinstall or uninstall that package"
        ) from None


def create_backbone(
    name: str,
    *,
    num_classes: int,
    num_segments: int,
    pretrained: bool | str = False,
    **kwargs: Any,
):
    """Build the backbone registered as ``name``.

    Args:
        name: entry-point name, e.g. ``"tsm_resnet50"``.
        num_classes: size of the classifier.
        num_segments: frames (segments) per clip, ``T``.
        pretrained: ``False``; a torchvision weights name such as ``"IMAGENET1K_V1"``
            (downloads where the internet is reachable); or a path to a local state dict.
        **kwargs: passed to the plugin's factory.

    Returns:
        A :class:`~aknet_cli.models.backbone.VideoBackbone`.
    """
    factory = get_backbone_factory(name)
    return factory(
        num_classes=num_classes, num_segments=num_segments, pretrained=pretrained, **kwargs
    )
