"""CUDA (NVDEC) decoding with torchcodec against its CPU decoding, at our datasets' clip sizes.

Writes a VP9 WebM (Sth-Sth V2's codec, 427x240 as its videos are) and an H.264 MP4 (Diving48's,
426x240), 48 frames each, then for each file, in interleaved repeats: opens a decoder and
decodes the 8 test-centre frames a loader samples, on the CPU and on CUDA (a fresh decoder per
clip, as a DataLoader pays it). Reports the median ms per clip on each device, their ratio,
how far the CUDA frames are from the CPU ones (NVDEC's colour conversion need not be
bit-identical: max and mean absolute difference in uint8 levels), and torchcodec's
``cpu_fallback`` status (whether "CUDA" quietly decoded on the CPU). torchcodec's docs warn
that small videos can be slower on the GPU: this measures whether ours are. Run on a machine
with a GPU and FFmpeg's libraries:

    python benchmarks/bench_cuda_decode.py [--repeats 20] [--json cuda_decode.json]

Without CUDA (or without torchcodec/FFmpeg) it prints why and exits 0: it skips cleanly.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CLIPS = {"vp9.webm": ("libvpx-vp9", 427, 240), "h264.mp4": ("libx264", 426, 240)}
FRAMES = 48
SEGMENTS = 8


def skip_reason() -> str | None:
    """Why this machine cannot run the check (``None``: it can)."""
    from aknet_cli.data.video_io import backend_installed

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

    from aknet_cli.data.sampling import sample_indices
    from aknet_cli.data.torchcodec_io import import_torchcodec

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="interleaved CPU/CUDA decodes per file (median)")
    parser.add_argument("--device", default="cuda", help="the GPU to decode on, e.g. cuda:1")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    reason = skip_reason()
    if reason:
        print(f"skipped: {reason}")
        if args.json:
            args.json.write_text(json.dumps({"skipped": reason}))
        return 0
    import torch

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="aknet-cuda-decode-"))
    results = []
    for name, (codec, width, height) in CLIPS.items():
        path = workdir / name
        if not path.is_file():
            write_clip(path, codec, width, height)
        results.append(compare(path, device=args.device, repeats=args.repeats))
    print(f"{torch.cuda.get_device_name(args.device)}; {SEGMENTS} frames per clip, fresh decoder per clip, "
          f"median of {args.repeats}")
    print("| file | CPU ms/clip | CUDA ms/clip | CPU/CUDA | max / mean abs diff | cpu_fallback |")
    print("|---|---:|---:|---:|---|---|")
    for r in results:
        print(f"| {r['file']} | {r['cpu_ms']:.1f} | {r['device_ms']:.1f} | {r['speedup']:.2f} | "
              f"{r['max_abs_diff']} / {r['mean_abs_diff']:.2f} | {r['cpu_fallback_status']} |")
    if args.json:
        args.json.write_text(json.dumps({"gpu": torch.cuda.get_device_name(args.device), "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
