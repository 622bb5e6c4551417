"""Keypoint overlays (the paper's Fig. 6) on any video or frame folder.

The clip is read through :mod:`~aknet_cli.data.video_source` (which refuses frames too small
for a model and cuts overly long ones to their centre) and sampled exactly as evaluation reads it,
under the checkpoint's protocol (:mod:`~aknet_cli.data.protocols`; TDN's windows for a TDN
backbone): :func:`~aknet_cli.data.sampling.sample_indices` with ``train=False``, then
:func:`~aknet_cli.data.transforms.build_transform` with ``train=False``: resize, centre crop,
normalise. Each keypoint ``(t, y, x)`` is a cell of the
split feature map; :class:`Geometry` maps that cell back through the crop and the resize
actually applied to the frame, so it lands on the original pixels the cell was computed from.
For a backbone reading several frames per segment (TDN: 5), the centre frame of the window
(the one its RGB stem reads) is the one shown.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch
from torch import nn

from .._atomic import atomic_output
from ..exceptions import CheckpointError, ConfigError
from ..data.video_source import Source

if TYPE_CHECKING:  # Pillow is imported where it draws, not when the module loads
    from PIL import Image

VIDEO_FORMATS = ("mp4", "gif")
KEYPOINT_RGB = (255, 40, 40)


# ------------------------------------------------------------------------------ geometry
@dataclass(frozen=True)
class Geometry:
    """Where the model's input came from in one original frame.

    The frame ``(height, width)`` was resized to ``(resized_h, resized_w)`` and a
    ``crop × crop`` window at ``(top, left)`` of the resized frame was kept.
    """

    height: int
    width: int
    resized_h: int
    resized_w: int
    top: int
    left: int
    crop: int

    @classmethod
    def of(cls, height: int, width: int, *, resize: int, crop: int, resize_mode: str,
           protocol: str = "aknet") -> "Geometry":
        """The geometry ``ClipTransform``'s resize and centre crop apply under ``protocol``
        (the same functions: :func:`~aknet_cli.data.transforms.resized_size`,
        :func:`~aknet_cli.data.transforms.centre_offset`)."""
        from ..data.protocols import get_protocol
        from ..data.transforms import centre_offset, resized_size

        rules = get_protocol(protocol, option="protocol")
        rh, rw = resized_size(height, width, resize, mode=resize_mode, long_side=rules.long_side)
        top, left = centre_offset(rh, rw, crop, rounding=rules.centre)
        return cls(height, width, rh, rw, top, left, crop)

    def to_original(self, y: float, x: float) -> tuple[float, float]:
        """A point in crop pixels -> the same point in original-frame pixels."""
        return ((y + self.top) * self.height / self.resized_h, (x + self.left) * self.width / self.resized_w)

    def cell_box(self, y: int, x: int, stride: int) -> tuple[float, float, float, float]:
        """Cell ``(y, x)`` of a stride-``stride`` feature map -> ``(y0, x0, y1, x1)`` in the
        original frame (the cell's ``stride × stride`` input pixels, clipped to the crop)."""
        y0, x0 = self.to_original(y * stride, x * stride)
        y1, x1 = self.to_original(min((y + 1) * stride, self.crop), min((x + 1) * stride, self.crop))
        return y0, x0, y1, x1

    def crop_box(self) -> tuple[float, float, float, float]:
        """The crop window in original-frame pixels."""
        return (*self.to_original(0, 0), *self.to_original(self.crop, self.crop))


# --------------------------------------------------------------------------------- model
def load_labels(path: str | Path, *, num_classes: int | None = None) -> list[str]:
    """Class names: one per line, a JSON list, or a JSON ``{name: index}`` (Sth-Sth V2 labels);
    with ``num_classes``, exactly that many (the model's).

    Raises:
        DataError: missing file, not UTF-8, bad JSON, an empty or repeated name, or an index
            that is not an integer of 0..N-1 (one line naming the file).
        ConfigError: the file lists another number of classes than the model predicts.
    """
    from ..data.formats import read_label_names

    names = read_label_names(Path(path))
    return names if num_classes is None else fit_labels(names, num_classes, path)


def fit_labels(names: list[str], num_classes: int, path: str | Path) -> list[str]:
    """``names`` when there is one for each of the model's classes.

    Raises:
        ConfigError: another number of names than classes (one line naming the file).
    """
    if len(names) != num_classes:
        raise ConfigError(f"--labels {path} lists {len(names)} classes, the checkpoint predicts {num_classes}")
    return names


def checkpoint_classes(ckpt: dict[str, Any]) -> list[str] | None:
    """Class names a checkpoint carries (``config`` or ``meta``: ``classes`` / ``class_names``)."""
    for where in (ckpt.get("config") or {}, ckpt.get("meta") or {}):
        for key in ("classes", "class_names"):
            names = where.get(key)
            if isinstance(names, (list, tuple)) and names:
                return [str(n) for n in names]
    return None


@dataclass
class LoadedModel:
    model: nn.Module
    split: str
    stride: int
    frames: int
    frames_per_segment: int
    num_classes: int
    classes: list[str] | None
    trained: bool
    data: dict[str, Any]
    trained_alpha: float | None = None  # the α a checkpoint was trained with (None: untrained)
    protocol: str = "tsm"  # sampling and crops (aknet_cli.data.protocols): the checkpoint's, else the family's

    @classmethod
    def of(cls, model: nn.Module, *, classes: list[str] | None, trained: bool, data: dict[str, Any],
           trained_alpha: float | None = None, protocol: str | None = None) -> "LoadedModel":
        """An AK-Net ready to draw (put in eval mode), read under ``protocol`` (default: the
        one ``data`` records, else its backbone family's)."""
        from ..engine.protocol import model_family

        bb = model.backbone
        protocol = protocol or data.get("protocol") or model_family(model)
        return cls(model.eval(), model.config.split, int(bb.specs[model.config.split].stride), int(model.num_segments),
                   int(bb.frames_per_segment), int(model.num_classes), classes, trained, dict(data), trained_alpha,
                   protocol)

    @property
    def alpha(self) -> float:
        """The α the keypoints are selected at."""
        return float(self.model.config.alpha)

    @property
    def alpha_changed(self) -> bool:
        """A checkpoint drawn at another α than the one it was trained with."""
        return self.trained_alpha is not None and self.alpha != self.trained_alpha


def load_overlay_model(checkpoint: str | Path | None, *, backbone: str, split: str | None, alpha: float | None,
                       frames: int | None, num_classes: int = 174) -> LoadedModel:
    """The AK-Net whose keypoints are drawn: from a checkpoint (``convert-1d`` or training
    output, read by :func:`~aknet_cli.checkpoints.reader.read_checkpoint`), or untrained."""
    if checkpoint is not None:
        return _load_trained(checkpoint, split=split, alpha=alpha, frames=frames)
    from .flops import build_counted_model, validate

    split = split or "res4"
    alpha = 0.3 if alpha is None else alpha
    frames = 8 if frames is None else frames
    validate(split=split, alpha=alpha, frames=frames, size=32, mode="inference", num_classes=num_classes)
    if split == "none":
        raise ConfigError("--split none has no keypoints; choose res2, res3 or res4")
    model = build_counted_model(backbone, split=split, alpha=alpha, frames=frames, num_classes=num_classes)
    return LoadedModel.of(model, classes=None, trained=False, data={})


def _load_trained(checkpoint: str | Path, *, split: str | None, alpha: float | None, frames: int | None) -> LoadedModel:
    """A checkpoint's AK-Net; with ``alpha``, built at that α from a copy of its description
    (the weights do not depend on α: it only sets how many points are selected)."""
    import dataclasses

    from ..checkpoints.reader import build_model, read_checkpoint

    ckpt = read_checkpoint(checkpoint)
    if ckpt.kind != "aknet":
        raise CheckpointError(f"{checkpoint} is a stage-1 backbone checkpoint; visualize needs an AK-Net checkpoint "
                              f"(make one with: aknet convert-1d --checkpoint {checkpoint} --out aknet.pt)")
    switches, segments = ckpt.config["aknet"], int(ckpt.config["num_segments"])
    if split is not None and split != switches["split"]:
        raise ConfigError(f"--split {split} contradicts {checkpoint}, which splits at {switches['split']}")
    if frames is not None and frames != segments:
        raise ConfigError(f"--frames {frames} contradicts {checkpoint}, which was built for {segments} frames")
    trained_alpha = float(switches["alpha"])
    if alpha is not None:
        from .flops import validate

        validate(split=switches["split"], alpha=alpha, frames=1, size=32, mode="inference", num_classes=1)
        config = {**ckpt.config, "aknet": {**switches, "alpha": float(alpha)}}
        ckpt = dataclasses.replace(ckpt, config=config)
    model = build_model(ckpt)
    description = ckpt.description()
    return LoadedModel.of(model, classes=checkpoint_classes({"config": description}), trained=True,
                          data=dict(description.get("data") or {}), trained_alpha=trained_alpha)


# ------------------------------------------------------------------------------- running
@dataclass
class Visualization:
    """Everything drawn, in original-frame coordinates; ``as_dict`` is written as JSON."""

    source: str
    num_frames: int
    frame_indices: list[int]  # the frame shown for each segment (0-based)
    geometry: Geometry
    stride: int
    feature_size: tuple[int, int]
    keypoints: list[dict[str, Any]]  # rank, t, y, x, frame, box (y0, x0, y1, x1)
    counts: list[int]
    top5: list[dict[str, Any]]
    trained: bool
    split: str
    alpha: float
    window: dict[str, int] | None = None  # the part of the frames kept (too long ones are cut), None if whole
    trained_alpha: float | None = None  # the α of the checkpoint's training, when one was read

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["geometry"] = asdict(self.geometry)
        return d


def run_model(loaded: LoadedModel, clip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(logits (K,), keypoints (N, 3), heatmap (T, h, w))`` for one clip; the heatmap is the
    raw scores ``h`` (eq. 6) the selection ranked."""
    model = loaded.model
    with torch.inference_mode():
        device = next(model.parameters()).device
        logits, heat, keypoints = model.after_split(model.features(clip.unsqueeze(0).to(device)))
    return logits[0].float().cpu(), keypoints[0].long().cpu(), heat[0].float().cpu()


def visualize(source: Source, loaded: LoadedModel, *, resize: int, crop: int, resize_mode: str,
              backend: str | None = None, labels: list[str] | None = None,
              protocol: str | None = None) -> tuple[Visualization, torch.Tensor, torch.Tensor]:
    """Read the clip as evaluation does (under ``protocol``, default the model's), run the
    model, map the keypoints back.

    Returns:
        ``(visualization, shown frames uint8 (T, 3, H, W), heatmap (T, h, w))``.
    """
    from ..data.sampling import sample_indices
    from ..data.transforms import build_transform

    fps, protocol = loaded.frames_per_segment, protocol or loaded.protocol
    idx = sample_indices(source.num_frames, loaded.frames, train=False, frames_per_segment=fps,
                         protocol=protocol)[0]  # (T, fps)
    frames, window = source.read_for_model(idx.reshape(-1).tolist(), backend)  # (T*fps, 3, H, W)
    transform = build_transform(train=False, resize=resize, crop=crop, resize_mode=resize_mode, protocol=protocol)
    clip, _ = transform(frames, 0)  # (T*fps, 3, crop, crop)
    h, w = int(frames.shape[-2]), int(frames.shape[-1])
    geometry = Geometry.of(h, w, resize=resize, crop=crop, resize_mode=resize_mode, protocol=protocol)
    if tuple(clip.shape[-2:]) != (crop, crop):
        raise AssertionError(f"transform produced {tuple(clip.shape[-2:])}, expected {crop}x{crop}")
    if fps > 1:
        clip = clip.reshape(loaded.frames, fps, *clip.shape[1:])
    logits, keypoints, heat = run_model(loaded, clip)
    centre = (fps - 1) // 2
    shown = frames.reshape(loaded.frames, fps, *frames.shape[1:])[:, centre]
    shown_idx = [int(i) for i in idx[:, centre]]

    kps = []
    counts = [0] * loaded.frames
    for rank, (t, y, x) in enumerate(keypoints.tolist()):
        counts[t] += 1
        kps.append({"rank": rank, "t": t, "y": y, "x": x, "frame": shown_idx[t],
                    "box": [round(v, 3) for v in geometry.cell_box(y, x, loaded.stride)]})
    names = labels or loaded.classes
    probs = torch.softmax(logits, dim=0)
    top = torch.topk(probs, k=min(5, probs.numel()))
    top5 = [{"index": int(i), "prob": float(p),
             "name": names[int(i)] if names and int(i) < len(names) else None}
            for p, i in zip(top.values.tolist(), top.indices.tolist())]
    vis = Visualization(str(source.path), source.num_frames, shown_idx, geometry, loaded.stride,
                        (int(heat.shape[-2]), int(heat.shape[-1])), kps, counts, top5, loaded.trained,
                        loaded.split, loaded.alpha, asdict(window) if window.cut else None, loaded.trained_alpha)
    return vis, shown, heat


# ------------------------------------------------------------------------------- drawing
def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def annotate_frame(frame: np.ndarray, vis: Visualization, t: int) -> "Image.Image":
    """One original frame with its keypoint cells (translucent fill + centre dot) and the
    crop window the model saw (thin white outline)."""
    from PIL import Image, ImageDraw

    base = Image.fromarray(frame).convert("RGBA")
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    y0, x0, y1, x1 = vis.geometry.crop_box()
    line = max(1, round(min(base.size) / 300))
    draw.rectangle([x0, y0, x1 - 1, y1 - 1], outline=(255, 255, 255, 160), width=line)
    for kp in vis.keypoints:
        if kp["t"] != t:
            continue
        by0, bx0, by1, bx1 = kp["box"]
        draw.rectangle([bx0, by0, bx1 - 1, by1 - 1], fill=(*KEYPOINT_RGB, 70))
        cy, cx = (by0 + by1) / 2, (bx0 + bx1) / 2
        r = max(1.5, min(by1 - by0, bx1 - bx0) / 5)
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(*KEYPOINT_RGB, 230))
    return Image.alpha_composite(base, layer).convert("RGB")


def heatmap_frame(frame: np.ndarray, vis: Visualization, heat: np.ndarray, lo: float, hi: float) -> "Image.Image":
    """One original frame with the heatmap (over the crop window it covers) blended in; the
    colours span ``[lo, hi]`` (the clip's range, since selection ranks the whole clip)."""
    import matplotlib

    from PIL import Image

    g = vis.geometry
    y0, x0, y1, x1 = g.crop_box()
    hh, ww = heat.shape
    # The map's cells cover stride-sized input blocks; the last row/column may extend past the crop.
    span_y, span_x = min(hh * vis.stride, g.crop), min(ww * vis.stride, g.crop)
    y1 = g.to_original(span_y, 0)[0]
    x1 = g.to_original(0, span_x)[1]
    norm = np.clip((heat - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(heat)
    rgba = (matplotlib.colormaps["jet"](norm) * 255).astype(np.uint8)
    box_w, box_h = max(1, round(x1 - x0)), max(1, round(y1 - y0))
    over = Image.fromarray(rgba).resize((box_w, box_h), Image.NEAREST)
    over.putalpha(110)
    base = Image.fromarray(frame).convert("RGBA")
    base.alpha_composite(over, (max(0, round(x0)), max(0, round(y0))))
    return base.convert("RGB")


def _fit(image, max_side: int, min_side: int = 224):
    """Shrink to ``max_side``, or enlarge a small frame (112² synth-sth) to ``min_side`` so the
    drawn keypoints and captions stay legible."""
    from PIL import Image

    long_side = max(image.size)
    scale = max_side / long_side if long_side > max_side else min(min_side, max_side) / long_side
    if scale <= 1 and long_side <= max_side:
        return image
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BILINEAR)


def grid_png(panels: list, captions: list[str], title: str, path: Path, *, per_row: int = 4, max_side: int = 320) -> None:
    """Panels in rows with a caption under each and a title on top, written atomically."""
    from PIL import Image, ImageDraw

    panels = [_fit(p, max_side) for p in panels]
    pw = max(p.width for p in panels)
    ph = max(p.height for p in panels)
    font, tfont = _font(14), _font(16)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    pw = max([pw] + [int(measure.textlength(cap, font=font)) + 4 for cap in captions])  # captions never overlap
    cap_h, title_h, pad = 22, 28, 6
    cols = min(per_row, len(panels))
    rows = math.ceil(len(panels) / cols)
    sheet = Image.new("RGB", (cols * (pw + pad) + pad, title_h + rows * (ph + cap_h + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((pad, 6), title, fill="black", font=tfont)
    for i, (p, cap) in enumerate(zip(panels, captions)):
        r, c = divmod(i, cols)
        x, y = pad + c * (pw + pad), title_h + r * (ph + cap_h + pad)
        sheet.paste(p, (x + (pw - p.width) // 2, y + (ph - p.height) // 2))
        draw.text((x, y + ph + 3), cap, fill="black", font=font)
    with atomic_output(path, suffix=".png") as tmp:
        sheet.save(tmp, format="PNG")


def write_animation(images: list, path: Path, *, seconds_per_frame: float = 0.5) -> str:
    """An MP4 (PyAV: H.264, else MPEG-4) or a GIF (Pillow), by ``path``'s suffix; written atomically.

    Returns the codec used.
    """
    suffix = path.suffix.lower()
    if suffix == ".gif":
        with atomic_output(path, suffix=".gif") as tmp:
            images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                           duration=int(seconds_per_frame * 1000), loop=0)
        return "gif"
    import av

    w = max(im.width for im in images)
    h = max(im.height for im in images)
    w, h = w + w % 2, h + h % 2  # yuv420p needs even sides
    codec = "libx264"
    try:
        av.codec.Codec(codec, "w")
    except Exception:
        codec = "mpeg4"
    rate = max(1, round(1 / seconds_per_frame))
    with atomic_output(path, suffix=".mp4") as tmp:
        with av.open(str(tmp), "w", format="mp4") as container:
            stream = container.add_stream(codec, rate=rate)
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            from PIL import Image

            for im in images:
                canvas = Image.new("RGB", (w, h), "black")
                canvas.paste(im, (0, 0))
                for packet in stream.encode(av.VideoFrame.from_ndarray(np.asarray(canvas), format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    return codec


def render(vis: Visualization, shown: torch.Tensor, heat: torch.Tensor, out: Path, *, video_format: str = "mp4",
           stem: str = "keypoints", progress: Callable[[], None] | None = None) -> dict[str, str]:
    """Write the keypoint grid PNG, the heatmap PNG, the animation and the JSON into ``out``."""
    if video_format not in VIDEO_FORMATS:
        raise ConfigError(f"--video-format must be mp4 or gif, got {video_format!r}")
    out.mkdir(parents=True, exist_ok=True)
    step = progress or (lambda: None)
    frames = shown.permute(0, 2, 3, 1).numpy()
    heat_np = heat.detach().cpu().numpy()
    g = vis.geometry
    total = len(vis.keypoints)
    note = "" if vis.trained else " (UNTRAINED weights)"
    if vis.trained_alpha is not None and vis.alpha != vis.trained_alpha:
        note += f" (trained at alpha={vis.trained_alpha:g})"
    # ASCII only: Pillow's built-in font has no Greek letters or arrows.
    title = (f"{Path(vis.source).name}: {total} keypoints, split {vis.split}, alpha={vis.alpha:g}, "
             f"{g.width}x{g.height} frame -> {vis.feature_size[0]}x{vis.feature_size[1]} cells{note}")
    annotated, heated, caps = [], [], []
    for t in range(len(frames)):
        annotated.append(annotate_frame(frames[t], vis, t))
        heated.append(heatmap_frame(frames[t], vis, heat_np[t], float(heat_np.min()), float(heat_np.max())))
        caps.append(f"t={t + 1} (frame {vis.frame_indices[t] + 1}): {vis.counts[t]} pts")
        step()
    paths = {"keypoints_png": out / f"{stem}.png", "heatmap_png": out / f"{stem}_heatmap.png",
             "animation": out / f"{stem}.{video_format}", "json": out / f"{stem}.json"}
    grid_png(annotated, caps, title, paths["keypoints_png"])
    grid_png(heated, [f"t={t + 1}: heatmap, {c} pts" for t, c in enumerate(vis.counts)],
             f"heatmap over the crop the model saw{note}", paths["heatmap_png"])
    movie = []
    for t, im in enumerate(annotated):
        from PIL import ImageDraw

        im = _fit(im, 640).copy()
        ImageDraw.Draw(im).text((6, 4), caps[t], fill=(255, 255, 0), font=_font(max(12, im.height // 24)))
        movie.append(im)
    codec = write_animation(movie, paths["animation"])
    with atomic_output(paths["json"], suffix=".json") as tmp:
        tmp.write_text(json.dumps({**vis.as_dict(), "codec": codec}, indent=1))
    return {k: str(v) for k, v in paths.items()}
