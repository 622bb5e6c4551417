"""The one place that reads any checkpoint aknet accepts and builds the model it holds.

Accepted: aknet checkpoints (stage 1 and AK-Net, formats 1 and 2), plain state dicts with our
names, and the layouts the backbone plugins register (:mod:`aknet_cli.checkpoints.foreign`; the
built-ins: official TSM and its variants, official TDN, mmaction2 1.x TSM/TSN).
:func:`read_checkpoint` makes ONE detection step and says what it recognised
(:attr:`Checkpoint.format`: "an mmaction2 TSM checkpoint"); errors about keys name them in the
file's own naming.

What a foreign file does not record is taken, in this order, from the caller's options, the
file's own metadata (an mmengine config's ``num_segments``/``shift_div``), the file name as the
official code writes it (TSM and TDN name their checkpoints ``…_segment8_…``, and TSM's own test
script reads its shift options from that name), or refused with the option to pass. The
backbone is read from the weights themselves, by the layout (stage depths, shifts, TDN's modules).

Class order: an aknet checkpoint records its class names; a foreign one records none, so its
label order is the caller's ``label_order`` or that code base's default (official TSM/TDN sort
Sth-Sth's class names, mmaction2 keeps the labels file's order). :func:`fit_classes` checks a
model against a dataset's classes and reorders its classifier rows where both orders are known.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .._registry import backbone_names, create_backbone
from ..exceptions import CheckpointError, ConfigError
from ..models.aknet import AKNet, AKNetConfig
from .format import read_checkpoint_file, load_state_strict
from .schema import LABEL_ORDERS, check_model_config
from .foreign import Layout, detect_layout, infer_resnet_backbone

#: Datasets whose class names TSM's and TDN's own code sort (their default elsewhere: the file's).
SORTED_BY_OFFICIAL_CODE = ("sthv1", "sthv2")
_SEGMENTS_IN_NAME = re.compile(r"segment(\d+)")
_SHIFT_IN_NAME = re.compile(r"_shift(\d+)_")


@dataclass
class Checkpoint:
    """A checkpoint file, recognised and renamed to aknet's names.

    Attributes:
        path: the file.
        format: what it is, in words ("an official TDN checkpoint").
        kind: ``"backbone"`` (stage 1, or any foreign file) or ``"aknet"``.
        config: the model description: ``backbone``, ``num_classes``, ``num_segments``,
            ``backbone_kwargs`` and, where recorded, ``aknet``, ``classes``, ``data``.
        state_dict: the weights under our names.
        label_order: for a foreign file, the order of its class indices (``file``/``sorted``);
            ``None`` for an aknet checkpoint (its ``classes`` say it, when recorded).
        label_order_given: whether ``label_order`` came from the caller (else the default).
        verified: its SHA-256 digest was checked (aknet format 2).
        notes: things the user should know about it (one line each).
        name_in_file: our key → the file's key, for error messages (foreign files only).
        raw: what :func:`~aknet_cli.checkpoints.format.read_checkpoint_file` returned.
        protocol: the test protocol it was trained or published under, where known: an
            aknet checkpoint's ``data.protocol``, a foreign layout's code base
            (:func:`default_protocol` completes it from the backbone's family).
    """

    path: Path
    format: str
    kind: str
    config: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    label_order: str | None = None
    label_order_given: bool = False
    verified: bool = False
    notes: list[str] = field(default_factory=list)
    name_in_file: Callable[[str], str] | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    protocol: str | None = None

    def description(self) -> dict[str, Any]:
        """The model description plus where it came from (what callers print or record)."""
        return {**self.config, "format": self.format, "label_order": self.label_order,
                "label_order_given": self.label_order_given, "verified": self.verified, "notes": list(self.notes),
                "protocol": self.protocol}


# ------------------------------------------------------------------------------ reading
def _check_label_order(label_order: str | None) -> None:
    if label_order is not None and label_order not in LABEL_ORDERS:
        raise ConfigError(f"--label-order {label_order!r}: choose file or sorted")


def _contradiction(option: str, value: Any, path: Path, what: str, stored: Any) -> ConfigError:
    return ConfigError(f"--{option} {value} contradicts {path}, {what} {stored}")


def _read_aknet(raw: dict[str, Any], path: Path, *, backbone, num_segments, label_order) -> Checkpoint:
    config = dict(raw["config"])
    kind = raw["kind"]
    for option, value in (("backbone", backbone), ("num-segments", num_segments)):
        key = option.replace("-", "_")
        stored = config.get(key)
        if value is not None and stored is not None and value != stored:
            raise _contradiction(option, value, path, "which records", stored)
        if stored is None and value is None:
            raise ConfigError(f"{path} does not record its {key}: pass --{option}")
        config[key] = stored if stored is not None else value
    # An AK-Net converted from a foreign checkpoint keeps that file's class order.
    given = label_order is not None or bool(config.get("label_order_given"))
    label_order = label_order or (None if config.get("classes") else config.get("label_order"))
    if label_order is not None and config.get("classes"):
        raise ConfigError(f"--label-order applies to checkpoints of other code bases; {path} records its class names")
    name = "an aknet stage-1 checkpoint" if kind == "backbone" else "an aknet AK-Net checkpoint"
    notes = []
    if raw.get("format") == "aknet-checkpoint/1" and str(config.get("backbone", "")).startswith("tdn_"):
        notes.append(f"{path.name} was written before aknet's TDN pooled its long-term module as TDN's code does: "
                     f"at inputs with odd feature maps (224²) it computes slightly differently from how it was "
                     f"trained (docs/backbones.md)")
    return Checkpoint(path, name, kind, config, raw["state_dict"], label_order=label_order,
                      label_order_given=given, verified=bool(raw.get("verified")), notes=notes, raw=raw,
                      protocol=(config.get("data") or {}).get("protocol"))


def _config_ints(meta: dict[str, Any], name: str) -> set[int]:
    """Values of ``name=N`` in an mmengine checkpoint's config text (``meta['cfg']``)."""
    text = meta.get("cfg") or meta.get("config") or ""
    return {int(v) for v in re.findall(rf"\b{name}\s*=\s*(\d+)", text)} if isinstance(text, str) else set()


def _in_name(pattern: re.Pattern, path: Path) -> tuple[re.Match | None, str]:
    """``pattern`` in the file name, else in its folder's: TSM's and TDN's ``main.py`` save
    ``<store name>/ckpt.best.pth.tar``, the store name carrying ``segment8`` and ``shift8``
    (TSM's ``test_models.py`` reads them from the whole path too)."""
    for part, where in ((path.name, "file name"), (path.absolute().parent.name, "folder name")):
        match = pattern.search(part)
        if match:
            return match, where
    return None, ""


def _segments(path: Path, meta: dict[str, Any], option: int | None, notes: list[str]) -> int:
    if option is not None:
        return int(option)
    from_config = _config_ints(meta, "num_segments")
    if len(from_config) == 1:
        return from_config.pop()
    if len(from_config) > 1:
        raise ConfigError(f"{path}'s config sets num_segments to {sorted(from_config)}; pass --num-segments T")
    match, where = _in_name(_SEGMENTS_IN_NAME, path)
    if match:
        notes.append(f"{match.group(1)} segments, read from the {where} ({match.group(0)}, as TSM and TDN name "
                     f"their checkpoints); pass --num-segments to override")
        return int(match.group(1))
    raise ConfigError(f"{path} does not record its frames per clip: pass --num-segments T (e.g. --num-segments 8)")


def _foreign_kwargs(layout: Layout, path: Path, meta: dict[str, Any]) -> dict[str, Any]:
    if layout.family != "tsm":
        return {}
    if re.search(r"\btemporal_pool\s*=\s*True", str(meta.get("cfg") or "")):
        raise CheckpointError(f"{path} was trained with temporal_pool=True, which aknet's TSM does not build")
    divs = _config_ints(meta, "shift_div")
    match, _ = _in_name(_SHIFT_IN_NAME, path)
    div = divs.pop() if len(divs) == 1 else int(match.group(1)) if match else 8
    return {} if div == 8 else {"fold_div": div}


def _plain_prefix(state: dict[str, torch.Tensor]) -> str:
    """The backbone name's prefix for a state dict in our names without a model description:
    our TDN's short-term module, our TSM's shift wrapper, or neither (TSN)."""
    if any(k.startswith("short_term.") for k in state):
        return "tdn_"
    return "tsm_" if any(".conv1.net." in k for k in state) else ""


def _read_foreign(raw: dict[str, Any], path: Path, layout: Layout | None, *, backbone, num_segments,
                  label_order) -> Checkpoint:
    notes: list[str] = []
    try:
        state = layout.translate(raw["state_dict"]) if layout else raw["state_dict"]
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    if layout is None:
        if any(k.startswith("features.backbone.") for k in state):
            raise CheckpointError(f"{path} is a bare AK-Net state dict, without the model description (split, α, "
                                  f"switches) it needs; use the checkpoint convert-1d or training wrote")
        name, order = "a plain aknet state dict (no model description)", None
    else:
        name, order = layout.name, layout.label_order
    try:
        detected = layout.infer_backbone(state) if layout else infer_resnet_backbone(state, _plain_prefix(state))
    except CheckpointError as exc:
        raise CheckpointError(f"{path} ({name}): {exc}") from None
    if backbone is not None and backbone != detected:
        raise _contradiction("backbone", backbone, path, f"{name} of", detected)
    if detected not in backbone_names():
        raise CheckpointError(f"{path} is {name} of a {detected}, which aknet's registry cannot build "
                              f"(available: {', '.join(backbone_names())})")
    weight = state.get("fc.weight")
    if weight is None:
        raise CheckpointError(f"{path} ({name}) has no classifier weights "
                              f"({layout.name_in_file('fc.weight') if layout else 'fc.weight'}); it cannot be used")
    meta = raw.get("meta") or {}
    config = {"backbone": detected, "num_classes": int(weight.shape[0]),
              "num_segments": _segments(path, meta, num_segments, notes),
              "backbone_kwargs": _foreign_kwargs(layout, path, meta) if layout else {}}
    classes = _config_ints(meta, "num_classes")
    if classes and config["num_classes"] not in classes:
        raise CheckpointError(f"{path}'s config sets num_classes {sorted(classes)} but its classifier has "
                              f"{config['num_classes']} rows")
    return Checkpoint(path, name, "backbone", config, state, label_order=label_order or order,
                      label_order_given=label_order is not None, notes=notes,
                      name_in_file=_file_names(raw["state_dict"], state, layout), raw=raw,
                      protocol=layout.protocol if layout else None)


def _file_names(original: dict[str, torch.Tensor], ours: dict[str, torch.Tensor],
                layout: Layout | None) -> Callable[[str], str] | None:
    """Our key → the file's key: exact for keys the file has (matched by tensor identity), the
    layout's inverse renaming for the ones it lacks."""
    if layout is None:
        return None
    by_id = {id(v): k for k, v in original.items()}
    origin = {k: by_id[id(v)] for k, v in ours.items() if id(v) in by_id}
    return lambda key: origin.get(key) or layout.name_in_file(key)


def read_checkpoint(path: str | Path, *, backbone: str | None = None, num_segments: int | None = None,
                    label_order: str | None = None) -> Checkpoint:
    """Read and recognise any checkpoint aknet accepts (module docstring).

    Args:
        path: the file.
        backbone: the aknet backbone name; checked against what the file holds.
        num_segments: frames per clip, for files that do not record it.
        label_order: ``file`` or ``sorted``: the order of a foreign file's class indices.

    Raises:
        CheckpointError: unreadable, corrupt, edited after it was written, with a model
            description outside its schema (:mod:`~aknet_cli.checkpoints.schema`), of an
            unknown or unsupported layout (one line naming the key prefixes seen and the layouts
            known), or of a backbone aknet lacks.
        ConfigError: an option contradicts the file, or a needed one is missing.
    """
    _check_label_order(label_order)
    path = Path(path)
    raw = read_checkpoint_file(path)
    if raw["format"] is not None and raw["kind"] not in ("backbone", "aknet"):  # aknet's container, not a foreign file
        raise CheckpointError(f"{path} is an aknet checkpoint of kind {raw['kind']!r}, which this version cannot "
                              f"rebuild (it reads 'backbone' and 'aknet'); was it written by another aknet version?")
    if raw["kind"] in ("backbone", "aknet"):
        check_model_config(raw["kind"], raw["config"], path, backbone=backbone)  # before any model is built
        return _read_aknet(raw, path, backbone=backbone, num_segments=num_segments, label_order=label_order)
    try:
        layout = detect_layout(raw["state_dict"])
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    return _read_foreign(raw, path, layout, backbone=backbone, num_segments=num_segments, label_order=label_order)


# ----------------------------------------------------------------------------- building
def build_model(ckpt: Checkpoint) -> nn.Module:
    """The backbone or AK-Net ``ckpt`` describes, with its weights loaded strictly."""
    cfg = ckpt.config
    net = create_backbone(cfg["backbone"], num_classes=int(cfg["num_classes"]), num_segments=int(cfg["num_segments"]),
                          pretrained=False, **dict(cfg.get("backbone_kwargs") or {}))
    model = net if ckpt.kind == "backbone" else AKNet(net, AKNetConfig.from_record(cfg["aknet"]))
    load_state_strict(model, ckpt.state_dict, f"{ckpt.path} ({ckpt.format})", name_in_file=ckpt.name_in_file)
    return model


def model_from_checkpoint(path: str | Path, *, backbone: str | None = None, num_segments: int | None = None,
                               label_order: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """The model a checkpoint holds and its description (:meth:`Checkpoint.description`)."""
    ckpt = read_checkpoint(path, backbone=backbone, num_segments=num_segments, label_order=label_order)
    return build_model(ckpt), ckpt.description()


# ------------------------------------------------------------------------------ classes
def _permute_classifiers(model: nn.Module, order: list[int]) -> None:
    """Row ``i`` of every classifier becomes the row of class ``order[i]``."""
    index = torch.as_tensor(order)
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, nn.Linear) and name.split(".")[-1] == "fc" and module.out_features == len(order):
                module.weight.copy_(module.weight[index])
                module.bias.copy_(module.bias[index])


def checkpoint_label_order(description: dict[str, Any], dataset_format: str | None) -> str | None:
    """The order a foreign checkpoint's class indices follow for a dataset of ``dataset_format``:
    the caller's, else the code base's default (TSM/TDN sort Sth-Sth only)."""
    order = description.get("label_order")
    if order == "sorted" and not description.get("label_order_given") and dataset_format not in SORTED_BY_OFFICIAL_CODE:
        return "file"
    return order


def check_class_count(description: dict[str, Any], count: int, *, source: str, where: str) -> None:
    """A model of ``description`` predicts the ``count`` classes of ``where``, or one line says not."""
    have = int(description["num_classes"])
    if have != count:
        raise CheckpointError(f"{source} predicts {have} classes but {where} has {count}; use it on the "
                              f"dataset it was trained on (or one prepared with the same label list)")


def fit_classes(model: nn.Module, description: dict[str, Any], *, classes: list[str], label_order: str | None,
                dataset_format: str | None, source: str, where: str) -> list[str]:
    """Make ``model`` predict in ``classes``' order, or refuse in one line.

    Reorders the classifier rows (every ``fc`` with one row per class) when the checkpoint's
    order is known: from its recorded class names, or, for a foreign file, when it is sorted and
    the dataset keeps the file's order (the sorted order is then known too).

    Args:
        description: from :func:`model_from_checkpoint`; its ``classes`` are updated.
        classes: the dataset's class names in label-index order.
        label_order: the dataset's (``file``/``sorted``), if recorded.
        dataset_format: the dataset's source format (``sthv1``, ``diving48``, ...).
        source, where: the checkpoint and the dataset, as named in messages.

    Returns:
        A note on what was reordered, or nothing.

    Raises:
        CheckpointError: the class counts differ, the class names differ, or the orders differ
            in a way that cannot be undone here.
    """
    check_class_count(description, len(classes), source=source, where=where)
    stored = description.get("classes")
    if stored:
        stored = list(stored)
        if stored == list(classes):
            return []
        if sorted(stored) != sorted(classes):
            raise CheckpointError(f"{source} was trained on other class names than {where}'s (e.g. "
                                  f"{next(c for c in stored if c not in classes)!r})")
        _permute_classifiers(model, [stored.index(c) for c in classes])
        description["classes"] = list(classes)
        return [f"classifier rows of {source} reordered to {where}'s label order"]
    theirs = checkpoint_label_order(description, dataset_format)
    if theirs is None or label_order is None or theirs == label_order:
        description["classes"] = list(classes)
        return []
    if theirs == "sorted" and label_order == "file":
        ranked = sorted(classes)
        _permute_classifiers(model, [ranked.index(c) for c in classes])
        description["classes"] = list(classes)
        return [f"classifier rows of {source} reordered from sorted class names to {where}'s file order"]
    raise CheckpointError(
        f"{source} ({description.get('format')}) numbers its classes in the labels file's order, but {where} "
        f"sorts them (label_order sorted): prepare the dataset again with --label-order file, or pass "
        f"--label-order sorted if this checkpoint was trained on sorted labels")
