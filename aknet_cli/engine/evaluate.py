"""``evaluate()``: accuracy of a checkpoint on a prepared split, in the test protocols of the field.

Views ``CxK``: ``C`` clips per video times ``K`` crops (1: centre crop of ``crop`` pixels, the
paper's protocol; 3: three crops along the long side at full resolution, crop = the resize size,
256, whatever the training's resize mode). ``2x3`` is TSM's "accurate" protocol. Which frames the
clips hold, where the crops sit and how the views' scores are combined is the **protocol**'s
(:mod:`~aknet_cli.data.protocols`): by default the checkpoint's own (an official TSM checkpoint is
scored as TSM's ``test_models.py`` scores it, an official TDN one as TDN's scripts, an mmaction2
one through its ``test_pipeline``, an aknet one under the protocol it trained with), or
``protocol=`` (``--protocol``). ``metrics.json`` names it and the official file and function each
of its rules comes from.

Writes, to the output folder: ``metrics.json``, ``per_class.csv``, ``per_class.png`` (Fig. 4
style; with a second model, side by side per class), ``confusion.png`` and
``predictions.csv`` (clip id, label, top-5 classes and their scores).

Every accuracy carries its uncertainty (:mod:`~aknet_cli.engine.statistics`): top-1 its 95%
Wilson interval over clips, and with a second model the **paired** difference on the same clips
with its 95% paired-bootstrap interval and McNemar's exact p-value. Models are named by their
work dir (``runs/demo/tdn/best.pt`` is ``tdn``), accuracies are percentages rounded to 2 digits.
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

from .._atomic import atomic_output, check_output_dir
from ..data import load_manifest
from ..data.protocols import get_protocol
from ..exceptions import ConfigError
from .config import DataConfig
from .distributed import all_gather_objects, setup
from ..checkpoints.reader import Checkpoint, build_model, check_class_count, fit_classes, read_checkpoint
from .precision import autocast_dtype
from .protocol import resolve_protocol
from .scoring import accuracy_counts, collect_scores
from .statistics import LEVEL, compare_paired, wilson_interval
from ..data.atomic import write_csv
from .reports import FLOAT_FORMAT, write_confusion_plot, write_per_class_plot

_VIEWS = re.compile(r"^(\d+)x([13])$")


def parse_views(text: str) -> tuple[int, int]:
    """``"2x3"`` → ``(2, 3)``: clips per video, crops per clip (1 or 3)."""
    match = _VIEWS.match(text.strip())
    if not match or int(match.group(1)) < 1:
        raise ConfigError(f"--views {text!r}: expected CLIPSxCROPS with crops 1 or 3, e.g. 1x1 or 2x3")
    return int(match.group(1)), int(match.group(2))




def _gflops(model: nn.Module, frames: int, size: int) -> float:
    from ..models.flop_count import clip_input, count_model

    return count_model(model, clip_input(model, frames, size)).gflops


# --------------------------------------------------------------------------- evaluate
def _score_model(ckpt: Checkpoint, manifest, data_cfg: DataConfig, ctx, *, split, clips, crops, batch_size, progress,
                 amp, fuse, protocol) -> dict[str, Any]:
    path, model, description = ckpt.path, build_model(ckpt), ckpt.description()
    fit_classes(model, description, classes=manifest.classes, label_order=manifest.data.get("label_order"),
                dataset_format=manifest.data.get("source_format"), source=str(path), where=str(manifest.folder))
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
    from .run_loaders import build_eval_loader

    loader = build_eval_loader(cfg, ctx, split=split, frames_per_segment=fps, num_segments=segments,
                               batch_size=batch_size, num_clips=clips, three_crop=crops == 3, crop=crop,
                               persistent=False, protocol=protocol.name)
    model.to(ctx.device).eval()
    scores, labels = collect_scores(model, loader, ctx, amp_dtype=autocast_dtype(ctx.device, amp),
                                    progress=progress and ctx.is_main,
                                    description=f"{Path(path).name} ({clips}x{crops}, {protocol.name})",
                                    average=protocol.average)
    indices = torch.as_tensor(loader.sampler.indices, dtype=torch.long)
    gathered = all_gather_objects((indices, scores, labels), ctx)
    # a rank without clips (a split smaller than the number of ranks) holds (0, 0) scores: left out
    gathered = [g for g in gathered if len(g[0])] or gathered[:1]
    order = torch.cat([g[0] for g in gathered]).argsort()  # back to the split's clip order
    scores = torch.cat([g[1] for g in gathered])[order]
    labels = torch.cat([g[2] for g in gathered])[order]
    per_view = _gflops(counted.cpu(), segments, crop)
    return {"model": model, "description": description, "scores": scores, "labels": labels,
            "dataset": loader.dataset, "gflops_per_view": per_view, "crop": crop, "protocol": protocol}


def model_names(paths: list[Path]) -> list[str]:
    """What to call each checkpoint in tables and plots: its work dir (``tdn`` for
    ``runs/demo/tdn/best.pt``), with more of the path where two would read the same."""
    def name(path: Path, depth: int) -> str:
        parts = path.with_suffix("").parts
        if path.stem in ("best", "last") and len(parts) > 1:
            parts = parts[:-1] + ((path.stem,) if depth > 1 else ())
        return "/".join(parts[-depth:]) or path.stem

    for depth in range(1, 8):
        names = [name(Path(p), depth) for p in paths]
        if len(set(names)) == len(names):
            return names
    return [str(p) for p in paths]


def _pct(value: float | None) -> float | None:
    return None if value is None else round(float(value), 2)


def correct_per_clip(scored: dict[str, Any]) -> np.ndarray:
    """1/0 top-1 correctness of every labelled clip, in the split's order."""
    labels = scored["labels"]
    keep = labels >= 0
    return (scored["scores"].argmax(dim=1)[keep] == labels[keep]).numpy().astype(np.float64)


def correct_per_clip_from_csv(predictions: Path) -> np.ndarray:
    """:func:`correct_per_clip` read back from an ``aknet eval`` ``predictions.csv``, in the
    split's order (the order :func:`evaluate` writes)."""
    table = pd.read_csv(predictions)
    labelled = table[table["label"] >= 0]
    return (labelled["top1"] == labelled["label"]).to_numpy(dtype=np.float64)


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
        "top1": _pct(100 * hit1 / n) if n else None,
        "top1_ci": [_pct(100 * v) for v in wilson_interval(int(hit1), int(n))] if n else None,
        "ci_method": f"Wilson score interval over clips, {int(100 * LEVEL)}%",
        "top5": _pct(100 * hit5 / n) if n else None,
        "mean_class_acc": _pct(per_class["accuracy"].dropna().mean()) if n else None,
        "num_clips": int(len(labels)),
        "num_labelled": int(n),
        "views": f"{clips}x{crops}",
        "num_views": clips * crops,
        "crop": scored["crop"],
        "gflops_per_view": scored["gflops_per_view"],
        "gflops": scored["gflops_per_view"] * clips * crops,
        "protocol": scored["protocol"].name,
        "scores": "mean logit over the views" if scored["protocol"].average == "logits" else
                  "mean softmax probability over the views",
        "protocol_rules": scored["protocol"].describe(clips),
    }
    pairs = list(getattr(manifest, "reversed_pairs", []) or [])
    if pairs and n:
        members = torch.tensor(sorted({c for pair in pairs for c in pair}))
        mask = torch.isin(labels, members)
        hits = int((pred[mask] == labels[mask]).sum())
        result["reversed_pairs_top1"] = _pct(100.0 * hits / int(mask.sum()))
        result["reversed_pairs_top1_ci"] = [_pct(100 * v) for v in wilson_interval(hits, int(mask.sum()))]
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
    label_order: str | None = None,
    protocol: str | None = None,
) -> dict[str, Any]:
    """Evaluate ``checkpoint`` (and optionally ``compare``) on ``data``'s ``split``.

    ``backbone``, ``num_segments`` and ``label_order`` fill in what a checkpoint of another code
    base does not record (:func:`~aknet_cli.checkpoints.reader.read_checkpoint`); ``protocol``
    (``tsm``, ``tdn``, ``mmaction2``, ``aknet``) overrides each checkpoint's own.

    Returns:
        ``{"top1", "top5", "mean_class_acc", "num_clips", "views", "gflops", ...}`` (and
        ``"compare": {...}`` for the second model); ``out`` holds the files listed above.
    """
    clips, crops = parse_views(views)
    if protocol is not None:
        get_protocol(protocol)  # an unknown name is refused before any file is read
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}")
    out = Path(out) if out else Path(checkpoint).parent / f"eval_{split}_{clips}x{crops}"
    check_output_dir(out, option="--out")
    ctx = setup(device)
    manifest = load_manifest(Path(data))
    data_cfg = DataConfig(dataset=str(data), backend=backend, num_workers=num_workers, pin_memory=True)
    paths = [Path(checkpoint)] + ([Path(compare)] if compare else [])
    # Both files read and their class counts checked before either is scored: a --compare that
    # cannot serve is refused before the first model's evaluation, not after it.
    ckpts = [read_checkpoint(path, backbone=backbone, num_segments=num_segments, label_order=label_order)
             for path in paths]
    for ckpt in ckpts:
        check_class_count(ckpt.config, manifest.num_classes, source=str(ckpt.path), where=str(manifest.folder))
    rules = [resolve_protocol(protocol, ckpt.protocol, ckpt.config, clips=clips, source=str(ckpt.path))
             for ckpt in ckpts]
    results = []
    for ckpt, path, name, rule in zip(ckpts, paths, model_names(paths), rules):
        scored = _score_model(ckpt, manifest, data_cfg, ctx, split=split, clips=clips, crops=crops,
                              batch_size=batch_size, progress=progress, amp=amp, fuse=fuse, protocol=rule)
        summary, table = _summary(scored, manifest, clips, crops)
        summary.update(name=name, checkpoint=str(path), split=split,
                       checkpoint_format=scored["description"]["format"],
                       checkpoint_notes=scored["description"]["notes"],
                       checkpoint_verified=scored["description"]["verified"])
        results.append((summary, table, scored))
    main = results[0][0]
    if len(results) > 1:
        main["compare"] = results[1][0]
        if main["num_labelled"]:
            paired = compare_paired(correct_per_clip(results[0][2]), correct_per_clip(results[1][2]))
            main["paired"] = {"a": main["name"], "b": main["compare"]["name"], **paired.as_dict()}
    if ctx.is_main:
        _write_outputs(results, manifest, out)
        main["out"] = str(out)
    return main


def _write_outputs(results: list[tuple[dict, pd.DataFrame, dict]], manifest, out: Path) -> None:
    """Everything ``evaluate`` writes into ``out`` (see the module docstring)."""
    out.mkdir(parents=True, exist_ok=True)
    main, table, scored = results[0]
    write_csv(out / "per_class.csv", table, float_format=FLOAT_FORMAT)
    _write_predictions(scored, manifest, out / "predictions.csv")
    if main["num_labelled"]:
        write_per_class_plot({summary["name"]: t for summary, t, _ in results}, out / "per_class.png")
        write_confusion_plot(_confusion(scored, manifest.num_classes), manifest.classes, out / "confusion.png")
    if len(results) > 1:
        write_csv(out / "per_class_compare.csv", results[1][1], float_format=FLOAT_FORMAT)
    with atomic_output(out / "metrics.json", suffix=".json") as tmp:
        tmp.write_text(json.dumps({**main, "out": str(out)}, indent=2), encoding="utf-8")


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
    write_csv(path, pd.DataFrame(rows), float_format=FLOAT_FORMAT)
