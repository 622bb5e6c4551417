"""Issue #9 item 5: how far the 1-D subnet's BatchNorm statistics move when recalibrated.

A stand-in for a stage-1 checkpoint: TSM-ResNet-18 whose 2-D BatchNorm statistics are
estimated (cumulative average, no training) on synth-sth clips; it is converted at each split
and the 1-D statistics are recalibrated on other clips of the same data with
:func:`aknet_cli.convert.calibrate.recalibrate_bn`. Prints the per-layer ratio of the new to
the copied running variance and the mean shift in units of the copied standard deviation.

    .venv/bin/aknet prepare synthetic --out /tmp/synth_model
    .venv/bin/python studies/bn_recalibration_shift.py --data /tmp/synth_model
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics

import torch

from aknet_cli._registry import create_backbone
from aknet_cli.data import build_dataloader
from aknet_cli.models.aknet import AKNet, AKNetConfig


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--batches", type=int, default=4)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--crop", type=int, default=112)
    args = p.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    net = create_backbone("tsm_resnet18", num_classes=12, num_segments=8)
    loader = build_dataloader(args.data, "train", num_segments=8, batch_size=args.batch, train=True,
                              crop=args.crop, resize=args.crop, seed=0)
    batches = [x for _, (x, _y) in zip(range(2 * args.batches), loader)]
    # Stage-1 stand-in: 2-D statistics over every position of these clips.
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    net.train()
    with torch.no_grad():
        for x in batches[: args.batches]:
            net(x)
    net.eval()
    from aknet_cli.convert.calibrate import recalibrate_bn

    out = {}
    for split in ("res2", "res3", "res4"):
        model = AKNet(copy.deepcopy(net), AKNetConfig(split=split, position="none"))
        report = recalibrate_bn(model, batches[args.batches:], num_batches=args.batches)
        layers = report["layers"]
        out[split] = {
            "layers": len(layers),
            "var_ratio_mean_range": [round(v, 3) for v in report["var_ratio_range"]],
            "var_ratio_median": round(statistics.median(v["var_ratio_mean"] for v in layers.values()), 3),
            "mean_shift_range": [round(min(v["mean_shift"] for v in layers.values()), 3),
                                 round(max(v["mean_shift"] for v in layers.values()), 3)],
            "lowest_var_ratio": sorted(((round(v["var_ratio_mean"], 3), k) for k, v in layers.items()))[:4],
        }
        print(split, json.dumps(out[split]), flush=True)


if __name__ == "__main__":
    main()
