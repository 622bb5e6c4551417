"""Issue #9 item 3: threshold-centred vs min-max heatmap normalisation, trained on synth-sth.

A short from-scratch training of AK-Net on TDN-ResNet-18 (64² crops, 8 segments, split res3,
α = 0.3) for each normalisation and seed, with identical data order, initialisation and
steps. Reports, on the validation split: top-1 of the final and the auxiliary head, and what
the sparsity term is for — the margin at the top-N boundary, ``(h_(N) − h_(N+1)) / std(h)``
per clip (median), the share of points with ``H > 0.9`` (α = 0.3 are selected), and ``r_e``.

Prepare the data first (once)::

    .venv/bin/aknet prepare synthetic --out /tmp/synth_model

Run (about 5 CPU-minutes with the defaults: 2 seeds × 2 normalisations × 15 steps of 4 clips,
24 validation clips)::

    .venv/bin/python studies/heat_norm_synth.py --data /tmp/synth_model --json out.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time

import torch

from aknet_cli.data import build_dataloader
from aknet_cli.models.aknet import build_aknet


def margins(model, clips: torch.Tensor) -> tuple[list[float], list[float], list[float]]:
    """Per clip: boundary gap in std units, share of H > 0.9, r_e (eval-mode features)."""
    t = model.num_segments
    feats = model.features(clips)
    raw = model.heatmap.scores(feats, t)
    heat = model.heatmap.normalize(raw)
    gaps, high, reg = [], [], []
    for r, hm in zip(raw.flatten(1), heat.flatten(1)):
        n = int(math.floor(model.config.alpha * r.numel() + 0.5))
        desc = r.sort(descending=True).values
        gaps.append(float((desc[n - 1] - desc[n]) / r.std(unbiased=False).clamp_min(1e-12)))
        high.append(float((hm > 0.9).float().mean()))
        reg.append(float((4 * hm * (1 - hm)).mean()))
    return gaps, high, reg


def run(norm: str, seed: int, args) -> dict:
    torch.manual_seed(seed)
    model = build_aknet("tdn_resnet18", split=args.split, alpha=0.3, num_classes=12, num_segments=8,
                        heat_norm=norm, transform_rank=8)
    common = dict(num_segments=8, frames_per_segment=5, resize=args.crop + 8, crop=args.crop)
    train = build_dataloader(args.data, "train", batch_size=args.batch, train=True, seed=seed, **common)
    val = build_dataloader(args.data, "val", batch_size=24, train=False, **common)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps, pct_start=0.15)
    model.train()
    history, step, t0, c0 = [], 0, time.time(), time.process_time()
    reg0 = None
    while step < args.steps:
        for clips, labels in train:
            out = model(clips)
            terms = out.loss_terms(labels)
            if reg0 is None:
                reg0 = terms["sparsity"].item()
            opt.zero_grad()
            terms["loss"].backward()
            opt.step()
            sched.step()
            history.append({k: v.item() for k, v in terms.items()})
            step += 1
            if step >= args.steps:
                break
    train_s, train_cpu = time.time() - t0, time.process_time() - c0
    model.eval()
    correct = correct_aux = total = 0
    gaps, high, reg = [], [], []
    with torch.no_grad():
        for i, (clips, labels) in enumerate(val):
            if i * 24 >= args.val_clips:
                break
            logits = model(clips)
            feats = model.features(clips)
            aux = model.aux_head(feats, model.heatmap(feats, model.num_segments))  # eq. 14, eval mode
            correct += int((logits.argmax(1) == labels).sum())
            correct_aux += int((aux.argmax(1) == labels).sum())
            total += len(labels)
            g, hi, r = margins(model, clips)
            gaps += g
            high += hi
            reg += r
    last = history[-max(1, args.steps // 5):]
    return {
        "norm": norm, "seed": seed, "steps": args.steps, "train_seconds": round(train_s, 1),
        "train_cpu_seconds": round(train_cpu, 1), "val_clips": total,
        "r_e_at_step_0": round(reg0, 4),
        "train_last20pct": {k: round(statistics.mean(h[k] for h in last), 4) for k in last[0]},
        "val_top1": round(100 * correct / total, 2), "val_aux_top1": round(100 * correct_aux / total, 2),
        "val_boundary_gap_median_std": round(statistics.median(gaps), 4),
        "val_share_H_above_0.9": round(statistics.mean(high), 4),
        "val_r_e": round(statistics.mean(reg), 4),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--steps", type=int, default=15)
    p.add_argument("--val-clips", type=int, default=24)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--crop", type=int, default=64)
    p.add_argument("--split", default="res3")
    p.add_argument("--lr", type=float, default=0.02)
    p.add_argument("--json")
    args = p.parse_args()
    torch.set_num_threads(2)
    results = []
    for seed in args.seeds:
        for norm in ("threshold", "minmax"):
            r = run(norm, seed, args)
            print(json.dumps(r), flush=True)
            results.append(r)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"settings": vars(args), "runs": results}, f, indent=1)


if __name__ == "__main__":
    main()
