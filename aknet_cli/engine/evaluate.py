"""``evaluate()``: accuracy of a checkpoint on a prepared split, in the test protocols of the field.

Views ``CxK``: ``C`` clips per video (evenly shifted segment offsets) times ``K`` crops
(1: centre crop of ``crop`` pixels, the paper's protocol; 3: three crops along the long side).
``2x3`` is TSM/TDN's "accurate" protocol: 2 clips × 3 crops at full resolution (crop = the
resize size, 256). The scores of a video's views are averaged **after softmax**.

Writes, to the output folder: ``metrics.json``, ``per_class.csv``, ``per_class.png`` (Fig. 4
style; with a second model, side by side per class), ``confusion.png`` and
``predictions.csv`` (clip id, label, top-5 classes and their scores).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from .._atomic import atomic_output
from ..data import load_manifest
from ..exceptions import CheckpointError, ConfigError
from .config import DataConfig
from .distributed import DistContext, all_gather_objects, setup
from .progress import StepProgress
from .reports import write_confusion_plot, write_csv, write_per_class_plot

_VIEWS = re.compile(r"^(\d+)x([13])$")


def parse_views(text: str) -> tuple[int, int]:
    """``"2x3"`` → ``(2, 3)``: clips per video, crops per clip (1 or 3)."""
    match = _VIEWS.match(text.strip())
    if not match or int(match.group(1)) < 1:
        raise ConfigError(f"--views {text!r}: expected CLIPSxCROPS with crops 1 or 3, e.g. 1x1 or 2x3")
    return int(match.group(1)), int(match.group(2))


# --------------------------------------------------------------------------- scoring
@torch.no_grad()
def collect_scores(model: nn.Module, loader, ctx: DistContext, *, amp_dtype: torch.dtype | None = None,
                   progress: bool = False, description: str = "evaluating") -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax scores averaged over views, for this process's share of the loader.

    Batches are ``(B, T, ...)`` or, with several views, ``(B, V, T, ...)``.

    Returns:
        ``scores (n, K)`` float32 on the CPU and ``labels (n,)``.
    """
    was_training = model.training
    model.eval()
    rank = getattr(getattr(model, "backbone", model), "frames_per_segment", 1)
    clip_rank = 5 if rank == 1 else 6
    scores, labels = [], []
    with StepProgress(description, len(loader), enabled=progress) as bar:
        for clips, target in loader:
            clips = clips.to(ctx.device, non_blocking=True)
            views = 1
            if clips.dim() == clip_rank + 1:
                views = clips.shape[1]
                clips = clips.flatten(0, 1)
            with torch.autocast(ctx.device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                logits = model(clips)
            prob = logits.float().softmax(dim=1).reshape(-1, views, logits.shape[1]).mean(dim=1)
            scores.append(prob.cpu())
            labels.append(torch.as_tensor(target))
            bar.update()
    model.train(was_training)
    if not scores:
        return torch.zeros(0, 0), torch.zeros(0, dtype=torch.long)
    return torch.cat(scores), torch.cat(labels)


def accuracy_counts(scores: torch.Tensor, labels: torch.Tensor) -> tuple[float, float, float]:
    """``(top-1 hits, top-5 hits, clips)`` over labelled clips (label ≥ 0)."""
    keep = labels >= 0
    scores, labels = scores[keep], labels[keep]
    if len(labels) == 0:
        return 0.0, 0.0, 0.0
    k = min(5, scores.shape[1])
    top = scores.topk(k, dim=1).indices
    hit1 = (top[:, 0] == labels).sum().item()
    hit5 = (top == labels[:, None]).any(dim=1).sum().item()
    return float(hit1), float(hit5), float(len(labels))


# --------------------------------------------------------------------------- loading
def load_model(path: str | Path, *, backbone: str | None = None, num_segments: int | None = None):
    """A model and its description from an aknet checkpoint or a foreign state dict.

    aknet checkpoints (stage 1 or stage 2) describe themselves. A plain state dict of the
    official TSM or TDN code needs ``backbone`` and ``num_segments``; the class count is read
    from its classifier.
    """
    from .._registry import create_backbone
    from .checkpoint import load_checkpoint, load_state_strict
    from .convert_1d import model_from_checkpoint
    from .foreign import foreign_classifier_size, translate_foreign_state_dict

    ckpt = load_checkpoint(path)
    if ckpt["kind"] in ("backbone", "aknet"):
        model, ckpt = model_from_checkpoint(path)
        return model, dict(ckpt["config"])
    if not backbone or not num_segments:
        raise ConfigError(f"{path} is a plain state dict without a model description; pass --backbone NAME and "
                          f"--num-segments T (e.g. --backbone tsm_resnet50 --num-segments 8)")
    state = translate_foreign_state_dict(ckpt["state_dict"])
    classes = foreign_classifier_size(state)
    if classes is None:
        raise CheckpointError(f"{path} has no classifier weights (fc.weight); it cannot be evaluated")
    model = create_backbone(backbone, num_classes=classes, num_segments=num_segments)
    load_state_strict(model, state, str(path))
    return model, {"backbone": backbone, "num_classes": classes, "num_segments": num_segments}


def check_fits(description: dict[str, Any], manifest, path: str | Path) -> None:
    """One line naming what does not fit: the class count or the label order."""
    want = manifest.num_classes
    have = int(description["num_classes"])
    if have != want:
        raise CheckpointError(f"{path} predicts {have} classes but {manifest.folder} has {want}; evaluate it on "
                              f"the dataset it was trained on (or one prepared with the same label list)")
    stored = description.get("classes")
    if stored and list(stored) != manifest.classes:
        raise CheckpointError(f"{path} was trained with another label order than {manifest.folder} "
                              f"(label_order {manifest.data.get('label_order', '?')}); prepare the dataset with "
                              f"the --label-order the checkpoint used")


def _gflops(model: nn.Module, frames: int, size: int) -> float:
    from ..analysis.flops import clip_input, count_model

    return count_model(model, clip_input(model, frames, size)).gflops


# --------------------------------------------------------------------------- evaluate
def _score_model(path, manifest, data_cfg: DataConfig, ctx, *, split, clips, crops, batch_size, progress,
                 backbone, num_segments, amp, fuse) -> dict[str, Any]:
    model, description = load_model(path, backbone=backbone, num_segments=num_segments)
    check_fits(description, manifest, path)
    counted = model  # FLOPs by the convention (BatchNorm counted), whether or not it is folded for running
    if fuse:  # the deployment path: BatchNorms folded into their convs (same outputs within 1e-4)
        from ..models import fuse_for_inference

        model = fuse_for_inference(model)
    stored = description.get("data") or {}
    resize = int(stored.get("resize", data_cfg.resize))
    crop = int(stored.get("crop", data_cfg.crop))
    if crops == 3:
        crop = resize  # full resolution: three resize×resize crops along the long side
    cfg = DataConfig(**{**data_cfg.__dict__, "dataset": str(manifest.folder), "resize": resize, "crop": crop,
                        "resize_mode": stored.get("resize_mode", data_cfg.resize_mode)})
    fps = getattr(getattr(model, "backbone", model), "frames_per_segment", 1)
    segments = int(description["num_segments"])
    from .loaders import build_eval_loader
    from .trainer import autocast_dtype

    loader = build_eval_loader(cfg, ctx, split=split, frames_per_segment=fps, num_segments=segments,
                               batch_size=batch_size, num_clips=clips, three_crop=crops == 3, crop=crop,
                               persistent=False)
    model.to(ctx.device).eval()
    scores, labels = collect_scores(model, loader, ctx, amp_dtype=autocast_dtype(ctx, amp), progress=progress,
                                    description=f"{Path(path).name} ({clips}x{crops})")
    indices = torch.as_tensor(loader.sampler.indices, dtype=torch.long)
    gathered = all_gather_objects((indices, scores, labels), ctx)
    order = torch.cat([g[0] for g in gathered]).argsort()  # back to the split's clip order
    scores = torch.cat([g[1] for g in gathered])[order]
    labels = torch.cat([g[2] for g in gathered])[order]
    per_view = _gflops(counted.cpu(), segments, crop)
    return {"model": model, "description": description, "scores": scores, "labels": labels,
            "dataset": loader.dataset, "gflops_per_view": per_view, "crop": crop}


def _summary(scored: dict[str, Any], manifest, clips: int, crops: int) -> tuple[dict[str, Any], pd.DataFrame]:
    scores, labels = scored["scores"], scored["labels"]
    hit1, hit5, n = accuracy_counts(scores, labels)
    pred = scores.argmax(dim=1) if len(scores) else labels
    rows = []
    for k, name in enumerate(manifest.classes):
        mask = labels == k
        count = int(mask.sum())
        acc = 100.0 * float((pred[mask] == k).float().mean()) if count else float("nan")
        rows.append({"class_index": k, "class": name, "clips": count, "accuracy": acc})
    per_class = pd.DataFrame(rows)
    result: dict[str, Any] = {
        "top1": 100 * hit1 / n if n else None,
        "top5": 100 * hit5 / n if n else None,
        "mean_class_acc": float(per_class["accuracy"].dropna().mean()) if n else None,
        "num_clips": int(len(labels)),
        "num_labelled": int(n),
        "views": f"{clips}x{crops}",
        "num_views": clips * crops,
        "crop": scored["crop"],
        "gflops_per_view": scored["gflops_per_view"],
        "gflops": scored["gflops_per_view"] * clips * crops,
    }
    pairs = list(getattr(manifest, "reversed_pairs", []) or [])
    if pairs and n:
        members = torch.tensor(sorted({c for pair in pairs for c in pair}))
        mask = torch.isin(labels, members)
        result["reversed_pairs_top1"] = 100.0 * float((pred[mask] == labels[mask]).float().mean())
    return result, per_class


def evaluate(
    checkpoint: str | Path,
    data: str | Path,
    *,
    split: str = "val",
    views: str = "1x1",
    batch_size: int = 8,
    out: str | Path | None = None,
    compare: str | Path | None = None,
    device: str = "auto",
    num_workers: int = 2,
    backend: str | None = None,
    amp: bool = False,
    backbone: str | None = None,
    num_segments: int | None = None,
    fuse: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate ``checkpoint`` (and optionally ``compare``) on ``data``'s ``split``.

    Returns:
        ``{"top1", "top5", "mean_class_acc", "num_clips", "views", "gflops", ...}`` (and
        ``"compare": {...}`` for the second model); ``out`` holds the files listed above.
    """
    clips, crops = parse_views(views)
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}")
    ctx = setup(device)
    manifest = load_manifest(Path(data))
    data_cfg = DataConfig(dataset=str(data), backend=backend, num_workers=num_workers, pin_memory=True)
    paths = [Path(checkpoint)] + ([Path(compare)] if compare else [])
    out = Path(out) if out else Path(checkpoint).parent / f"eval_{split}_{clips}x{crops}"
    results, per_class, names = [], {}, []
    for path in paths:
        scored = _score_model(path, manifest, data_cfg, ctx, split=split, clips=clips, crops=crops,
                              batch_size=batch_size, progress=progress, backbone=backbone,
                              num_segments=num_segments, amp=amp, fuse=fuse)
        summary, table = _summary(scored, manifest, clips, crops)
        summary["checkpoint"] = str(path)
        name = path.stem if path.stem not in names else str(path)
        names.append(name)
        results.append((summary, table, scored))
        per_class[name] = table
    if not ctx.is_main:
        return results[0][0]
    out.mkdir(parents=True, exist_ok=True)
    main, table, scored = results[0]
    write_csv(table, out / "per_class.csv")
    _write_predictions(scored, manifest, out / "predictions.csv")
    if main["num_labelled"]:
        write_per_class_plot(per_class, out / "per_class.png")
        write_confusion_plot(_confusion(scored, manifest.num_classes), manifest.classes, out / "confusion.png")
    if len(results) > 1:
        main["compare"] = results[1][0]
        write_csv(results[1][1], out / "per_class_compare.csv")
    main["out"] = str(out)
    with atomic_output(out / "metrics.json", suffix=".json") as tmp:
        tmp.write_text(json.dumps(main, indent=2), encoding="utf-8")
    return main


def _confusion(scored: dict[str, Any], num_classes: int) -> np.ndarray:
    labels, pred = scored["labels"], scored["scores"].argmax(dim=1)
    keep = labels >= 0
    flat = labels[keep] * num_classes + pred[keep]
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes).numpy()


def _write_predictions(scored: dict[str, Any], manifest, path: Path) -> None:
    """``predictions.csv``: id, label, and the top-5 classes with their (view-averaged) scores."""
    dataset, scores, labels = scored["dataset"], scored["scores"], scored["labels"]
    table = manifest.split_table(dataset.split)
    k = min(5, scores.shape[1]) if len(scores) else 0
    top = scores.topk(k, dim=1) if k else None
    rows = []
    for i in range(len(labels)):
        row = {"id": table["id"].iloc[i], "label": int(labels[i])}
        for j in range(k):
            c = int(top.indices[i, j])
            row[f"top{j + 1}"] = c
            row[f"top{j + 1}_class"] = manifest.classes[c]
            row[f"top{j + 1}_score"] = float(top.values[i, j])
        rows.append(row)
    write_csv(pd.DataFrame(rows), path)
