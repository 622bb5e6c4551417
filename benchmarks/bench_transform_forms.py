"""Latency and parameters of AK-Net variants beside their backbone, timed interleaved in one run.

``aknet bench`` times one AK-Net configuration per split against its backbone and F; this puts
several configurations of one split side by side (the transform net's forms and ranks, no
position module, ...), so that their differences are measured under the same machine noise:
every round runs the backbone, F alone and every variant once, in a rotating order, and each
variant's latency ratio to the backbone is the median of its per-round ratios, with quartiles.

    python benchmarks/bench_transform_forms.py --backbone tdn_resnet18 --size 64 --classes 12 \\
        --variant uv64=transform=uv,transform_rank=64 --variant core64=transform=core,transform_rank=64 \\
        --batch 1,8 --runs 30 --out benchmarks/results/transform_forms_demo.json

A variant is ``NAME=KEY=VALUE,KEY=VALUE`` of AK-Net switches (``--set``'s keys). Parameters
are counted as the deployed model holds them: the auxiliary head (training only) apart.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from aknet_cli._machine import cpu_description
from aknet_cli.analysis.bench import _Until, part_breakdown, ratio_summary, time_interleaved
from aknet_cli.analysis.flops import build_counted_model, clip_input, count
from aknet_cli.models import fuse_for_inference
from aknet_cli.engine.aknet_options import parse_options

DEFAULT_VARIANTS = ("uv64=transform=uv,transform_rank=64", "core64=transform=core,transform_rank=64")


def parse_variant(text: str) -> tuple[str, dict]:
    name, _, options = text.partition("=")
    pairs = [p for p in options.split(",") if p]
    return name, parse_options(pairs)


def parameters(model: torch.nn.Module) -> dict[str, float]:
    """Millions of parameters: all, and without the auxiliary head (what inference holds)."""
    total = sum(p.numel() for p in model.parameters())
    aux = sum(p.numel() for p in model.aux_head.parameters()) if hasattr(model, "aux_head") else 0
    return {"params_m": total / 1e6, "inference_params_m": (total - aux) / 1e6}


def build(args, variants: dict[str, dict]) -> dict[str, torch.nn.Module]:
    common = dict(alpha=args.alpha, frames=args.frames, num_classes=args.classes)
    models = {"backbone": build_counted_model(args.backbone, split="none", **common)}
    for name, options in variants.items():
        models[name] = build_counted_model(args.backbone, split=args.split, options=options, **common)
    models = {k: m.eval() for k, m in models.items()}
    if args.fuse:
        models = {k: fuse_for_inference(m) for k, m in models.items()}
    models["F"] = _Until(models["backbone"], args.split).eval()
    return models


def time_batch(args, models, batch: int) -> dict:
    x = clip_input(models["backbone"], args.frames, args.size, batch=batch)
    fns = {name: (lambda m: lambda: m(x))(m) for name, m in models.items()}
    times = time_interleaved(fns, runs=args.runs, warmup=args.warmup, device=torch.device("cpu"))
    rows = {}
    for name in models:
        rows[name] = {"ms_median": 1e3 * statistics.median(times[name]), "ratio": ratio_summary(times[name], times["backbone"])}
        if name not in ("backbone", "F") and args.breakdown:
            rows[name]["parts_ms"] = part_breakdown(models[name], x, runs=max(5, args.runs // 3), warmup=1,
                                                    device=torch.device("cpu"))["parts_ms"]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="tsm_resnet50")
    parser.add_argument("--split", default="res4")
    parser.add_argument("--alpha", type=float, default=0.3)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--classes", type=int, default=174)
    parser.add_argument("--batch", default="1")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--fuse", action="store_true", help="BatchNorms (and area averages) folded, every model alike")
    parser.add_argument("--no-breakdown", dest="breakdown", action="store_false")
    parser.add_argument("--variant", action="append", default=[], help="NAME=KEY=VALUE,KEY=VALUE (repeatable)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    variants = dict(parse_variant(v) for v in (args.variant or DEFAULT_VARIANTS))
    models = build(args, variants)
    common = dict(split=args.split, alpha=args.alpha, frames=args.frames, size=args.size, num_classes=args.classes)
    gflops = {"backbone": count(args.backbone, **{**common, "split": "none"}).gflops}
    gflops.update({name: count(args.backbone, options=opts, **common).gflops for name, opts in variants.items()})
    result = {"cpu": cpu_description(), "threads": torch.get_num_threads(), "torch": torch.__version__,
              "args": {k: v for k, v in vars(args).items() if k != "out"}, "variants": variants, "gflops": gflops,
              "params": {k: parameters(m) for k, m in models.items() if k != "F"}, "batches": {}}
    for batch in (int(b) for b in args.batch.split(",")):
        rows = time_batch(args, models, batch)
        result["batches"][batch] = rows
        print(f"\nbatch {batch} ({args.backbone}, {args.split}, {args.frames}×{args.size}², "
              f"{'fused' if args.fuse else 'eager'}; {result['cpu']}, {result['threads']} threads)")
        print(f"{'model':>10s} {'ms':>9s} {'ratio (p25-p75)':>22s} {'GFLOPs':>8s} {'params M (inference)':>22s}")
        for name, row in rows.items():
            r = row["ratio"]
            params = result["params"].get(name)
            p = f"{params['params_m']:.2f} ({params['inference_params_m']:.2f})" if params else ""
            print(f"{name:>10s} {row['ms_median']:9.2f} {r['median']:8.3f} ({r['p25']:.3f}-{r['p75']:.3f}) "
                  f"{gflops.get(name, float('nan')):8.3f} {p:>22s}  {row.get('parts_ms', '')}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1, default=str) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
