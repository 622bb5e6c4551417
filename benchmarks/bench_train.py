"""Training throughput (clips/s) of a backbone and AK-Net on it: forward, eq. 16 / CE, backward, SGD step.

The models are timed interleaved, step by step, so machine noise hits them alike; data
loading is excluded (random clips), so this is the model's ceiling, not a full epoch's rate
(`aknet train` reports that, with the share of time spent waiting for data).

    python benchmarks/bench_train.py --backbone tsm_resnet50 --batch 2 --steps 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from aknet_cli import build_aknet, create_backbone


def build(name: str, backbone: str, classes: int, frames: int, rank: int | None):
    if name == "backbone":
        return create_backbone(backbone, num_classes=classes, num_segments=frames)
    return build_aknet(backbone, split="res4", alpha=0.3, num_classes=classes, num_segments=frames,
                       transform_rank=rank)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="tsm_resnet50")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--classes", type=int, default=174)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()
    torch.manual_seed(0)
    variants = {"backbone": None, "aknet (paper's T)": None, "aknet (rank-64 T)": 64}
    models = {name: build("backbone" if name == "backbone" else "aknet", args.backbone, args.classes, args.frames, rank)
              for name, rank in variants.items()}
    fps = models["backbone"].frames_per_segment
    shape = (args.batch, args.frames, 3, args.size, args.size) if fps == 1 else \
        (args.batch, args.frames, fps, 3, args.size, args.size)
    clips, target = torch.randn(shape), torch.randint(0, args.classes, (args.batch,))
    optims = {n: torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9) for n, m in models.items()}
    times: dict[str, list[float]] = {n: [] for n in models}
    for step in range(args.warmup + args.steps):
        for name, model in models.items():
            model.train()
            tic = time.perf_counter()
            out = model(clips)
            loss = torch.nn.functional.cross_entropy(out, target) if isinstance(out, torch.Tensor) else out.loss(target)
            optims[name].zero_grad(set_to_none=True)
            loss.backward()
            optims[name].step()
            if step >= args.warmup:
                times[name].append(time.perf_counter() - tic)
    rows = []
    base = statistics.median(times["backbone"])
    for name, ts in times.items():
        med = statistics.median(ts)
        rows.append({"model": f"{args.backbone} {name}", "batch": args.batch, "seconds_per_step": med,
                     "clips_per_s": args.batch / med, "time_ratio": med / base, "threads": torch.get_num_threads()})
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
