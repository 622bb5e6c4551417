"""``synth-sth``: a small, deterministic Something-Something-like dataset for CPU demos.

Every clip shows one small moving object among static distractors on a textured background
that drifts slowly (a hand-held camera). The class is defined only by what the object does
over time, and most classes come in pairs that are time-reversals of each other (left->right
vs right->left, towards vs away, appearing vs disappearing, clockwise vs counterclockwise,
up vs down): the *set* of frames of a clip has the same distribution in both classes of a
pair, so a frame-averaging model (TSN) cannot separate them while a temporal model can.
The informative content (the object) covers ~2% of each frame.

Per clip, start/end positions, speeds, colours, sizes, background texture and drift, and
distractor placement are random; everything derives from ``(seed, class, split, number)``,
so the output is byte-identical for a given seed. Three splits: ``train``, ``val`` (what
training selects ``best.pt`` on) and a labelled, held-out ``test`` split drawn from its own
stream (50 clips a class by default), on which results are reported.

The raw data is written in an official layout (Sth-Sth V1 JPEG folders by default, or
Sth-Sth V2 WebM / Diving48 MP4) and prepared through the same readers as the real releases.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from ..exceptions import ConfigError, DataError
from . import atomic
from . import synthetic_relations as relations
from .synthetic_render import SPLIT_STREAMS, SPLITS, DriftingBackground, background, clip_rng
from .synthetic_render import bar as _bar
from .synthetic_render import colour as _colour
from .synthetic_render import disc as _disc

MARKER = "synth-sth.json"
FORMATS = ("sthv1", "sthv2", "diving48")

# Class order = the labels file order; pairs first so --classes 4 still has two reversed pairs.
CLASS_NAMES = (
    "Moving something from left to right",
    "Moving something from right to left",
    "Moving something towards the camera",
    "Moving something away from the camera",
    "Moving something up",
    "Moving something down",
    "Making something appear",
    "Making something disappear",
    "Rotating something clockwise",
    "Rotating something counterclockwise",
    "Pushing something so that it slightly moves",
    "Pushing something so that it falls off the table",
    "Pretending to move something",
    "Shaking something",
)
#: label-file index pairs whose clips are exact time-reversals of each other. A prepared
#: dataset records them by name (``dataset.json`` ``reversed_pairs``): its label order may
#: differ (sorted by default), so use ``Manifest.reversed_pairs`` for its label indices.
REVERSED_PAIRS = ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9))


def reversed_pair_names(classes: int, kind: str = "motion") -> list[tuple[str, str]]:
    """The time-reversed pairs among the first ``classes`` classes of a kind, by class name."""
    names = class_names(kind)
    return [(names[a], names[b]) for a, b in kind_reversed_pairs(kind) if b < classes]


#: What the classes are about: ``motion`` (synth-sth: one object acting alone, this module) or
#: ``relations`` (two objects relative to each other, :mod:`.synthetic_relations`).
KINDS = ("motion", "relations")
#: Per kind: the dataset's name and its default class count and frame side. Relations are
#: trained on 96² crops of the 112² frames: a 6×6 res4 map, on which where things are can
#: matter (docs/data.md).
KIND_INFO = {
    "motion": {"name": "synth-sth", "classes": 12, "size": 112},
    "relations": {"name": "synth-relations", "classes": len(relations.CLASS_NAMES), "size": 112},
}


def class_names(kind: str = "motion") -> tuple[str, ...]:
    """The class names of a kind, in labels-file order."""
    return CLASS_NAMES if kind == "motion" else relations.CLASS_NAMES


def kind_reversed_pairs(kind: str = "motion") -> tuple[tuple[int, int], ...]:
    """Label-file index pairs of a kind whose clips are time-reversals of each other."""
    return REVERSED_PAIRS if kind == "motion" else relations.REVERSED_PAIRS


@dataclass(frozen=True)
class SynthConfig:
    """Generator parameters (all recorded in the manifest's ``info``, see :meth:`record`).

    ``classes`` and ``size`` left at ``None`` take the kind's defaults (:data:`KIND_INFO`).
    """

    classes: int | None = None
    train_per_class: int = 40
    val_per_class: int = 10
    #: A labelled held-out split: val selects best.pt, test is what results are reported on.
    test_per_class: int = 50
    size: int | None = None
    frames: int = 16
    seed: int = 0
    format: str = "sthv1"
    fps: int = 12
    kind: str = "motion"

    def __post_init__(self) -> None:
        defaults = KIND_INFO.get(self.kind, KIND_INFO["motion"])
        for key in ("classes", "size"):
            if getattr(self, key) is None:
                object.__setattr__(self, key, defaults[key])

    @property
    def name(self) -> str:
        return KIND_INFO[self.kind]["name"]

    def record(self) -> dict:
        """The parameters as recorded in the manifest and the raw folder's marker. ``kind`` is
        left out for ``motion``, so datasets prepared before relations existed are still
        recognised as the same dataset."""
        fields = asdict(self)
        if self.kind == "motion":
            del fields["kind"]
        return fields

    def check(self) -> "SynthConfig":
        if self.kind not in KINDS:
            raise ConfigError(f"unknown --kind {self.kind!r}; choose one of {', '.join(KINDS)}")
        names = class_names(self.kind)
        if not 2 <= self.classes <= len(names):
            raise ConfigError(f"--classes must be between 2 and {len(names)} for --kind {self.kind}, got {self.classes}")
        if self.train_per_class < 1 or self.val_per_class < 1:
            raise ConfigError("--train-per-class and --val-per-class must be >= 1")
        if self.test_per_class < 0:
            raise ConfigError(f"--test-per-class must be >= 0 (0: no test split), got {self.test_per_class}")
        if not 32 <= self.size <= 1024:
            raise ConfigError(f"--size must be between 32 and 1024 pixels, got {self.size}")
        if not 4 <= self.frames <= 512:
            raise ConfigError(f"--frames must be between 4 and 512, got {self.frames}")
        if not 0 <= self.seed < 2**32:  # what numpy's generators accept
            raise ConfigError(f"--seed must be between 0 and {2**32 - 1}, got {self.seed}")
        if self.format not in FORMATS:
            raise ConfigError(f"unknown --format {self.format!r}; choose one of {', '.join(FORMATS)}")
        return self


# ---------------------------------------------------------------------------- motions
@dataclass
class Track:
    """Per-frame object state, arrays of length ``frames``: centre, scale, angle, opacity."""

    x: np.ndarray
    y: np.ndarray
    scale: np.ndarray
    angle: np.ndarray
    alpha: np.ndarray


def _track(rng: np.random.Generator, cls: int, size: int, frames: int) -> Track:
    t = np.linspace(0.0, 1.0, frames)
    lo, hi = 0.15 * size, 0.85 * size
    near = lambda: rng.uniform(0.15, 0.35) * size  # noqa: E731
    far = lambda: rng.uniform(0.65, 0.85) * size  # noqa: E731
    x = np.full(frames, rng.uniform(lo, hi))
    y = np.full(frames, rng.uniform(lo, hi))
    scale, angle, alpha = np.ones(frames), np.full(frames, rng.uniform(0, 2 * math.pi)), np.ones(frames)
    base = cls - cls % 2  # the first class of the pair; odd classes are its reversal
    if base == 0:  # left -> right
        x = np.linspace(near(), far(), frames)
    elif base == 2:  # towards the camera: grows
        scale = np.linspace(rng.uniform(0.5, 0.7), rng.uniform(1.5, 1.9), frames)
    elif base == 4:  # up: bottom -> top
        y = np.linspace(far(), near(), frames)
    elif base == 6:  # appearing, over a random window
        start = rng.uniform(0.1, 0.45)
        alpha = np.clip((t - start) / rng.uniform(0.2, 0.4), 0.0, 1.0)
    elif base == 8:  # clockwise on screen (y points down, so the angle grows)
        angle = angle[0] + np.linspace(0.0, rng.uniform(0.6, 1.4) * math.pi, frames)
    if cls in (1, 3, 5, 7, 9):
        x, y, scale, angle, alpha = x[::-1], y[::-1], scale[::-1], angle[::-1], alpha[::-1]
    elif cls in (10, 11):  # pushed sideways from a random side; stops, or falls off the edge
        direction = rng.choice([-1.0, 1.0])
        start = rng.uniform(0.1, 0.3)
        s = np.clip((t - start) / (1.0 - start), 0.0, 1.0)
        x0 = size / 2 - direction * rng.uniform(0.1, 0.25) * size
        y = np.full(frames, rng.uniform(0.3, 0.5) * size)
        if cls == 10:
            x = x0 + direction * rng.uniform(0.12, 0.25) * size * (1 - (1 - s) ** 2)  # decelerates
        else:
            x = x0 + direction * rng.uniform(0.55, 0.7) * size * s
            edge = size / 2 + direction * 0.2 * size
            over = np.clip((x - edge) * direction, 0.0, None)
            y = y + 0.08 * over**2  # past the table edge it drops
    elif cls == 12:  # pretending: tiny jitter, no displacement
        x = x + rng.normal(0, 0.4, frames)
        y = y + rng.normal(0, 0.4, frames)
    elif cls == 13:  # shaking: fast left-right oscillation
        x = x + rng.uniform(0.06, 0.1) * size * np.sin(2 * math.pi * rng.uniform(2, 3.5) * t + rng.uniform(0, 6.3))
    return Track(x=x, y=y, scale=scale, angle=angle, alpha=alpha)


# ---------------------------------------------------------------------------- rendering
# The module-level name is what tests flatten (monkeypatch) to segment the object.
_background = background


def render_clip(*, cls: int, seed: int, split: str, number: int, size: int, frames: int) -> np.ndarray:
    """One clip of class ``cls`` (label-file index).

    Returns:
        ``uint8`` array ``(frames, size, size, 3)``.
    """
    rng = clip_rng(seed, cls, split, number)
    view = DriftingBackground(rng, size, frames, texture=_background)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    radius = rng.uniform(0.05, 0.07) * size

    # Static distractors: same shapes and palette as the object, so only motion tells them apart.
    scene = np.zeros((size, size, 3), np.float32)
    cover = np.zeros((size, size), np.float32)
    for _ in range(int(rng.integers(3, 6))):
        cx, cy = rng.uniform(0.1, 0.9, 2) * size
        r = radius * rng.uniform(0.8, 1.3)
        mask = _disc(yy, xx, cx, cy, r) if rng.random() < 0.5 else _bar(yy, xx, cx, cy, 2.4 * r, 0.9 * r, rng.uniform(0, 3.2))
        scene = scene * (1 - mask[..., None]) + mask[..., None] * _colour(rng)
        cover = np.maximum(cover, mask)
    colour, head = _colour(rng), _colour(rng)
    track = _track(rng, cls, size, frames)

    out = np.empty((frames, size, size, 3), np.uint8)
    for f in range(frames):
        frame = view.frame(f)
        frame = frame * (1 - cover[..., None]) + scene
        r = radius * track.scale[f]
        if cls in (8, 9):
            body = _bar(yy, xx, track.x[f], track.y[f], 3.2 * r, 1.0 * r, track.angle[f])
            tip_x = track.x[f] + 1.3 * r * math.cos(track.angle[f])
            tip_y = track.y[f] + 1.3 * r * math.sin(track.angle[f])
            tip = _disc(yy, xx, tip_x, tip_y, 0.55 * r)
        else:
            body, tip = _disc(yy, xx, track.x[f], track.y[f], r), None
        body = body * track.alpha[f]
        frame = frame * (1 - body[..., None]) + body[..., None] * colour
        if tip is not None:
            frame = frame * (1 - tip[..., None]) + tip[..., None] * head
        frame += rng.normal(0, 2.0, frame.shape)
        out[f] = np.clip(frame, 0, 255).astype(np.uint8)
    return out


# ---------------------------------------------------------------------------- writers
def _clip_list(config: SynthConfig) -> list[tuple[str, int, int, str]]:
    """``(split, class, number, id)`` for every clip.

    Train and val ids are a seeded permutation of 1..N (as before the test split existed, so
    those clips and their ids are unchanged); the test clips take the ids after them, in a
    permutation of their own.
    """
    seen = [(split, cls, n) for split, per in (("train", config.train_per_class), ("val", config.val_per_class))
            for cls in range(config.classes) for n in range(per)]
    held_out = [("test", cls, n) for cls in range(config.classes) for n in range(config.test_per_class)]
    ids = np.random.default_rng([config.seed, 999]).permutation(len(seen)) + 1
    test_ids = np.random.default_rng([config.seed, 998]).permutation(len(held_out)) + len(seen) + 1
    return [(split, cls, n, str(int(i))) for (split, cls, n), i in zip(seen + held_out, [*ids, *test_ids])]


def _write_frames(folder: Path, clip: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for f, frame in enumerate(clip):
        Image.fromarray(frame).save(folder / f"{f + 1:05d}.jpg", quality=90)


def write_video(path: Path, clip: np.ndarray, *, fps: int, codec: str) -> None:
    """Encode ``uint8 (T, H, W, 3)`` with PyAV (bit-exact flags for reproducible bytes)."""
    import av

    with av.open(str(path), "w", options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = clip.shape[2], clip.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.thread_count = 1
        stream.options = {"threads": "1"} | ({"crf": "18"} if codec == "libx264" else {})
        for frame in clip:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _video_codec(fmt: str) -> tuple[str, str, str | None]:
    """``(codec, extension, note)``: VP8 WebM for sthv2, H.264 MP4 for Diving48, with fallbacks."""
    import av

    def available(name: str) -> bool:
        try:
            av.codec.Codec(name, "w")
            return True
        except Exception:  # PyAV raises UnknownCodecError or ValueError depending on version
            return False

    if fmt == "sthv2":
        if available("libvpx"):
            return "libvpx", ".webm", None
        return "mpeg4", ".mp4", "this PyAV build has no VP8 encoder: wrote MPEG-4 .mp4 files instead of .webm"
    if available("libx264"):
        return "libx264", ".mp4", None
    return "mpeg4", ".mp4", None


def generate_raw(config: SynthConfig, raw: Path, *, progress: Callable[[], None] | None = None) -> dict:
    """Write the raw release of ``config`` into ``raw`` in ``config.format``'s official layout.

    Returns:
        Reader keyword arguments (e.g. the video extension) and an optional ``note``.
    """
    config.check()
    if raw.exists() and any(raw.iterdir()):
        if not (raw / MARKER).is_file():
            raise DataError(f"--raw {raw} is not empty and was not written by the generator; choose another --raw")
        shutil.rmtree(raw)  # ours (marker present, complete or not): regenerate from scratch
    raw.mkdir(parents=True, exist_ok=True)
    # The marker goes first, so a run interrupted half-way (Ctrl-C) leaves a folder the next
    # run recognises as its own; "complete" turns true only once every file is written.
    _write_marker(raw, config, complete=False)
    names = list(class_names(config.kind)[: config.classes])
    render = render_clip if config.kind == "motion" else relations.render_relation_clip
    clips = _clip_list(config)
    codec, ext, note = ("", "", None) if config.format == "sthv1" else _video_codec(config.format)
    media = raw / "rgb" if config.format == "diving48" else raw
    media.mkdir(exist_ok=True)
    for split, cls, n, vid in clips:
        clip = render(cls=cls, seed=config.seed, split=split, number=n, size=config.size, frames=config.frames)
        if config.format == "sthv1":
            _write_frames(raw / vid, clip)
        else:
            write_video(media / f"{vid}{ext}", clip, fps=config.fps, codec=codec)
        if progress:
            progress()
    by_split = {s: sorted((c for c in clips if c[0] == s), key=lambda c: int(c[3])) for s in SPLITS}
    _write_annotations(config.format, raw, names, by_split, config.frames)
    _write_marker(raw, config, complete=True)
    return {"extension": ext, "note": note}


def _write_marker(raw: Path, config: SynthConfig, *, complete: bool) -> None:
    atomic.write_json(raw / MARKER, {**config.record(), "complete": complete})


def _write_annotations(fmt: str, raw: Path, names: list[str], by_split: dict[str, list], frames: int) -> None:
    from .formats import diving48, sthv1, sthv2

    if fmt == "sthv1":
        (raw / sthv1.LABELS).write_text("".join(n + "\n" for n in names))
        files = {**sthv1.SPLIT_FILES, "test": sthv1.TEST_FILE}  # synth-sth's test list is labelled
        for split, fname in files.items():
            if by_split[split]:
                (raw / fname).write_text("".join(f"{vid};{names[cls]}\n" for _, cls, _, vid in by_split[split]))
    elif fmt == "sthv2":
        (raw / sthv2.LABELS).write_text(json.dumps({n: str(i) for i, n in enumerate(names)}, indent=1))
        for split in (s for s in SPLITS if by_split[s]):
            records = [{"id": vid, "label": names[cls].lower(), "template": names[cls].replace("something", "[something]"),
                        "placeholders": ["something"] * names[cls].count("something")}
                       for _, cls, _, vid in by_split[split]]
            (raw / sthv2.SPLIT_FILES[split]).write_text(json.dumps(records, indent=1))
    else:
        vocab = [[" ".join(p) for p in np.array_split(n.split(), 4)] for n in names]
        (raw / diving48.VOCAB).write_text(json.dumps(vocab))
        files = {**diving48.SPLIT_FILES, "test": diving48.HELDOUT_FILE}
        for split, fname in ((s, f) for s, f in files.items() if by_split[s]):
            records = [{"vid_name": vid, "label": cls, "start_frame": 0, "end_frame": frames - 1}
                       for _, cls, _, vid in by_split[split]]
            (raw / fname).write_text(json.dumps(records, indent=1))


def prepare_synthetic(
    config: SynthConfig,
    *,
    out: Path,
    raw: Path | None = None,
    force: bool = False,
    workers: int | None = 1,
    console=None,
):
    """Generate ``synth-sth`` into ``raw`` (default ``out/raw``) and prepare it into ``out``.

    The preparation is the same call the real releases go through
    (:func:`~aknet_cli.data.prepare.prepare_release` on the format's reader).

    Returns:
        ``(PrepareSummary, note)``; ``note`` says if a codec fallback was used.
    """
    from .formats import READERS
    from .prepare import check_output_folder, prepare_release, progress_bar

    config.check()
    out = Path(out)
    raw = Path(raw) if raw is not None else out / "raw"
    info = {"name": config.name, "synthetic": config.record()}
    identity = {"source_format": config.format, "root": str(raw.resolve()), "info": info}
    # Checked before generating: regenerating must not clobber another dataset's raw data.
    check_output_folder(out=out, root=raw, identity=identity, force=force)
    total = config.classes * (config.train_per_class + config.val_per_class + config.test_per_class)
    with progress_bar(console) as bar:
        task = bar.add_task(config.name, total=total)
        written = generate_raw(config, raw, progress=lambda: bar.advance(task))
    options = {"sthv1": {}, "sthv2": {"extension": written["extension"]}, "diving48": {}}[config.format]
    release = READERS[config.format](raw, **options)
    release.info = info
    release.reversed_pairs = reversed_pair_names(config.classes, config.kind)
    summary = prepare_release(release, out=out, workers=workers, force=force, console=console)
    return summary, written["note"]
