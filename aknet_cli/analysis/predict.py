"""``aknet predict``: a trained model's top classes for anyone's videos.

Each video is read as ``aknet eval`` reads a clip of a prepared dataset, under the same
protocol (:mod:`~aknet_cli.data.protocols`: the checkpoint's own, or ``protocol=``): its frame
sampling (:func:`~aknet_cli.data.sampling.sample_indices`; TDN's windows for a TDN backbone), the
checkpoint's resize/crop with the protocol's offsets (``K = 3`` crops at full resolution for
``CxK = 2x3``), and its averaging of the views. So a video gets the same scores here as in
``aknet eval``. Frames go through
:mod:`~aknet_cli.data.video_source`, which refuses frames too small for a model and cuts
overly long ones to their centre.

Inputs: a video file, a frame folder (one video), a folder of videos and frame folders, or a
text file listing them (one path a line, relative to the list's folder; ``#`` comments).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .._atomic import check_output_dir, check_output_file
from ..data.formats._text import read_text
from ..data.protocols import Protocol, get_protocol
from ..data.video_source import Source, is_frame_folder, open_source
from ..exceptions import ConfigError, DataError, VideoDecodeError

VIDEO_SUFFIXES = (".mp4", ".webm", ".avi", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg", ".ogv", ".flv", ".wmv")


# ------------------------------------------------------------------------------- inputs
def _natural(path: Path) -> list:
    return [int(s) if s.isdigit() else s.lower() for s in re.split(r"(\d+)", path.name)]


def collect_inputs(target: str | Path) -> list[Path]:
    """The videos (files or frame folders) ``target`` names, in natural order.

    Raises:
        DataError: ``target`` is missing, an empty folder, or a list naming nothing.
    """
    target = Path(target)
    if not target.exists():
        raise DataError(f"{target} does not exist: give a video, a folder of videos or frames, or a .txt list")
    if target.is_file() and target.suffix.lower() == ".txt":
        lines = [line.strip() for line in read_text(target, hint="save the list as UTF-8").splitlines()]
        paths = [Path(line) if Path(line).is_absolute() else target.parent / line
                 for line in lines if line and not line.startswith("#")]
        if not paths:
            raise DataError(f"the list {target} names no video")
        return paths
    if target.is_file() or is_frame_folder(target):
        return [target]
    found = [p for p in target.iterdir()
             if (p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES) or is_frame_folder(p)]
    if not found:
        raise DataError(f"{target} holds no videos ({', '.join(VIDEO_SUFFIXES)}) and no frame folders")
    return sorted(found, key=_natural)


# ------------------------------------------------------------------------------ predictor
@dataclass
class Predictor:
    """A model and the preprocessing its checkpoint records.

    Attributes:
        model: in eval mode, on ``device``.
        description: :func:`~aknet_cli.checkpoints.reader.model_from_checkpoint`'s.
        classes: class names in the model's index order, if known.
        clips, crops: the views ``CxK``.
        resize, crop, resize_mode: the checkpoint's evaluation transform (crop = resize for 3 crops).
        protocol: sampling, crops and view averaging (:class:`~aknet_cli.data.protocols.Protocol`).
    """

    model: nn.Module
    description: dict[str, Any]
    classes: list[str] | None
    clips: int
    crops: int
    resize: int
    crop: int
    resize_mode: str
    device: torch.device
    protocol: Protocol

    @property
    def num_segments(self) -> int:
        return int(self.description["num_segments"])

    @property
    def frames_per_segment(self) -> int:
        return int(getattr(getattr(self.model, "backbone", self.model), "frames_per_segment", 1))


def class_names(description: dict[str, Any], labels: str | Path | None) -> list[str] | None:
    """The model's class names: from ``labels`` (a labels file in the release's order, put in
    the checkpoint's label order), else those the checkpoint records."""
    if labels is None:
        return list(description["classes"]) if description.get("classes") else None
    from ..data.manifest import order_classes
    from .overlay import load_labels

    names = load_labels(labels, num_classes=int(description["num_classes"]))
    order = description.get("label_order")
    return order_classes(names, order) if order else names


def load_predictor(checkpoint: str | Path, *, views: str = "1x1", labels: str | Path | None = None,
                   backbone: str | None = None, num_segments: int | None = None, label_order: str | None = None,
                   device: str = "cpu", protocol: str | None = None) -> Predictor:
    """Read the checkpoint (any format the engine reads) and fix the preprocessing.

    Raises:
        AKNetError: an unreadable checkpoint, bad views, an unknown protocol or one that does
            not define these views, a labels file that does not fit.
    """
    from ..engine.evaluate import parse_views
    from ..checkpoints.reader import model_from_checkpoint
    from ..engine.protocol import resolve_protocol

    clips, crops = parse_views(views)
    if protocol is not None:
        get_protocol(protocol)
    if device not in ("cpu", "cuda", "auto"):
        raise ConfigError(f"--device must be cpu, cuda or auto, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is visible")
    target = torch.device("cuda" if device != "cpu" and torch.cuda.is_available() else "cpu")
    model, description = model_from_checkpoint(checkpoint, backbone=backbone, num_segments=num_segments,
                                                    label_order=label_order)
    rules = resolve_protocol(protocol, description["protocol"], description, clips=clips, source=str(checkpoint))
    names = class_names(description, labels)
    data = description.get("data") or {}
    resize = int(data.get("resize", 256))
    crop = resize if crops == 3 else int(data.get("crop", 224))
    return Predictor(model.to(target).eval(), description, names, clips, crops, resize, crop,
                     str(data.get("resize_mode", "short")), target, rules)


# ------------------------------------------------------------------------------ running
def clip_views(predictor: Predictor, source: Source, backend: str) -> tuple[torch.Tensor, Any]:
    """``(views (C·K, T, [5,] 3, crop, crop), window)``: the clips ``aknet eval`` would build."""
    from ..data.sampling import sample_indices
    from ..data.transforms import build_transform

    t, fps, clips = predictor.num_segments, predictor.frames_per_segment, predictor.clips
    name = predictor.protocol.name
    indices = sample_indices(source.num_frames, t, train=False, frames_per_segment=fps, num_clips=clips, protocol=name)
    frames, window = source.read_for_model(indices.reshape(-1).tolist(), backend)
    transform = build_transform(train=False, resize=predictor.resize, crop=predictor.crop,
                                resize_mode=predictor.resize_mode, three_crop=predictor.crops == 3, protocol=name)
    clip, _ = transform(frames, 0)
    # (crops?, clips*T*fps, 3, h, w) -> (crops*clips, T, fps, 3, h, w), clip-major as VideoDataset orders them.
    views = clip.reshape(-1, clips, t, fps, *clip.shape[-3:]).transpose(0, 1).reshape(-1, t, fps, *clip.shape[-3:])
    return (views.squeeze(2) if fps == 1 else views), window


@torch.no_grad()
def score_video(predictor: Predictor, source: Source, backend: str) -> tuple[torch.Tensor, Any]:
    """``(probabilities (K,), window)``: the views' scores averaged as the protocol averages them,
    as probabilities: the mean softmax, or (TSM's mean logit) the softmax of the mean logit, as
    TSM's ``test_models.py --softmax`` gives it; either ranks the classes as ``aknet eval`` does."""
    from ..engine.scoring import average_views

    views, window = clip_views(predictor, source, backend)
    scores = average_views(predictor.model(views.to(predictor.device)), len(views), predictor.protocol.average)[0]
    return (scores.softmax(dim=0) if predictor.protocol.average == "logits" else scores).cpu(), window


@dataclass
class Prediction:
    """One video's result (``top`` empty and ``error`` set when it was skipped)."""

    video: str
    top: list[dict[str, Any]] = field(default_factory=list)  # rank order: index, name, prob
    error: str | None = None
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"video": self.video, "top": self.top, "error": self.error, "note": self.note}


def top_classes(probs: torch.Tensor, k: int, names: list[str] | None) -> list[dict[str, Any]]:
    top = probs.topk(min(k, probs.numel()))
    return [{"index": int(i), "name": names[int(i)] if names else None, "prob": float(p)}
            for p, i in zip(top.values.tolist(), top.indices.tolist())]


def predict(predictor: Predictor, videos: list[Path], *, top_k: int = 5, backend: str | None = None,
            strict: bool = False, on_video: Callable[[Prediction, Source | None], None] | None = None) -> list[Prediction]:
    """Top-``top_k`` classes of every video; an unreadable one is skipped (raised with ``strict``).

    Args:
        on_video: called after each video with its prediction and source (``None`` if skipped).

    Raises:
        VideoDecodeError: an unreadable video under ``strict``.
    """
    if top_k < 1:
        raise ConfigError(f"--top-k must be >= 1, got {top_k}")
    results = []
    for path in videos:
        source = None
        try:
            source = open_source(path, backend=backend)
            probs, window = score_video(predictor, source, backend)
            result = Prediction(str(path), top_classes(probs, top_k, predictor.classes),
                                note=window.describe() if window.cut else None)
        except VideoDecodeError as exc:
            if strict:
                raise
            source, result = None, Prediction(str(path), error=str(exc))
        results.append(result)
        if on_video is not None:
            on_video(result, source)
    return results


def predictions_table(results: list[Prediction], top_k: int):
    """One row per video: ``video, status, error, top1, top1_class, top1_prob, …``."""
    import pandas as pd

    rows = []
    for r in results:
        row: dict[str, Any] = {"video": r.video, "status": "skipped" if r.error else "ok", "error": r.error or ""}
        for j in range(top_k):
            hit = r.top[j] if j < len(r.top) else None
            row[f"top{j + 1}"] = hit["index"] if hit else None
            row[f"top{j + 1}_class"] = (hit["name"] or "") if hit else ""
            row[f"top{j + 1}_prob"] = hit["prob"] if hit else None
        rows.append(row)
    return pd.DataFrame(rows)


def check_outputs(out: Path | None, keypoints: Path | None) -> None:
    """Fail before any work when ``--out`` (a CSV file) or ``--keypoints`` (a folder) cannot be
    written: the checks every command's outputs go through."""
    if out is not None:
        check_output_file(out, option="--out")
    if keypoints is not None:
        check_output_dir(keypoints, option="--keypoints")


def unreadable_error(target: Path, results: list) -> DataError:
    """The one line for a run in which no video could be read: the reason itself when there was
    one video, else the count and the first reason."""
    first = results[0].error
    if len(results) == 1:
        return DataError(f"cannot predict {target}: {first}")
    return DataError(f"no video of {target} could be read ({len(results)} skipped; the first: {first}); "
                     "check the paths and that the files are videos or frame folders")


def keypoint_drawer(predictor: Predictor, out: Path, *, backend: str, video_format: str = "mp4"):
    """A callable ``(source) -> files`` that writes what ``aknet visualize`` draws for one video
    into ``out/<video name>/``; AK-Net checkpoints only.

    Raises:
        ConfigError: the checkpoint is a plain backbone (it selects no keypoints).
    """
    from ..models.aknet import AKNet
    from . import overlay

    if not isinstance(predictor.model, AKNet):
        raise ConfigError("--keypoints needs an AK-Net checkpoint; this one is a backbone, which selects no keypoints "
                          "(make one with aknet convert-1d)")
    loaded = overlay.LoadedModel.of(predictor.model, classes=predictor.classes, trained=True,
                                    data=predictor.description.get("data") or {})
    crop = predictor.crop if predictor.crops == 1 else int((predictor.description.get("data") or {}).get("crop", 224))

    def draw(source: Source) -> dict[str, str]:
        vis, shown, heat = overlay.visualize(source, loaded, resize=predictor.resize, crop=crop,
                                             resize_mode=predictor.resize_mode, backend=backend,
                                             labels=predictor.classes, protocol=predictor.protocol.name)
        return overlay.render(vis, shown, heat, out / source.path.stem, video_format=video_format)

    return draw
