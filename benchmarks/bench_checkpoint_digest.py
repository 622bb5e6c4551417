"""What the SHA-256 of a checkpoint's tensors costs: save and load of a ResNet-50 state dict.

Times, interleaved round by round so that other load on the machine hits every variant alike:
``torch.save`` alone, :func:`save_checkpoint` (which adds the digest), ``torch.load`` alone,
:func:`read_checkpoint_file` (which checks it), and the digest by itself. Reports medians and the
ratios with and without the digest. Run:

    python benchmarks/bench_checkpoint_digest.py [--rounds 7] [--workdir /tmp]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torchvision

from aknet_cli.checkpoints.format import read_checkpoint_file, payload_sha256, save_checkpoint


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    state = torchvision.models.resnet50().state_dict()
    megabytes = sum(t.numel() * t.element_size() for t in state.values()) / 2**20
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        plain, checked = Path(tmp) / "plain.pt", Path(tmp) / "checked.pt"
        variants = {
            "torch.save": lambda: torch.save({"state_dict": state}, plain),
            "save_checkpoint": lambda: save_checkpoint(checked, kind="backbone", config={}, state_dict=state),
            "torch.load": lambda: torch.load(plain, map_location="cpu", weights_only=True),
            "read_checkpoint_file": lambda: read_checkpoint_file(checked),
            "sha256 alone": lambda: payload_sha256(state),
        }
        for fn in variants.values():  # warm the page cache and the allocator
            fn()
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.rounds):
            for name, fn in variants.items():
                times[name].append(_timed(fn))
    median = {name: statistics.median(t) for name, t in times.items()}
    report = {
        "state_dict_mb": round(megabytes, 1),
        "rounds": args.rounds,
        "median_s": {k: round(v, 4) for k, v in median.items()},
        "save_ratio": round(median["save_checkpoint"] / median["torch.save"], 3),
        "load_ratio": round(median["read_checkpoint_file"] / median["torch.load"], 3),
        "sha256_mb_per_s": round(megabytes / median["sha256 alone"], 1),
        "loadavg": os.getloadavg(),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
