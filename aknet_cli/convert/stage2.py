"""Stage 1 → stage 2 of the paper's training: a trained 2-D backbone becomes AK-Net.

``F`` is copied as is, ``Q`` is initialised from ``P`` by the 1-D conversion ``M`` (eq. 11),
the final FC is initialised from the backbone's classifier on its point-feature columns
(its ``GAP(X_l)`` columns start at zero, so at step 0 the head scores the pooled point
features exactly as the backbone scored its pooled res5 features), and the heatmap,
transform net and auxiliary head start fresh.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import torch

from ..exceptions import CheckpointError, ConfigError
from ..models import count_parameters
from ..models.aknet import AKNet, AKNetConfig
from ..models.kernels_1d import summarize
from ..checkpoints.format import save_checkpoint
from ..checkpoints.reader import Checkpoint, build_model, fit_classes, read_checkpoint

if TYPE_CHECKING:
    from ..data.manifest import Manifest


def _check_count(option: int | None, ckpt: Checkpoint) -> None:
    stored = ckpt.config.get("num_classes")
    if option is None or stored is None or int(option) == int(stored):
        return
    if ckpt.kind == "backbone" and ckpt.format.startswith("an aknet"):
        raise ConfigError(f"--num-classes {option} contradicts {ckpt.path}, which records {stored}")
    raise CheckpointError(f"{ckpt.path} ({ckpt.format}) predicts {stored} classes, not {option}; use a "
                          f"checkpoint trained on a dataset with {option} classes")


def _recorded(ckpt: Checkpoint) -> dict[str, Any]:
    """What the stage-1 file says about its classes and preprocessing, carried into stage 2."""
    kept = {key: ckpt.config[key] for key in ("classes", "data") if ckpt.config.get(key)}
    if ckpt.label_order is not None and not kept.get("classes"):
        kept.update(label_order=ckpt.label_order, label_order_given=ckpt.label_order_given)
    return kept


def convert_checkpoint(
    checkpoint: str | Path,
    out: str | Path,
    *,
    split: str = "res4",
    alpha: float = 0.3,
    backbone: str | None = None,
    num_classes: int | None = None,
    num_segments: int | None = None,
    overwrite: bool = False,
    calibrate: str | Path | None = None,
    calibrate_batches: int = 20,
    calibrate_batch_size: int = 8,
    calibrate_crop: int = 224,
    label_order: str | None = None,
    dataset: "Manifest | None" = None,
    **switches: Any,
) -> dict[str, Any]:
    """Convert a stage-1 backbone checkpoint into an AK-Net checkpoint.

    Args:
        checkpoint: an aknet ``kind="backbone"`` checkpoint, or any foreign file
            :func:`~aknet_cli.checkpoints.reader.read_checkpoint` reads (official TSM/TDN,
            mmaction2); ``backbone``/``num_segments`` are checked against it or fill in what it
            does not record, ``num_classes`` must equal its classifier's.
        out: where to write the AK-Net checkpoint (atomically).
        split, alpha, **switches: the AK-Net configuration (see :class:`AKNetConfig`).
        overwrite: replace ``out`` if it exists.
        calibrate: a prepared dataset; if given, the 1-D subnet's BatchNorm statistics are
            re-estimated on ``calibrate_batches`` training batches of it
            (:func:`~aknet_cli.convert.calibrate.recalibrate_bn`) before saving.
        calibrate_batches, calibrate_batch_size, calibrate_crop: ``K``, clips per batch and
            crop side (resize side ``crop·256/224``, as in training) of that pass.
        label_order: a foreign checkpoint's class order (``file``/``sorted``), if not its code
            base's default.
        dataset: the prepared dataset stage 2 trains on: its class count must fit, and the
            classifier rows are put in its label order (or refused, see
            :func:`~aknet_cli.checkpoints.reader.fit_classes`).

    Returns:
        A report: what was converted, dropped and newly initialised, parameter counts, and
        (with ``calibrate``) how far the BatchNorm statistics moved.
    """
    src, out = Path(checkpoint), Path(out)
    _check_paths(src, out, overwrite)
    config = AKNetConfig(split=split, alpha=alpha, **switches).validate()
    if calibrate is not None:
        _check_calibration(calibrate_batches, calibrate_batch_size, calibrate_crop)
    ckpt, net, recorded, notes = load_stage1(src, backbone=backbone, num_classes=num_classes,
                                             num_segments=num_segments, label_order=label_order, dataset=dataset)
    fc_params = net.fc.weight.numel() + net.fc.bias.numel()
    model = aknet_from_backbone(net, config)
    calibration = None
    if calibrate is not None:
        calibration = _calibrate(model, calibrate, segments=int(ckpt.config["num_segments"]),
                                 batches=calibrate_batches, batch_size=calibrate_batch_size, crop=calibrate_crop)
    description = {"backbone": ckpt.config["backbone"], "num_classes": int(ckpt.config["num_classes"]),
                   "num_segments": int(ckpt.config["num_segments"]),
                   "backbone_kwargs": dict(ckpt.config.get("backbone_kwargs") or {}),
                   "aknet": asdict(model.config), **recorded}  # τ and the rank as used
    save_checkpoint(out, kind="aknet", config=description, state_dict=model.state_dict(),
                    meta={"converted_from": str(src), "source_format": ckpt.format,
                          "conversion": summarize(model.conversion), "bn_calibration": calibration})
    return _report(model, src=src, out=out, ckpt=ckpt, notes=notes, fc_params=fc_params, calibration=calibration)


class Stage1(NamedTuple):
    """A stage-1 checkpoint read for conversion: the file, its backbone with its weights, what
    it records that stage 2 keeps (classes, preprocessing), and notes for the user."""

    ckpt: Checkpoint
    net: torch.nn.Module
    recorded: dict[str, Any]
    notes: list[str]


def load_stage1(checkpoint: str | Path, *, backbone: str | None = None, num_classes: int | None = None,
                num_segments: int | None = None, label_order: str | None = None,
                dataset: "Manifest | None" = None) -> Stage1:
    """Read and build a stage-1 checkpoint as :func:`convert_checkpoint` does: every check it
    makes of its input (the file's digest and description, its kind, the options it must agree
    with, its weights loading strictly, its classes fitting ``dataset``), without converting.
    ``aknet ablate --dry-run`` makes them so that a dry run refuses what the real run would.

    Raises:
        CheckpointError, ConfigError: as :func:`convert_checkpoint`.
    """
    src = Path(checkpoint)
    ckpt = read_checkpoint(src, backbone=backbone, num_segments=num_segments, label_order=label_order)
    if ckpt.kind == "aknet":
        raise CheckpointError(f"{src} is already an AK-Net checkpoint; convert-1d takes a stage-1 backbone checkpoint")
    _check_count(num_classes, ckpt)
    net = build_model(ckpt)
    recorded = _recorded(ckpt)
    notes = list(ckpt.notes)
    if dataset is not None:  # stage 2 of a training run: predict in the dataset's label order
        notes += fit_classes(net, ckpt.description(), classes=dataset.classes,
                             label_order=dataset.data.get("label_order"),
                             dataset_format=dataset.data.get("source_format"), source=str(src),
                             where=str(dataset.folder))
        recorded = {**{k: v for k, v in recorded.items() if not k.startswith("label_order")},
                    "classes": dataset.classes}
    return Stage1(ckpt, net, recorded, notes)


def _check_paths(src: Path, out: Path, overwrite: bool) -> None:
    if out.resolve() == src.resolve():
        raise ConfigError(f"--out {out} would overwrite the input checkpoint; choose another path")
    if out.exists() and not overwrite:
        raise ConfigError(f"{out} already exists; pass --force to replace it")


def _check_calibration(batches: int, batch_size: int, crop: int) -> None:
    for flag, value, least in (("--batches", batches, 1), ("--batch-size", batch_size, 1), ("--crop", crop, 32)):
        if int(value) < least:
            raise ConfigError(f"{flag} must be >= {least}, got {value}")


def aknet_from_backbone(net, config: AKNetConfig) -> AKNet:
    """AK-Net on a trained backbone: ``F`` copied, ``Q`` converted (eq. 11), and the final FC
    initialised from the backbone's classifier on its point-feature columns (its ``GAP(X_l)``
    columns at zero, so at step 0 the head scores the pooled point features exactly as the
    backbone scored its pooled res5 features)."""
    fc_weight, fc_bias = net.fc.weight.detach().clone(), net.fc.bias.detach().clone()
    model = AKNet(net, config)
    with torch.no_grad():
        head = model.head.fc
        head.weight.zero_()
        head.weight[:, head.in_features - fc_weight.shape[1]:].copy_(fc_weight)  # point columns come last
        head.bias.copy_(fc_bias)
    return model


def _calibrate(model: AKNet, dataset: str | Path, *, segments: int, batches: int, batch_size: int,
               crop: int) -> dict[str, Any]:
    from ..data import build_dataloader
    from ..data.protocols import family_protocol
    from .calibrate import recalibrate_bn

    loader = build_dataloader(
        dataset, "train", num_segments=segments, frames_per_segment=model.backbone.frames_per_segment,
        batch_size=int(batch_size), train=True, crop=int(crop), resize=round(int(crop) * 256 / 224), seed=0,
        # the clips its family trains on (TDN's windows for TDN)
        protocol=family_protocol(getattr(model.backbone, "protocol_family", None)),
    )
    return {"dataset": str(dataset), **recalibrate_bn(model, loader, num_batches=int(batches))}


def _report(model: AKNet, *, src: Path, out: Path, ckpt, notes: list[str], fc_params: int,
            calibration: dict[str, Any] | None) -> dict[str, Any]:
    split = model.config.split
    return {
        "input": str(src),
        "input_format": ckpt.format,
        "notes": notes,
        "output": str(out),
        "backbone": ckpt.config["backbone"],
        "split": split,
        "alpha": model.config.alpha,
        "copied": {"F (stages up to " + split + ")": count_parameters(model.features)},
        "converted": summarize(model.conversion),
        "conversion": model.conversion_summary(),
        "initialised_from_stage1": {"head.fc (point-feature columns)": fc_params},
        "new": {
            "heatmap": count_parameters(model.heatmap),
            "position": count_parameters(model.position),
            "head.fc (GAP(X_l) columns, zero)": model.head.fc.weight.numel() - (fc_params - model.head.fc.bias.numel()),
            "aux_head (training only)": count_parameters(model.aux_head),
        },
        "params_m": count_parameters(model) / 1e6,
        "bn_calibration": calibration,
    }
