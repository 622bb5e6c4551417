"""CPU/GPU forward latency and parameters: a plain backbone vs AK-Net on it.

Usage: python benchmarks/bench_forward.py [--backbone tsm_resnet50] [--split res4] [--alpha 0.3]
       [--size 224] [--frames 8] [--repeats 5] [--device cpu]

Prints one row per model: parameters used at inference (the auxiliary head excluded),
median forward time over --repeats runs after one warm-up, batch 1, eval mode, no_grad.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from aknet_cli import build_aknet, create_backbone


def timed(model: torch.nn.Module, x: torch.Tensor, repeats: int) -> float:
    with torch.no_grad():
        model(x)  # warm-up: allocator, kernels
        if x.is_cuda:
            torch.cuda.synchronize()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            if x.is_cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def inference_params(model: torch.nn.Module) -> int:
    aux = getattr(model, "aux_head", None)
    skip = {id(p) for p in aux.parameters()} if aux is not None else set()
    return sum(p.numel() for p in model.parameters() if id(p) not in skip)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="tsm_resnet50")
    ap.add_argument("--split", default="res4")
    ap.add_argument("--alpha", type=float, default=0.3)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.manual_seed(0)
    models = {
        f"{args.backbone}": create_backbone(args.backbone, num_classes=174, num_segments=args.frames),
        f"AK-Net ({args.split}, α={args.alpha}, paper T)": build_aknet(
            args.backbone, split=args.split, alpha=args.alpha, num_segments=args.frames),
        f"AK-Net ({args.split}, α={args.alpha}, rank-64 T)": build_aknet(
            args.backbone, split=args.split, alpha=args.alpha, num_segments=args.frames, transform_rank=64),
    }
    fps = getattr(next(iter(models.values())), "frames_per_segment", 1)
    shape = (1, args.frames, 3, args.size, args.size) if fps == 1 else (1, args.frames, fps, 3, args.size, args.size)
    x = torch.randn(*shape, device=args.device)
    base = None
    print(f"device={args.device} threads={torch.get_num_threads()} input={shape}")
    for name, model in models.items():
        model = model.eval().to(args.device)
        sec = timed(model, x, args.repeats)
        base = base or sec
        print(f"{name:40s} params {inference_params(model) / 1e6:8.2f} M   forward {sec * 1000:8.1f} ms   ×{sec / base:.2f}")


if __name__ == "__main__":
    main()
