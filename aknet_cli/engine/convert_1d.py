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
from typing import Any

import torch

from .._registry import create_backbone
from ..exceptions import CheckpointError, ConfigError
from ..models import count_parameters
from ..models.aknet import AKNet, AKNetConfig
from ..models.convert import summarize
from .checkpoint import load_checkpoint, load_state_strict, save_checkpoint
from .foreign import translate_foreign_state_dict


def _pick(option: Any, stored: Any, name: str, path: Path) -> Any:
    if option is not None and stored is not None and option != stored:
        raise ConfigError(f"--{name.replace('_', '-')} {option} contradicts {path}, which records {stored}")
    value = option if option is not None else stored
    if value is None:
        raise ConfigError(f"{path} does not record its {name}: pass --{name.replace('_', '-')}")
    return value


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
    **switches: Any,
) -> dict[str, Any]:
    """Convert a stage-1 backbone checkpoint into an AK-Net checkpoint.

    Args:
        checkpoint: an aknet ``kind="backbone"`` checkpoint, or a plain state dict of a
            registered backbone or of the official TSM code (``base_model.*``, ``new_fc.*``;
            then ``backbone``/``num_classes``/``num_segments`` are needed).
        out: where to write the AK-Net checkpoint (atomically).
        split, alpha, **switches: the AK-Net configuration (see :class:`AKNetConfig`).
        overwrite: replace ``out`` if it exists.
        calibrate: a prepared dataset; if given, the 1-D subnet's BatchNorm statistics are
            re-estimated on ``calibrate_batches`` training batches of it
            (:func:`~aknet_cli.engine.calibrate.recalibrate_bn`) before saving.
        calibrate_batches, calibrate_batch_size, calibrate_crop: ``K``, clips per batch and
            crop side (resize side ``crop·256/224``, as in training) of that pass.

    Returns:
        A report: what was converted, dropped and newly initialised, parameter counts, and
        (with ``calibrate``) how far the BatchNorm statistics moved.
    """
    src, out = Path(checkpoint), Path(out)
    if out.resolve() == src.resolve():
        raise ConfigError(f"--out {out} would overwrite the input checkpoint; choose another path")
    if out.exists() and not overwrite:
        raise ConfigError(f"{out} already exists; pass --force to replace it")
    ckpt = load_checkpoint(src)
    if ckpt["kind"] == "aknet":
        raise CheckpointError(f"{src} is already an AK-Net checkpoint; convert-1d takes a stage-1 backbone checkpoint")
    stored = ckpt["config"]
    name = _pick(backbone, stored.get("backbone"), "backbone", src)
    classes = int(_pick(num_classes, stored.get("num_classes"), "num_classes", src))
    segments = int(_pick(num_segments, stored.get("num_segments"), "num_segments", src))
    backbone_kwargs = dict(stored.get("backbone_kwargs") or {})
    config = AKNetConfig(split=split, alpha=alpha, **switches).validate()
    if calibrate is not None:
        for flag, value, least in (("--batches", calibrate_batches, 1), ("--batch-size", calibrate_batch_size, 1),
                                   ("--crop", calibrate_crop, 32)):
            if int(value) < least:
                raise ConfigError(f"{flag} must be >= {least}, got {value}")

    net = create_backbone(name, num_classes=classes, num_segments=segments, pretrained=False, **backbone_kwargs)
    state = ckpt["state_dict"]
    state = translate_foreign_state_dict(state)  # official TSM / TDN names → ours; ours unchanged
    load_state_strict(net, state, str(src))
    fc_weight, fc_bias = net.fc.weight.detach().clone(), net.fc.bias.detach().clone()
    model = AKNet(net, config)
    with torch.no_grad():
        head = model.head.fc
        head.weight.zero_()
        head.weight[:, head.in_features - fc_weight.shape[1]:].copy_(fc_weight)  # point columns come last
        head.bias.copy_(fc_bias)

    calibration = None
    if calibrate is not None:
        from ..data import build_dataloader
        from .calibrate import recalibrate_bn

        loader = build_dataloader(
            calibrate, "train", num_segments=segments, frames_per_segment=net.frames_per_segment,
            batch_size=int(calibrate_batch_size), train=True, crop=int(calibrate_crop),
            resize=round(int(calibrate_crop) * 256 / 224), seed=0,
        )
        calibration = {"dataset": str(calibrate), **recalibrate_bn(model, loader, num_batches=int(calibrate_batches))}

    save_checkpoint(
        out,
        kind="aknet",
        config={
            "backbone": name, "num_classes": classes, "num_segments": segments,
            "backbone_kwargs": backbone_kwargs, "aknet": asdict(model.config),  # τ as used
        },
        state_dict=model.state_dict(),
        meta={"converted_from": str(src), "conversion": summarize(model.conversion),
              "bn_calibration": calibration},
    )
    return {
        "input": str(src),
        "output": str(out),
        "backbone": name,
        "split": split,
        "alpha": alpha,
        "copied": {"F (stages up to " + split + ")": count_parameters(model.features)},
        "converted": summarize(model.conversion),
        "conversion": model.conversion_summary(),
        "initialised_from_stage1": {"head.fc (point-feature columns)": fc_weight.numel() + fc_bias.numel()},
        "new": {
            "heatmap": count_parameters(model.heatmap),
            "position": count_parameters(model.position),
            "head.fc (GAP(X_l) columns, zero)": model.head.fc.weight.numel() - fc_weight.numel(),
            "aux_head (training only)": count_parameters(model.aux_head),
        },
        "params_m": count_parameters(model) / 1e6,
        "bn_calibration": calibration,
    }


def model_from_checkpoint(path: str | Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the model (backbone or AK-Net) a checkpoint describes and load its weights."""
    ckpt = load_checkpoint(path)
    return model_from_loaded(ckpt, path), ckpt


def model_from_loaded(ckpt: dict[str, Any], path: str | Path) -> torch.nn.Module:
    """:func:`model_from_checkpoint` for a checkpoint already read (``load_checkpoint``)."""
    cfg = ckpt["config"]
    if ckpt["kind"] not in ("backbone", "aknet"):
        raise CheckpointError(f"{path} has no model description; it is a plain state dict")
    net = create_backbone(
        cfg["backbone"], num_classes=int(cfg["num_classes"]), num_segments=int(cfg["num_segments"]),
        pretrained=False, **dict(cfg.get("backbone_kwargs") or {}),
    )
    model = net if ckpt["kind"] == "backbone" else AKNet(net, AKNetConfig(**cfg["aknet"]))
    load_state_strict(model, ckpt["state_dict"], str(path))
    return model
