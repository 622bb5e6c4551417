"""Backbone discovery through the ``aknet.backbones`` entry-point group.

Discovery is lazy: listing names only reads package metadata; a plugin's module is
imported the first time :func:`create_backbone` asks for it. A third-party package registers
a backbone exactly as our built-ins do, in its ``pyproject.toml``::

    [project.entry-points."aknet.backbones"]
    my_net = "my_pkg.models:my_net"

where ``my_net(*, num_classes, num_segments, pretrained=False, **kw)`` returns a
:class:`aknet_cli.models.backbone.VideoBackbone`.

The same package can bring the layout of its published weights (another code base's key
names): :func:`register_checkpoint_layout`, called when its module is imported. Those modules
are imported only when a checkpoint is read (:func:`checkpoint_layouts`), never at CLI start.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from importlib.metadata import EntryPoint, entry_points
from itertools import count
from typing import Any, Callable

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


# --------------------------------------------------------------------- checkpoint layouts
# A backbone plugin may also teach aknet to read the weights its authors published under their
# own code base's names (timm's ``checkpoint_filter_fn``, asked by detection instead of by model
# name, because a foreign file does not say which model wrote it). The plugin's module calls
# :func:`register_checkpoint_layout` at import; :func:`checkpoint_layouts` imports every
# installed plugin's module first, so registering needs no entry point of its own and a file
# is only ever read after every layout is known. Nothing here imports torch: ``aknet --help``
# never gets this far.


@dataclass(frozen=True)
class Layout:
    """What a layout's detection recognised in one state dict, and how to read it.

    Attributes:
        name: what the file is, as a user would say it ("an mmaction2 TSM checkpoint"); error
            messages about the file name it so.
        family: the kind of aknet backbone it fills (``"tsn"``, ``"tsm"``, ``"tdn"`` or the
            plugin's own); the reader takes TSM's shift options from the file for ``"tsm"``.
        label_order: the class-index order that code base uses by default (``"sorted"``: TSM
            and TDN sort Sth-Sth V1's class names; ``"file"``: mmaction2 keeps the labels file's).
        translate: the filter: file state dict (``module.`` stripped) → aknet's names; keys it
            cannot place raise :class:`~aknet_cli.exceptions.CheckpointError` or are left for
            the strict load to name.
        name_in_file: our key → the file's name for it, for error messages.
        infer_backbone: translated state dict → the registered backbone name it fills
            (``"tsm_resnet50"``): the depth and variant are read from the weights.
        protocol: the test protocol its code base scores it under
            (:mod:`~aknet_cli.data.protocols`: ``tsm``, ``tdn``, ``mmaction2``).
    """

    name: str
    family: str
    label_order: str
    translate: Callable[[dict], dict]
    name_in_file: Callable[[str], str]
    infer_backbone: Callable[[dict], str]
    protocol: str = "tsm"


#: A layout's detection: the state dict → its :class:`Layout`, ``None`` when the file is not in
#: that layout; it raises CheckpointError to refuse a variant it recognises but cannot read.
Detect = Callable[[dict], "Layout | None"]


@dataclass(frozen=True)
class CheckpointLayout:
    """One registered layout: how the refusal of an unknown file lists it, its detection, and
    where it was registered (which orders the detection, :func:`checkpoint_layouts`)."""

    known_as: str
    detect: Detect
    module: str
    index: int


# Keyed by ``known_as``: a module imported twice (a reload) replaces its layouts instead of
# adding second copies.
_CHECKPOINT_LAYOUTS: dict[str, CheckpointLayout] = {}
_REGISTRATIONS = count()  # orders a module's layouts as it registered them


def register_checkpoint_layout(known_as: str) -> Callable[[Detect], Detect]:
    """Decorator: register a detection function as a checkpoint layout aknet reads.

    Used at import by the module an ``aknet.backbones`` entry point names (or one it imports)::

        @register_checkpoint_layout("my code base (trunk.*, head.*)")
        def my_layout(state):
            if not any(k.startswith("trunk.") for k in state):
                return None
            return Layout("a my-code-base checkpoint", "my_net", "file", translate, name_in_file,
                          infer_backbone)

    Args:
        known_as: the layout and the key prefixes that tell it, as the refusal of a file in no
            known layout lists it ("official TSM (base_model.layer1.*, new_fc.*)").
    """
    def register(detect: Detect) -> Detect:
        _CHECKPOINT_LAYOUTS[known_as] = CheckpointLayout(known_as, detect, getattr(detect, "__module__", None) or "",
                                                         next(_REGISTRATIONS))
        return detect

    return register


def _import_plugin_modules() -> tuple[set[str], list[str]]:
    """Import the module of every installed backbone plugin, so that its layouts are registered.

    Returns:
        The top-level packages of aknet's own plugins, and one line for each third-party module
        that failed to import. That one is skipped rather than raised: its backbones cannot be
        built either, and :func:`get_backbone_factory` names the failure when one is asked for,
        but it must not stop files of other layouts from being read.
    """
    own: set[str] = set()
    skipped: list[str] = []
    for name, ep in sorted(_entry_points().items()):
        is_own = ep.dist is not None and ep.dist.metadata["Name"] == OWN_DISTRIBUTION
        if is_own:
            own.add(ep.module.split(".")[0])
        try:
            import_module(ep.module)  # cached after the first time
        except Exception as exc:
            if is_own:
                raise
            skipped.append(f"backbone {name!r}'s module {ep.module} cannot be imported "
                           f"({type(exc).__name__}: {exc})")
    return own, skipped


def checkpoint_layouts() -> tuple[list[CheckpointLayout], list[str]]:
    """Every registered checkpoint layout in detection order, after importing every installed
    backbone plugin's module; and one line for each third-party module that failed to import.

    The order does not depend on which plugin happened to be imported first in this process:
    aknet's own layouts come first (a third-party layout must not take a file from a built-in
    one), then by the name of the module that registered them, then in the order that module
    registered them. (So TDN's, in ``aknet_backbones.tdn_layouts``, is asked before TSM's: both
    keep a ``base_model``.)
    """
    own, skipped = _import_plugin_modules()
    layouts = sorted(_CHECKPOINT_LAYOUTS.values(),
                     key=lambda layout: (layout.module.split(".")[0] not in own, layout.module, layout.index))
    return layouts, skipped
