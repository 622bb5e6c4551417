"""Small trees of a user's own clips (issue 22): class folders and mmaction2 list files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image

from aknet_cli.data.synthetic import write_video
from data_fixtures import tiny_clip

CLASSES = ("wave", "jump", "Clap")  # sorted(): Clap, jump, wave (code points, as ImageFolder)


def write_user_video(path: Path, *, frames: int, tint: int) -> None:
    """A small MPEG-4 clip; ``tint`` makes every clip's bytes differ."""
    clip = tiny_clip(frames)
    clip[..., 1] = tint % 256
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(path, clip, fps=10, codec="mpeg4")


def write_named_frames(folder: Path, count: int, *, template: str = "img_{:05d}.jpg", start: int = 1,
                       tint: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        frame = np.full((16, 20, 3), (i * 30 + tint) % 256, np.uint8)
        Image.fromarray(frame).save(folder / template.format(start + i))


def make_video_tree(root: Path, per_class=(5, 4, 3), *, tint: int = 0) -> Path:
    """``root/<class>/<class>_<i>.mp4``; clip i of class k has 6 + i frames; another ``tint``
    gives other bytes (two trees of the same clips would be copies of each other)."""
    for k, (name, count) in enumerate(zip(CLASSES, per_class)):
        for i in range(count):
            write_user_video(root / name / f"{name}_{i}.mp4", frames=6 + i, tint=tint + 40 * k + i)
    return root


def make_frame_tree(root: Path, per_class=(3, 3, 3), **naming) -> Path:
    """``root/<class>/<class>_<i>/img_00001.jpg ...``; clip i has 4 + i frames."""
    for k, (name, count) in enumerate(zip(CLASSES, per_class)):
        for i in range(count):
            write_named_frames(root / name / f"{name}_{i}", 4 + i, tint=10 * k, **naming)
    return root


def write_list(path: Path, lines) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def tree_digest(root: Path) -> str:
    """Names, sizes and bytes of every file under ``root`` (the raw tree must stay untouched)."""
    digest = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        digest.update(p.relative_to(root).as_posix().encode())
        if p.is_file():
            digest.update(p.read_bytes())
    return digest.hexdigest()
