"""torchcodec's CUDA (NVDEC) decoding against its CPU decoding on one file: time per clip on
each device, interleaved, and how far the CUDA frames are from the CPU ones
(``benchmarks/bench_cuda_decode.py`` runs it at our datasets' clip sizes).

torch, PyAV and torchcodec are imported inside the functions: the benchmark must be able to say
why it skips on a machine without them.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

CLIPS = {"vp9.webm": ("libvpx-vp9", 427, 240), "h264.mp4": ("libx264", 426, 240)}
FRAMES = 48
SEGMENTS = 8


def skip_reason() -> str | None:
    """Why this machine cannot run the check (``None``: it can)."""
    from ..data.video_io import backend_installed

    if not backend_installed("torchcodec"):
        return "torchcodec or FFmpeg's shared libraries are missing (pip install 'aknet[torchcodec]'; apt-get install ffmpeg)"
    import torch

    if not torch.cuda.is_available():
        return "no CUDA device"
    return None


def write_clip(path: Path, codec: str, width: int, height: int) -> None:
    """A moving gradient with noise: every frame differs, as in real video."""
    import av

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=12)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for f in range(FRAMES):
            base = ((xx + 4 * f) % 256)[..., None] * np.array([1.0, 0.5, 0.25]) + ((yy + f) % 64)[..., None]
            frame = np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def decode_once(path: Path, device: str):
    """``(frames uint8 (8, 3, H, W) on the CPU, seconds, cpu_fallback status)`` for one clip."""
    import torch

    from ..data.sampling import sample_indices
    from ..data.torchcodec_io import import_torchcodec

    decoders = import_torchcodec()
    indices = sample_indices(FRAMES, SEGMENTS, train=False).reshape(-1).tolist()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    decoder = decoders.VideoDecoder(str(path), seek_mode="exact", num_ffmpeg_threads=1, device=device)
    frames = decoder.get_frames_at(indices).data
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    fallback = getattr(decoder, "cpu_fallback", None)
    return frames.cpu(), seconds, fallback


def compare(path: Path, *, device: str, repeats: int) -> dict:
    """CPU against ``device`` on one file: timings interleaved, frames compared once."""
    decode_once(path, "cpu"), decode_once(path, device)  # warm-up: library loading, CUDA context
    cpu_s, dev_s = [], []
    for _ in range(repeats):
        reference, seconds, _ = decode_once(path, "cpu")
        cpu_s.append(seconds)
        frames, seconds, fallback = decode_once(path, device)
        dev_s.append(seconds)
    difference = (frames.int() - reference.int()).abs()
    cpu_ms, dev_ms = 1000 * statistics.median(cpu_s), 1000 * statistics.median(dev_s)
    return {
        "file": path.name, "device": device, "cpu_ms": cpu_ms, "device_ms": dev_ms, "speedup": cpu_ms / dev_ms,
        "max_abs_diff": int(difference.max()), "mean_abs_diff": float(difference.float().mean()),
        "cpu_fallback": bool(fallback) if fallback is not None else None,
        "cpu_fallback_status": str(fallback) if fallback is not None else "not reported by this torchcodec",
    }
