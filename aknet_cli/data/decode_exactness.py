"""Whether a video backend returns the frames it is asked for: every frame a loader would sample
from a prepared dataset, decoded by the backend, against an independent reference (PyAV decoding
the whole file in order). Seeking decoders can return a neighbouring frame instead (decord
#91's kind of bug); ``benchmarks/bench_loading.py`` reports this beside each backend's speed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .manifest import load_manifest
from .sampling import sample_indices
from .video_io import read_video

SEGMENTS = 8  # as bench_loading's DataLoader samples: the frames checked are those it reads


def every_frame(path: Path) -> np.ndarray:
    """Independent reference: PyAV decoding the whole file in order, ``(N, H, W, 3)``."""
    import av

    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def exactness(dataset: Path, backend: str, *, seed: int = 0) -> dict:
    """Frames sampled from every clip of ``dataset`` by ``backend`` against the PyAV reference.

    Returns:
        ``{"frames": checked, "wrong": differing frames, "failed": clips that did not decode}``.
    """
    manifest = load_manifest(dataset)
    rng = np.random.default_rng(seed)
    checked = wrong = failed = 0
    for split in ("train", "val"):
        table = manifest.split_table(split)
        for rel, count in zip(table["path"], table["num_frames"]):
            path = Path(manifest.data["media_root"]) / rel
            reference = every_frame(path)
            indices = np.concatenate([sample_indices(int(count), SEGMENTS, train=False),
                                      sample_indices(int(count), SEGMENTS, train=True, rng=rng)]).reshape(-1)
            try:
                got = read_video(path, indices.tolist(), backend=backend).permute(0, 2, 3, 1).numpy()
            except Exception:  # a backend that cannot decode the file at all is not exact on it
                failed += 1
                continue
            checked += len(indices)
            wrong += sum(not np.array_equal(got[k], reference[i]) for k, i in enumerate(indices))
    return {"frames": checked, "wrong": int(wrong), "failed": failed}
