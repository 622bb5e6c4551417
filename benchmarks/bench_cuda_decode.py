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
import sys
import tempfile
from pathlib import Path

from aknet_cli.analysis.cuda_decoding import CLIPS, SEGMENTS, compare, skip_reason, write_clip


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
