"""Latency of AK-Net vs its backbone under three runtimes, and what AK-Net spends per GFLOP
after the split (issue #11's table).

Usage:
    python benchmarks/bench_runtimes.py [--backbone tsm_resnet50] [--splits res2,res3,res4]
        [--batch 1] [--runtimes eager,fused,onnxruntime] [--transform-rank 64] [--runs 7] [--json]

For each split and batch size three models are timed *interleaved* (one forward of each in
turn, ``--runs`` times, after a warm-up), so that load from other processes hits all of them
alike: the plain backbone, AK-Net, and ``F`` alone (the backbone's stages up to the split,
which both share). Reported per runtime:

* latency ratio AK-Net / backbone and F / backbone (F is the floor: AK-Net runs F in full);
* the same ratios in GFLOPs (fvcore, eval mode, one clip);
* after-split ms per GFLOP: ``(t_AK − t_F) / (G_AK − G_F)`` vs ``(t_bb − t_F) / (G_bb − G_F)``,
  i.e. AK-Net's keypoint path vs the backbone's own late stages on the same hardware;
  the issue's goal is a factor ≤ 1.1.

Runtimes: ``eager`` (``torch.inference_mode``), ``fused`` (BatchNorms folded,
:func:`aknet_cli.models.fuse_for_inference`), ``onnxruntime`` (each model exported to ONNX at
the fixed batch size and run by ONNX Runtime's CPU provider).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from aknet_cli import build_aknet, create_backbone
from aknet_cli.engine.export import example_clip, export_model, onnxruntime_latency, ort_session
from aknet_cli.flops import flop_analysis
from aknet_cli.models.fuse import fuse_for_inference


class SplitOnly(nn.Module):
    """``F`` of a backbone: its stages up to and including ``split``."""

    def __init__(self, backbone, split: str) -> None:
        super().__init__()
        self.backbone, self.split = backbone, split
        self.num_segments = backbone.num_segments
        self.frames_per_segment = backbone.frames_per_segment

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_until(x, self.split)


def gflops(model: nn.Module, clip: torch.Tensor) -> float:
    """fvcore GFLOPs of one clip, eval mode (the project's convention)."""
    with torch.no_grad():
        return flop_analysis(model.eval(), (clip[:1],)).total() / 1e9


def torch_timer(model: nn.Module, clip: torch.Tensor):
    def run() -> float:
        with torch.inference_mode():
            start = time.perf_counter()
            model(clip)
            return time.perf_counter() - start
    return run


def ort_timer(model: nn.Module, clip: torch.Tensor, folder: Path, name: str):
    path = folder / f"{name}.onnx"
    if isinstance(model, SplitOnly):  # export_model takes whole models; F is exported directly
        program = torch.export.export(model.eval(), (clip,))
        torch.onnx.export(program, (clip,), dynamo=True, verbose=False).save(path, external_data=False)
    else:
        export_model(model, path, format="onnx", batch=clip.shape[0], size=clip.shape[-1], fuse=True)
    session = ort_session(path, torch.get_num_threads())  # loaded once, timed many times
    return lambda: onnxruntime_latency(session, clip, runs=1, warmup=0)[0]


def interleaved(timers: dict, runs: int) -> dict[str, float]:
    """Median seconds per model; one call of each model per round, after one warm-up round."""
    for t in timers.values():
        t()
    samples: dict[str, list[float]] = {k: [] for k in timers}
    for _ in range(runs):
        for name, t in timers.items():
            samples[name].append(t())
    return {k: statistics.median(v) for k, v in samples.items()}


def bench_split(args, split: str, batch: int, folder: Path) -> list[dict]:
    torch.manual_seed(0)
    backbone = create_backbone(args.backbone, num_classes=174, num_segments=args.frames).eval()
    switches = {} if args.transform_rank is None else {"transform_rank": args.transform_rank}
    aknet = build_aknet(args.backbone, split=split, alpha=args.alpha, num_segments=args.frames, **switches).eval()
    f_only = SplitOnly(create_backbone(args.backbone, num_classes=174, num_segments=args.frames), split).eval()
    clip = example_clip(backbone, batch=batch, size=args.size)
    g = {"backbone": gflops(backbone, clip), "aknet": gflops(aknet, clip), "F": gflops(f_only, clip)}
    models = {"backbone": backbone, "aknet": aknet, "F": f_only}
    rows = []
    for runtime in args.runtimes:
        if runtime == "eager":
            timers = {k: torch_timer(m, clip) for k, m in models.items()}
        elif runtime == "fused":
            timers = {k: torch_timer(fuse_for_inference(m), clip) for k, m in models.items()}
        else:
            timers = {k: ort_timer(m, clip, folder, f"{k}-{split}-{batch}") for k, m in models.items()}
        t = interleaved(timers, args.runs)
        after_ak = (t["aknet"] - t["F"]) * 1000 / batch / (g["aknet"] - g["F"])
        after_bb = (t["backbone"] - t["F"]) * 1000 / batch / (g["backbone"] - g["F"])
        rows.append({
            "split": split, "batch": batch, "runtime": runtime,
            "ms": {k: v * 1000 for k, v in t.items()},
            "latency_ratio": t["aknet"] / t["backbone"], "F_latency_ratio": t["F"] / t["backbone"],
            "flops_ratio": g["aknet"] / g["backbone"], "F_flops_ratio": g["F"] / g["backbone"],
            "gflops": g,
            "after_split_ms_per_gflop": {"aknet": after_ak, "backbone": after_bb, "factor": after_ak / after_bb},
        })
    return rows


def profile_after_split(args, split: str, batch: int) -> dict:
    """Per-part milliseconds and GFLOPs after the split: AK-Net's parts (fused, inference mode)
    beside the backbone's own stages, each round timing both, medians over ``--runs``."""
    from aknet_cli import flops
    from aknet_cli.models.backbone import STAGE_NAMES

    torch.manual_seed(0)
    switches = {} if args.transform_rank is None else {"transform_rank": args.transform_rank}
    ak = fuse_for_inference(build_aknet(args.backbone, split=split, alpha=args.alpha, num_segments=args.frames, **switches))
    bb = fuse_for_inference(create_backbone(args.backbone, num_classes=174, num_segments=args.frames))
    clip = example_clip(bb, batch=batch, size=args.size)
    t = args.frames
    late = STAGE_NAMES[STAGE_NAMES.index(split) + 1:]

    def one_round() -> dict[str, float]:
        r: dict[str, float] = {}

        def tick(name, fn, *a):
            start = time.perf_counter()
            out = fn(*a)
            r[name] = time.perf_counter() - start
            return out

        feats = ak.features(clip)
        c, h, w = feats.shape[1:]
        heat = tick("heatmap", ak.heatmap, feats, t)
        pts, coords = tick("selection", ak.selector, feats.reshape(-1, t, c, h, w), heat)
        if ak.position is not None:
            pts = tick("transform net", ak.position, pts, coords)
        for name, stage in ak.point_net.items():
            pts = tick(f"{name} (1-D)", stage, pts)
        ctx = tick("GAP context", lambda f: f.mean(dim=(2, 3)).reshape(-1, t, c).mean(dim=1), feats)
        tick("head", ak.head, pts, ctx)
        x = bb.forward_until(clip, split)
        for name in late:
            x = tick(f"backbone {name}", bb.stages[name], x)
        tick("backbone head", bb.forward_head, x)
        return r

    with torch.inference_mode():
        one_round()
        rounds = [one_round() for _ in range(args.runs)]
    ms = {k: statistics.median(r[k] for r in rounds) * 1000 / batch for k in rounds[0]}
    g_ak = {p.name: p.flops / 1e9 for p in flops.count(args.backbone, split=split, alpha=args.alpha,
                                                        frames=args.frames, size=args.size, options=switches).parts}
    g_bb = {p.name: p.flops / 1e9 for p in flops.count(args.backbone, frames=args.frames, size=args.size).parts}
    rows = {}
    for name, value in ms.items():
        key = name.removeprefix("backbone ")
        g = (g_bb if name.startswith("backbone") else g_ak).get(key, 0.0)
        rows[name] = {"ms_per_clip": value, "gflops": g, "ms_per_gflop": value / g if g > 1e-3 else None}
    return {"split": split, "batch": batch, "parts": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="tsm_resnet50")
    ap.add_argument("--splits", default="res2,res3,res4")
    ap.add_argument("--batch", default="1", help="comma-separated batch sizes")
    ap.add_argument("--runtimes", default="eager,fused,onnxruntime")
    ap.add_argument("--alpha", type=float, default=0.3)
    ap.add_argument("--transform-rank", type=int, default=None, help="low-rank transform net (default: the paper's)")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--threads", type=int, default=None, help="torch (and ONNX Runtime) threads; default: all cores")
    ap.add_argument("--profile", action="store_true", help="per-part after-split profile (fused) instead")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    args.runtimes = args.runtimes.split(",")
    if args.profile:
        out = [profile_after_split(args, s, int(b)) for b in args.batch.split(",") for s in args.splits.split(",")]
        if args.json:
            print(json.dumps(out, indent=2))
        for prof in out if not args.json else []:
            print(f"{prof['split']} batch {prof['batch']}: part, ms per clip, GFLOPs, ms/GFLOP")
            for name, row in prof["parts"].items():
                rate = "" if row["ms_per_gflop"] is None else f"{row['ms_per_gflop']:.1f}"
                print(f"  {name:22s} {row['ms_per_clip']:8.1f} {row['gflops']:7.3f} {rate:>8s}")
        return
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for batch in (int(b) for b in args.batch.split(",")):
            for split in args.splits.split(","):
                for row in bench_split(args, split, batch, Path(folder)):
                    rows.append(row)
                    if not args.json:
                        a = row["after_split_ms_per_gflop"]
                        print(f"{split} b{batch} {row['runtime']:11s} latency {row['latency_ratio']:.2f} "
                              f"(F {row['F_latency_ratio']:.2f})  FLOPs {row['flops_ratio']:.2f} "
                              f"(F {row['F_flops_ratio']:.2f})  after split {a['aknet']:.1f} vs {a['backbone']:.1f} "
                              f"ms/GFLOP (x{a['factor']:.2f})  ms {json.dumps({k: round(v, 1) for k, v in row['ms'].items()})}",
                              flush=True)
    if args.json:
        print(json.dumps({"threads": torch.get_num_threads(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
