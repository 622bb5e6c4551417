"""Where AK-Net's time goes after the split, operator by operator, and what a multiply-add
costs in the kernels it uses against the backbone's own (issue #11's profile).

`aknet bench` says *how much* slower per GFLOP AK-Net's layers after the split are than the
backbone's layers they replace; this says *why*:

1. A PyTorch profile of the path after ``F`` alone (heatmap, selection, transform, the 1-D
   subnet, head), on the split features of one random clip batch: self CPU time per operator,
   grouped into arithmetic (convolutions, matrix products) and the rest (copies, gathers,
   pools, reductions, activations).
2. The rate, in GMAC/s, of the convolutions on each side, by kernel kind: the backbone's 3×3
   and 1×1 2-D convolutions after the split, and AK-Net's 3-tap and 1×1 1-D convolutions on
   its points, each conv timed alone on the input it gets in a real forward. Strided layers
   (the first block of a stage) are their own kind; AK-Net's carry the area rule's average
   (:class:`~aknet_cli.models.kernels_1d.AreaConv1d`), timed with them and counted as no MACs.

Usage:
    python benchmarks/profile_after_split.py [--backbone tsm_resnet50] [--split res4]
        [--batch 1] [--fuse] [--transform-rank 64|none] [--runs 9] [--top 15]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict

import torch
from torch import nn

from aknet_cli.analysis import flops
from aknet_cli.models import fuse_for_inference
from aknet_cli.engine.aknet_options import parse_rank

PRODUCTS = ("aten::addmm", "aten::mm", "aten::bmm", "aten::baddbmm", "aten::matmul", "aten::linear", "aten::einsum")


def is_arithmetic(op: str) -> bool:
    """Convolutions (oneDNN's or torch's own) and matrix products: where the FLOPs are."""
    return "conv" in op or op in PRODUCTS


def median_ms(fn, runs: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def profile_ops(model: nn.Module, feats: torch.Tensor, runs: int) -> tuple[float, list[tuple[str, float, int]]]:
    """Median wall ms of the after-split path, and (op, self ms per forward, calls per forward)."""
    from torch.profiler import ProfilerActivity, profile

    wall = median_ms(lambda: model.after_split(feats), runs)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(runs):
            model.after_split(feats)
    ops = [(e.key, e.self_cpu_time_total / 1e3 / runs, e.count // runs) for e in prof.key_averages()]
    return wall, sorted(ops, key=lambda o: -o[1])


def captured_convs(modules: list[nn.Module], run) -> list[tuple[nn.Module, torch.Tensor]]:
    """Each conv of ``modules`` with the input it received during ``run()``."""
    seen: list[tuple[nn.Module, torch.Tensor]] = []
    handles = [m.register_forward_hook(lambda mod, inp, _out: seen.append((mod, inp[0].clone())))
               for m in modules]
    try:
        run()
    finally:
        for h in handles:
            h.remove()
    return seen


def kernel_rates(convs: list[tuple[nn.Module, torch.Tensor]], runs: int) -> dict[str, tuple[float, float]]:
    """``{kind: (GMAC, GMAC/s)}`` over the convs, kind ``1×1`` or ``k×k`` / ``k-tap``, each conv
    timed alone on its own input (median of ``runs``)."""
    acc: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for conv, x in convs:
        out = conv(x)
        macs = out.numel() * conv.weight[0].numel()
        pointwise = all(k == 1 for k in conv.kernel_size)
        kind = "1×1" if pointwise else ("3-tap" if isinstance(conv, nn.Conv1d) else "3×3")
        if getattr(conv, "pool", 1) > 1 or any(st > 1 for st in conv.stride):
            # a strided block's first layer; AreaConv1d also averages (the area rule), timed with it
            kind += " strided" + (" + average" if getattr(conv, "pool", 1) > 1 else "")
        acc[kind][0] += macs / 1e9
        acc[kind][1] += median_ms(lambda: conv(x), runs) / 1e3
    return {kind: (gmac, gmac / sec) for kind, (gmac, sec) in acc.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backbone", default="tsm_resnet50")
    ap.add_argument("--split", default="res4", choices=("res2", "res3", "res4"))
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--transform-rank", default="64", help="an int, or none for the paper's full matrix")
    ap.add_argument("--fuse", action="store_true", help="fold the BatchNorms first (the deployment path)")
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--no-kernels", action="store_true", help="skip the per-shape conv rates")
    args = ap.parse_args()

    torch.manual_seed(0)
    model = flops.build_counted_model(args.backbone, split=args.split, alpha=0.3, frames=args.frames, num_classes=174,
                              options={"transform_rank": parse_rank(args.transform_rank)}).eval()
    if args.fuse:
        model = fuse_for_inference(model)
    x = flops.clip_input(model, args.frames, args.size, batch=args.batch)
    with torch.inference_mode():
        feats = model.features(x)
        wall, ops = profile_ops(model, feats, args.runs)
        total = sum(ms for _, ms, _ in ops)
        groups: dict[str, float] = defaultdict(float)
        for name, ms, _ in ops:
            groups["arithmetic (conv, mm, bmm)" if is_arithmetic(name) else "the rest"] += ms
        print(f"{args.backbone}, split {args.split}, batch {args.batch}, rank {args.transform_rank}, "
              f"{'fused' if args.fuse else 'unfused'}, {torch.get_num_threads()} threads")
        print(f"after-split path: {wall:.1f} ms wall (median of {args.runs}); profiled self time {total:.1f} ms")
        for group, ms in groups.items():
            print(f"  {group:<28s} {ms:8.2f} ms  {100 * ms / total:5.1f}%")
        print(f"top {args.top} operators (self ms per forward, calls per forward):")
        for name, ms, calls in ops[: args.top]:
            print(f"  {name:<32s} {ms:8.2f} ms  {calls:4d}x")
        if not args.no_kernels:
            plain = flops.build_counted_model(args.backbone, split="none", alpha=0.3, frames=args.frames,
                                      num_classes=174).eval()
            if args.fuse:
                plain = fuse_for_inference(plain)
            names = list(plain.stages)
            late = [m for n in names[names.index(args.split) + 1:] for m in plain.stages[n].modules()
                    if isinstance(m, nn.Conv2d)]
            ours = [m for m in model.point_net.modules() if isinstance(m, nn.Conv1d)]
            sides = {
                "backbone's stages after the split (2-D)": captured_convs(late, lambda: plain(x)),
                "AK-Net's 1-D subnet": captured_convs(ours, lambda: model.after_split(feats)),
            }
            print("convolution rates, each conv timed alone on its own input (GMAC, GMAC/s):")
            for side, convs in sides.items():
                rates = kernel_rates(convs, args.runs)
                total = sum(g for g, _ in rates.values())
                text = ", ".join(f"{kind} {g:.2f} GMAC at {r:.0f}/s" for kind, (g, r) in sorted(rates.items()))
                overall = total / sum(g / r for g, r in rates.values())
                print(f"  {side:<42s} {text}; all {total:.2f} GMAC at {overall:.0f}/s")


if __name__ == "__main__":
    main()
