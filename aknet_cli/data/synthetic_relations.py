"""``synth-relations``: synthetic clips whose class is a relation between two objects.

synth-sth (:mod:`.synthetic`, ``--kind motion``) has one object acting alone, and on it a bag
of res4 points in no order is as accurate as the 2-D network (docs/ablation.md): the layout
of the points is worth nothing there. Something-Something's classes are mostly about objects
*relative to each other*, and so are these. Two objects, ``A`` (the mover) and ``B`` (the
reference), of the same appearance statistics (disc or square, random colour and size), plus
two static distractors drawn from the same statistics, on the drifting textured background of
synth-sth.

What each class holds fixed, so that the relation is the only cue:
- **A's own motion** is one distribution across the single-mover classes: a straight path along
  one of the four axis directions (±8°), of random length, at constant speed over the clip
  (push stops A at contact).
  The classes differ in where ``B`` is relative to that path: ahead of it (towards), beside it
  (past), on it (in front / behind), at its end (on top).
- **The two-mover classes** move both objects the same way (each a straight path of the same
  length distribution, in opposite directions), and differ in whether the two paths lie on one
  line (closer / apart) or on two parallel lines (past each other).
- **Distance**: in towards, away, past, closer, apart and past each other, the two objects never
  come closer than a *far* gap (edge to edge, ~10-15% of the frame: about one res4 cell at
  112² input) and the nearest distance has one distribution in all six, so these classes are
  not told apart by what any one place of the frame holds but by where things are relative to
  each other (:data:`LAYOUT_CLASSES`).
- **Distractors** keep a wider gap than that from every position of A and B, so the relation is
  never with a distractor.
- **Time-reversed pairs** (:data:`REVERSED_PAIRS`): the second class of a pair is the first one
  played backwards (``B``'s and ``A``'s tracks reversed), so the set of frames of a clip has the
  same distribution in both and a frame-averaging model (TSN) cannot separate them.

Everything derives from ``(seed, class, split, number)``; the writers and the prepared layouts
are those of :mod:`.synthetic`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .synthetic_render import DriftingBackground, bar, clip_rng, colour, disc

#: Class order = the labels file order. The first six classes are three time-reversed pairs.
CLASS_NAMES = (
    "Moving something towards something",
    "Moving something away from something",
    "Moving something and something closer to each other",
    "Moving something and something away from each other",
    "Putting something on top of something",
    "Taking something off something",
    "Moving something past something",
    "Moving something and something past each other",
    "Passing something in front of something",
    "Passing something behind something",
    "Pushing something with something so that it moves",
)
#: Label-file index pairs whose clips are exact time-reversals of each other.
REVERSED_PAIRS = ((0, 1), (2, 3), (4, 5))
#: Classes told apart only by where the objects are relative to each other at a distance:
#: towards / away / past (where B lies relative to A's heading) and closer / apart / past each
#: other (whether the two paths are one line or two). The others are decided where the objects
#: touch or overlap (on top, in front, behind, push): any one place can tell them.
LAYOUT_CLASSES = (0, 1, 2, 3, 6, 7)

# Geometry, in units of the frame side.
RADIUS = (0.038, 0.052)  # object radius (a square's half side)
PATH = (0.30, 0.40)  # A's path length in the single-mover classes
HALF_PATH = (0.15, 0.20)  # each object's path length in the two-mover classes
FAR_GAP = (0.10, 0.14)  # nearest edge-to-edge gap in the layout classes (between circumscribed circles)
DISTRACTOR_GAP = 0.22  # distractors' least edge-to-edge gap to A and B (well beyond FAR_GAP)
HEADING_JITTER = math.radians(8)  # around the four axis directions
MARGIN = 0.1  # A and B stay this far inside the frame (a 96² training crop of 112² keeps them)
DISTRACTORS = 2


@dataclass
class Scene:
    """What one clip shows: per-object centre tracks, radii and shapes, and the drawing order.

    Object 0 is ``A``, object 1 is ``B``, the rest are distractors (static).
    """

    tracks: list[np.ndarray]  # (frames, 2) centre (x, y) in pixels
    radii: list[float]
    shapes: list[str]  # "disc" or "square"
    angles: list[float]  # a square's rotation
    order: list[int]  # back to front


def _u(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(*bounds))


def _line(start: np.ndarray, end: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Constant-speed motion from ``start`` to ``end`` at times ``t`` in [0, 1]: ``(len(t), 2)``."""
    return start[None, :] + np.clip(t, 0.0, 1.0)[:, None] * (end - start)[None, :]


def _support(obj: tuple[float, str, float], theta: float) -> float:
    """How far the object reaches from its centre in direction ``theta`` (frame units)."""
    radius, shape, angle = obj
    if shape == "disc":
        return radius
    return radius * (abs(math.cos(theta - angle)) + abs(math.sin(theta - angle)))


def _relation_tracks(rng: np.random.Generator, base: int, t: np.ndarray, obj_a: tuple, obj_b: tuple,
                     ) -> tuple[np.ndarray, np.ndarray, bool]:
    """A's and B's tracks of the first class of ``base``'s pair (or of ``base`` itself), in
    frame units around an arbitrary origin, and whether B is drawn in front of A."""
    # One of the four axis directions, jittered: the relation, not the heading, is what varies
    # (v2 drew any direction and TDN-R18 learned 23% in 8 epochs; docs/ablation.md, the versions).
    theta = 0.5 * math.pi * int(rng.integers(4)) + rng.uniform(-HEADING_JITTER, HEADING_JITTER)
    u = np.array([math.cos(theta), math.sin(theta)])  # A's heading
    n = np.array([-u[1], u[0]])  # its left-hand normal
    side = rng.choice([-1.0, 1.0])
    ra, rb = _extent(obj_a[0], obj_a[1]), _extent(obj_b[0], obj_b[1])
    far = ra + rb + _u(rng, FAR_GAP)  # centre distance at the nearest approach
    touch = _support(obj_a, theta) + _support(obj_b, theta + math.pi)  # centre distance when touching along u
    still = lambda p: np.repeat(p[None, :], len(t), axis=0)  # noqa: E731
    if base in (0, 4, 6, 8, 9):  # A alone moves along a straight path
        path = _u(rng, PATH)
        a = _line(np.zeros(2), path * u, t)
        end, mid = path * u, 0.5 * path * u
        if base == 0:  # B ahead, beyond the end of A's path
            b = end + far * u + n * rng.uniform(-0.02, 0.02)
        elif base == 4:  # B where A stops: A ends on top of it
            b = end + rng.uniform(-0.25, 0.25, 2) * min(ra, rb)
        elif base == 6:  # B beside the middle of the path, as far as "towards" keeps it
            b = mid + side * far * n + u * rng.uniform(-0.04, 0.04)
        else:  # 8, 9: B on the path, A crosses it
            b = mid + n * rng.uniform(-0.25, 0.25) * rb
        return a, still(b), base == 9
    if base in (2, 7):  # both move, in opposite directions, by the same length distribution
        half_a, half_b = _u(rng, HALF_PATH), _u(rng, HALF_PATH)
        if base == 2:  # on one line, towards each other, stopping `far` apart
            a = _line(np.zeros(2), half_a * u, t)
            b_end = half_a * u + far * u
            b = _line(b_end + half_b * u, b_end, t)
        else:  # on two parallel lines `far` apart, crossing half-way
            a = _line(-0.5 * half_a * u, 0.5 * half_a * u, t)
            b = _line(side * far * n + 0.5 * half_b * u, side * far * n - 0.5 * half_b * u, t)
        return a, b, False
    # 10: A moves until it touches B, then B moves on in A's direction at half A's speed, and A stops.
    path = _u(rng, PATH)
    contact = t[int(round(rng.uniform(0.45, 0.6) * (len(t) - 1)))]  # on a frame: the touch is seen
    a = _line(np.zeros(2), path * u, t / contact)
    b_start = (path + touch) * u
    b = _line(b_start, b_start + 0.5 * path * (1 - contact) / contact * u, (t - contact) / (1 - contact))
    return a, b, False


#: Each class's base class (whose geometry it uses) and whether it is that class reversed.
_BASE = {0: (0, False), 1: (0, True), 2: (2, False), 3: (2, True), 4: (4, False), 5: (4, True), 6: (6, False),
         7: (7, False), 8: (8, False), 9: (9, False), 10: (10, False)}


def _fit_in_frame(rng: np.random.Generator, tracks: list[np.ndarray], extents: list[float], size: int,
                  ) -> list[np.ndarray] | None:
    """Translate the tracks (frame units) to a random place where every object stays
    :data:`MARGIN` inside the frame; ``None`` if they cannot fit. Returns pixels."""
    lo = np.min([tr.min(0) - e for tr, e in zip(tracks, extents)], axis=0)
    hi = np.max([tr.max(0) + e for tr, e in zip(tracks, extents)], axis=0)
    room_lo, room_hi = MARGIN - lo, (1 - MARGIN) - hi
    if np.any(room_lo > room_hi):
        return None
    shift = rng.uniform(room_lo, room_hi)
    return [(tr + shift) * size for tr in tracks]


def _place_distractors(rng: np.random.Generator, tracks: list[np.ndarray], extents: list[float],
                       size: int) -> list[tuple[np.ndarray, tuple[float, str, float]]] | None:
    """:data:`DISTRACTORS` static objects at least :data:`DISTRACTOR_GAP` (edge to edge) from
    every position of A and B and not overlapping each other: ``(centre in pixels, object)``, or
    ``None`` if there is no room."""
    placed: list[tuple[np.ndarray, tuple[float, str, float]]] = []
    points = np.concatenate(tracks)
    point_extent = np.concatenate([np.full(len(tr), e) for tr, e in zip(tracks, extents)])
    for _ in range(DISTRACTORS):
        for _attempt in range(80):
            obj = _object(rng)
            e = _extent(obj[0], obj[1]) * size
            c = rng.uniform(e, size - e, 2)
            if (np.hypot(*(points - c).T) - point_extent - e).min() < DISTRACTOR_GAP * size:
                continue
            if any(np.hypot(*(c - p)) < e + _extent(o[0], o[1]) * size + 0.02 * size for p, o in placed):
                continue
            placed.append((c, obj))
            break
        else:
            return None
    return placed


def _object(rng: np.random.Generator) -> tuple[float, str, float]:
    """One object's radius (frame units), shape and rotation."""
    return _u(rng, RADIUS), ("disc" if rng.random() < 0.5 else "square"), float(rng.uniform(0, math.pi / 2))


def _extent(radius: float, shape: str) -> float:
    """The radius of the circle around the object: gaps are kept between these circles, so a
    square's corner never closes a gap the geometry keeps open."""
    return radius * (math.sqrt(2) if shape == "square" else 1.0)


def relation_scene(rng: np.random.Generator, cls: int, size: int, frames: int) -> Scene:
    """The objects of one clip of class ``cls``, in pixels (draws from ``rng``)."""
    base, reverse = _BASE[cls]
    t = np.linspace(0.0, 1.0, frames)
    while True:  # rejection: a geometry that fits in the frame with room for the distractors
        objects = [_object(rng), _object(rng)]
        extents = [_extent(r, shape) for r, shape, _ in objects]
        a, b, b_front = _relation_tracks(rng, base, t, *objects)
        fitted = _fit_in_frame(rng, [a, b], extents, size)
        if fitted is None:
            continue
        distractors = _place_distractors(rng, fitted, [e * size for e in extents], size)
        if distractors is not None:
            break
    if reverse:
        fitted = [tr[::-1].copy() for tr in fitted]
    objects += [obj for _, obj in distractors]
    tracks = fitted + [np.repeat(c[None, :], frames, axis=0) for c, _ in distractors]
    order = list(range(2, len(tracks))) + ([0, 1] if b_front else [1, 0])
    return Scene(tracks=tracks, radii=[r * size for r, _, _ in objects], shapes=[o[1] for o in objects],
                 angles=[o[2] for o in objects], order=order)


def _coverage(shape: str, yy: np.ndarray, xx: np.ndarray, centre: np.ndarray, radius: float,
              angle: float) -> np.ndarray:
    if shape == "disc":
        return disc(yy, xx, centre[0], centre[1], radius)
    return bar(yy, xx, centre[0], centre[1], 2 * radius, 2 * radius, angle)


def render_relation_clip(*, cls: int, seed: int, split: str, number: int, size: int, frames: int,
                         with_masks: bool = False):
    """One clip of relation class ``cls`` (label-file index).

    Returns:
        ``uint8 (frames, size, size, 3)``; with ``with_masks`` also ``float32 (frames, objects,
        size, size)``: each object's drawn coverage in [0, 1] before occlusion (object 0 is A,
        1 is B), so that tests can check the geometry from what was drawn.
    """
    rng = clip_rng(seed, cls, split, number)
    view = DriftingBackground(rng, size, frames)
    scene = relation_scene(rng, cls, size, frames)
    colours = [colour(rng) for _ in scene.tracks]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    out = np.empty((frames, size, size, 3), np.uint8)
    masks = np.zeros((frames, len(scene.tracks), size, size), np.float32) if with_masks else None
    for f in range(frames):
        frame = view.frame(f)
        for k in scene.order:
            cover = _coverage(scene.shapes[k], yy, xx, scene.tracks[k][f], scene.radii[k], scene.angles[k])
            frame = frame * (1 - cover[..., None]) + cover[..., None] * colours[k]
            if masks is not None:
                masks[f, k] = cover
        frame += rng.normal(0, 2.0, frame.shape)
        out[f] = np.clip(frame, 0, 255).astype(np.uint8)
    return (out, masks) if with_masks else out
