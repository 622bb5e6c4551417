"""Issue #34 item 7: what PIL's bilinear resize (TSM's and TDN's ``GroupScale``) instead of
torchvision's antialiased tensor resize does to a trained model's scores.

The checkpoint is scored on a split under its protocol twice, once with each resize method, at
``--resize``/``--crop`` (square, as the synthetic data is; pick sizes at which the two kernels
differ: from 112² frames, 104 and 132 do, 128 does not). Prints top-1 under each, the clips whose
top-1 changes, and the largest and mean change of a class probability. docs/evaluation.md
(protocols) holds the numbers measured with a TDN-R18 trained on synth-relations:

    .venv/bin/python studies/pil_vs_tensor_resize.py --checkpoint runs/relv2/tdn_s0/best.pt \\
        --data runs/rel_v3 --resize 104 --crop 96
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import torch

from aknet_cli.data import load_manifest, protocols
from aknet_cli.engine import evaluate
from aknet_cli.engine.config import DataConfig
from aknet_cli.engine.distributed import setup
from aknet_cli.checkpoints.reader import read_checkpoint
from aknet_cli.engine.protocol import default_protocol


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--resize", type=int, required=True)
    p.add_argument("--crop", type=int, required=True)
    args = p.parse_args()
    torch.set_num_threads(1)
    ckpt = read_checkpoint(args.checkpoint)
    name = default_protocol(ckpt.protocol, ckpt.config)
    ckpt.config["data"] = {"resize": args.resize, "crop": args.crop, "resize_mode": "square", "protocol": name}
    manifest, ctx = load_manifest(args.data), setup("cpu")
    cfg = DataConfig(dataset=args.data, backend=None, num_workers=1, pin_memory=False)
    scored = {}
    for method in ("pil", "antialias"):
        # The transforms look their protocol up by name, in this process and in the loader's workers.
        rule = protocols.PROTOCOLS[name] = dataclasses.replace(protocols.PROTOCOLS[name], resize=method)
        out = evaluate._score_model(ckpt, manifest, cfg, ctx, split=args.split, clips=1, crops=1, batch_size=16,
                                    progress=False, amp=False, fuse=False, protocol=rule)
        scored[method] = out["scores"], out["labels"]
    (a, labels), (b, _) = scored["pil"], scored["antialias"]
    diff = (a - b).abs()
    print(json.dumps({
        "protocol": name, "resize": args.resize, "crop": args.crop, "clips": len(labels),
        "top1_pil": round(100 * float((a.argmax(1) == labels).float().mean()), 2),
        "top1_tensor": round(100 * float((b.argmax(1) == labels).float().mean()), 2),
        "top1_changed_clips": int((a.argmax(1) != b.argmax(1)).sum()),
        "max_abs_prob_diff": float(diff.max()), "mean_abs_prob_diff": float(diff.mean()),
    }))


if __name__ == "__main__":
    main()
