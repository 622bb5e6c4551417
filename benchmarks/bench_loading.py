"""Loading throughput: clips/s of 8x224x224 clips from MP4 and from JPEG folders.

Builds two synthetic datasets (256x256 frames, 32 frames per clip) under a temporary folder,
then times a DataLoader over each with 0, 1 and 2 workers (batch size 1, training
transform: resize 256 + random crop 224). Run:

    python benchmarks/bench_loading.py [--clips 24] [--workdir /tmp/aknet-bench]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from aknet_cli.data import build_dataloader
from aknet_cli.data.synthetic import SynthConfig, prepare_synthetic


def _throughput(dataset_dir: Path, *, workers: int, backend: str, clips: int) -> float:
    loader = build_dataloader(dataset_dir, "train", num_segments=8, batch_size=1, train=True,
                              num_workers=workers, backend=backend, seed=0)
    iterator = iter(loader)
    next(iterator)  # worker start-up is not throughput
    start, seen = time.perf_counter(), 0
    for _ in range(clips):
        try:
            next(iterator)
        except StopIteration:
            iterator = iter(loader)
            next(iterator)
        seen += 1
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=24, help="clips timed per setting")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="aknet-bench-"))
    base = dict(classes=2, train_per_class=8, val_per_class=1, size=256, frames=32, seed=0)
    sets = {"jpeg": ("sthv1", "decord"), "mp4 (decord)": ("diving48", "decord"), "mp4 (pyav)": ("diving48", "pyav")}
    built: dict[str, Path] = {}
    for name, (fmt, backend) in sets.items():
        out = workdir / fmt
        if fmt not in built:
            prepare_synthetic(SynthConfig(**base, format=fmt), out=out)
            built[fmt] = out
        for workers in (0, 1, 2):
            rate = _throughput(built[fmt], workers=workers, backend=backend, clips=args.clips)
            print(f"{name:14s} workers={workers}: {rate:6.1f} clips/s  (8x224x224, batch 1)")


if __name__ == "__main__":
    main()
