"""What an aknet checkpoint's model description may hold, checked before any model is built.

A checkpoint's tensors are checked by their digest; the description beside them (``config``)
says which model to rebuild around them, so a wrong value there is as fatal as a flipped
weight, only later and with a traceback: a ``TypeError`` from the backbone factory for an
option it does not take, a ``ValueError`` for a class count that is a word, a ``KeyError`` for
an AK-Net without its switches. :func:`check_model_config` checks every field of the schema
below, for both kinds, and names the first that does not fit in one line: the field, what it
holds and what it should hold.

The schema (every field optional unless said)::

    backbone          a registered backbone name
    num_classes       int >= 1 (required: the classifier cannot be rebuilt without it)
    num_segments      int >= 1
    backbone_kwargs   {option: plain value}, options the backbone's factory takes
    classes           num_classes distinct non-empty names
    data              {resize: int >= 1, crop: int in [1, resize], resize_mode: short|square,
                       protocol: tsm|tdn|mmaction2|aknet (the sampling it trained with; the default
                       test protocol)}
    label_order       file|sorted, with label_order_given: bool (converted foreign files)
    aknet             kind "aknet" only (and required there): AKNetConfig's switches

Files of other code bases carry no description (the reader infers it from their weights) and
are not checked here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from .._registry import backbone_names, create_backbone
from ..data.protocols import PROTOCOL_NAMES
from ..exceptions import AKNetError, CheckpointError, ConfigError
from ..models.aknet import AKNetConfig

#: The orders a checkpoint's class indices may follow (``file``: the labels file's, ``sorted``:
#: class names sorted, as TSM's and TDN's code number Sth-Sth).
LABEL_ORDERS = ("file", "sorted")
RESIZE_MODES = ("short", "square")
_PLAIN = (str, int, float, bool, type(None))


def _shown(value: Any) -> str:
    """A value as the message shows it: its repr (cut) and its type."""
    text = repr(value)
    text = text if len(text) <= 80 else text[:77] + "..."
    return f"{text} ({type(value).__name__})"


def _wrong(path: Path, field: str, value: Any, should: str) -> CheckpointError:
    return CheckpointError(f"{path}: config.{field} holds {_shown(value)}; it should hold {should}")


def _is_int(value: Any, low: int = 1) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_plain_options(value: Any) -> bool:
    """A table of option name → plain value (or a list of plain values: TDN's ``fusion``)."""
    return isinstance(value, Mapping) and all(
        isinstance(k, str) and (isinstance(v, _PLAIN) or isinstance(v, (list, tuple)) and all(
            isinstance(x, _PLAIN) for x in v)) for k, v in value.items())


#: Field → (test, what it should hold); the fields checked by their own function are absent.
_SIMPLE: dict[str, tuple[Callable[[Any], bool], str]] = {
    "num_classes": (_is_int, "an integer >= 1 (the classifier's number of classes)"),
    "num_segments": (_is_int, "an integer >= 1 (frames per clip)"),
    "backbone_kwargs": (_is_plain_options, "a table of the backbone factory's options (e.g. {'dropout': 0.5})"),
    "label_order": (lambda v: v in LABEL_ORDERS, f"one of {', '.join(LABEL_ORDERS)}"),
    "label_order_given": (_is_bool, "true or false"),
}
_FIELDS = ("backbone", *_SIMPLE, "classes", "data", "aknet")


def check_model_config(kind: str, config: Mapping[str, Any], path: str | Path, *, backbone: str | None = None) -> None:
    """Check an aknet checkpoint's model description (module docstring) before any model is built.

    Args:
        kind: the checkpoint's kind, ``"backbone"`` (stage 1) or ``"aknet"``.
        config: its ``config``.
        path: the file, as messages name it.
        backbone: the backbone to build when ``config`` records none (the caller's option).

    Raises:
        CheckpointError: the first field that is unknown, missing where required, of the wrong
            type, out of range, or refused by the backbone's factory: one line naming the file,
            the field, what it holds and what it should hold.
    """
    path = Path(path)
    unknown = sorted(set(config) - set(_FIELDS), key=str)
    if unknown:
        raise CheckpointError(f"{path}: config.{unknown[0]} is not part of an aknet checkpoint's model description "
                              f"(it holds {', '.join(_FIELDS)}); was the file written by another tool, or edited?")
    if config.get("num_classes") is None:
        raise CheckpointError(f"{path} does not record its class count (config.num_classes); it cannot be rebuilt")
    for field, (test, should) in _SIMPLE.items():
        if config.get(field) is not None and not test(config[field]):
            raise _wrong(path, field, config[field], should)
    if config.get("backbone") is not None:
        _check_backbone_name(config["backbone"], path)
    _check_classes(config.get("classes"), config["num_classes"], path)
    _check_data(config.get("data"), path)
    _check_aknet(kind, config.get("aknet"), path)
    _check_backbone_options(config, config.get("backbone") or backbone, path)


def _check_backbone_name(name: Any, path: Path) -> None:
    names = backbone_names()
    if not isinstance(name, str) or name not in names:
        raise _wrong(path, "backbone", name, f"the name of an installed backbone ({', '.join(names)}; "
                                             f"see `aknet backbones`)")


def _check_classes(classes: Any, num_classes: int, path: Path) -> None:
    if classes is None:
        return
    if not isinstance(classes, (list, tuple)) or not all(isinstance(c, str) and c.strip() for c in classes):
        raise _wrong(path, "classes", classes, f"a list of {num_classes} class names (non-empty strings)")
    if len(classes) != num_classes:
        raise CheckpointError(f"{path}: config.classes holds {len(classes)} names; it should hold {num_classes}, one "
                              f"per class (config.num_classes)")
    repeated = next((c for i, c in enumerate(classes) if c in classes[:i]), None)
    if repeated is not None:
        raise CheckpointError(f"{path}: config.classes holds {repeated!r} twice; it should hold distinct class names")


def _check_data(data: Any, path: Path) -> None:
    """The preprocessing the model was trained with (what eval and predict reproduce)."""
    if data is None:
        return
    if not isinstance(data, Mapping):
        raise _wrong(path, "data", data, "a table with resize, crop, resize_mode and protocol")
    unknown = sorted(set(data) - {"resize", "crop", "resize_mode", "protocol"}, key=str)
    if unknown:
        raise _wrong(path, f"data.{unknown[0]}", data[unknown[0]],
                     "nothing: data records resize, crop, resize_mode and protocol only")
    for key in ("resize", "crop"):
        if key in data and not _is_int(data[key]):
            raise _wrong(path, f"data.{key}", data[key], "an integer >= 1 (pixels)")
    if "resize" in data and "crop" in data and data["crop"] > data["resize"]:
        raise _wrong(path, "data.crop", data["crop"], f"at most data.resize ({data['resize']})")
    if "resize_mode" in data and data["resize_mode"] not in RESIZE_MODES:
        raise _wrong(path, "data.resize_mode", data["resize_mode"], f"one of {', '.join(RESIZE_MODES)}")
    if "protocol" in data and data["protocol"] not in PROTOCOL_NAMES:
        raise _wrong(path, "data.protocol", data["protocol"], f"one of {', '.join(PROTOCOL_NAMES)}")


def _check_aknet(kind: str, switches: Any, path: Path) -> None:
    """Kind ``aknet`` records its switches (the model cannot be rebuilt without them); stage 1 none."""
    if kind == "backbone":
        if switches is not None:
            raise _wrong(path, "aknet", switches, "nothing in a stage-1 (kind 'backbone') checkpoint; is its kind wrong?")
        return
    if switches is None:
        raise CheckpointError(f"{path}: config.aknet is missing; an AK-Net checkpoint (kind 'aknet') should hold its "
                              f"AK-Net switches there (split, alpha, ...), as convert-1d and training write them")
    known = sorted(AKNetConfig.__dataclass_fields__)
    if not isinstance(switches, Mapping) or not all(isinstance(k, str) for k in switches):
        raise _wrong(path, "aknet", switches, f"a table of AK-Net switches ({', '.join(known)})")
    unknown = sorted(set(switches) - set(known))
    if unknown:
        raise _wrong(path, f"aknet.{unknown[0]}", switches[unknown[0]], f"nothing: AK-Net's switches are {', '.join(known)}")
    try:
        AKNetConfig.from_record(switches).validate()
    except ConfigError as exc:
        raise CheckpointError(f"{path}: config.aknet: {exc}") from None


def _check_backbone_options(config: Mapping[str, Any], name: str | None, path: Path) -> None:
    """Ask the backbone's own factory whether it takes the recorded options, on the meta
    device: nothing is allocated and no weights are read (a plugin's options are its own to
    judge; a schema here could not know them)."""
    options = dict(config.get("backbone_kwargs") or {})
    if not options or name is None:
        return
    try:
        with torch.device("meta"):
            create_backbone(name, num_classes=int(config["num_classes"]), num_segments=int(config.get("num_segments") or 1),
                            pretrained=False, **options)
    except (TypeError, ValueError) as exc:  # ConfigError is a ValueError
        raise _wrong(path, "backbone_kwargs", options,
                     f"only options {name} takes (its factory says: {str(exc).strip()[:120]})") from None
    except AKNetError:
        return  # a broken plugin: the real build names it
    except Exception:  # noqa: BLE001 a factory that cannot build on the meta device: the real build judges
        return
