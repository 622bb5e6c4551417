"""``aknet convert-1d``: stage-1 backbone checkpoint → AK-Net checkpoint (eq. 11)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ._common import console, print_json


def convert_1d_command(
    checkpoint: Path = typer.Option(..., "--checkpoint", "-c", help="Stage-1 backbone checkpoint: aknet, official TSM/TDN, or mmaction2 1.x TSM/TSN."),
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the AK-Net checkpoint."),
    split: str = typer.Option("res4", help="Stage after which keypoints are selected: res2, res3 or res4."),
    alpha: float = typer.Option(0.3, help="Point sampling rate α in (0, 1]: N = round(α·T·H·W)."),
    tau: Optional[str] = typer.Option(None, help="Time weight τ of the ranking key x + y + τ·t (eq. 7): 'auto' (h + w − 1, each frame's points stay together) or a number [default: auto]."),
    position: Optional[str] = typer.Option(None, help="Position information: transform, embedding or none [default: transform]."),
    transform_rank: Optional[str] = typer.Option(None, help="Rank r of the transform net (A = I + Q G Pᵀ, the default 'core' form; --set transform=uv for A = I + UVᵀ); 'none' for the paper's full (C+3)² matrix [default: auto: 64 (core: at most C+3; uv: only where 128 < C+3)]."),
    set_: list[str] = typer.Option([], "--set", help="Any other AK-Net option KEY=VALUE, repeatable: ranking, sparsity_reg, concat_gap, stride_mode, reduction, dropout, ..."),
    backbone: Optional[str] = typer.Option(None, help="Checked against the checkpoint (another code base's is read from its weights)."),
    num_classes: Optional[int] = typer.Option(None, help="Checked against the checkpoint's classifier."),
    num_segments: Optional[int] = typer.Option(None, help="Frames per clip, for a checkpoint that records it neither in its metadata nor in its file name."),
    label_order: Optional[str] = typer.Option(None, "--label-order", help="file or sorted: the class order of another code base's checkpoint, kept in the AK-Net checkpoint."),
    calibrate: Optional[Path] = typer.Option(None, "--calibrate", help="Prepared dataset: re-estimate the 1-D BatchNorm statistics on its training clips before saving."),
    batches: int = typer.Option(20, "--batches", help="Batches for --calibrate (cumulative average)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Clips per batch for --calibrate."),
    crop: int = typer.Option(224, "--crop", help="Crop side in pixels for --calibrate (resize side crop·256/224)."),
    force: bool = typer.Option(False, "--force", help="Replace --out if it exists."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Turn a trained 2-D backbone (stage 1) into AK-Net (stage 2).

    F (the stages up to --split) is copied; every Conv2d/BatchNorm2d of the remaining stages is
    compacted into Conv1d/BatchNorm1d (kernel summed over one spatial axis); temporal modules
    are dropped (no frames remain after selection); the heatmap, transform net and auxiliary
    head are new. Example:

        aknet convert-1d --checkpoint work_dirs/tsm/best.pt --split res4 --alpha 0.3 --out aknet.pt

    An ablation variant (Table IV row without ranking), stored in the checkpoint's config:

        aknet convert-1d -c stage1.pt --split res2 --set ranking=false --set sparsity_reg=false -o abl.pt

    The 1-D BatchNorm layers keep the 2-D statistics, but the selected points are not a random
    sample of positions; re-estimate them on real clips (K training-mode forwards, no gradient):

        aknet convert-1d -c stage1.pt --split res4 --calibrate data/sthv1 --batches 20 -o aknet.pt

    A published checkpoint (its format, backbone and frame count are read from the file):

        aknet convert-1d -c tsm_imagenet-pretrained-r50_8xb16-1x1x8-50e_sthv2-rgb.pth --split res4 -o aknet.pt
    """
    from .._atomic import check_output_file
    from ..convert.stage2 import convert_checkpoint
    from ..engine.aknet_options import command_options

    check_output_file(out, option="--out")
    options = command_options(set_, dedicated={"tau": tau, "position": position, "transform_rank": transform_rank})
    report = convert_checkpoint(
        checkpoint, out, split=split, alpha=alpha, backbone=backbone, num_classes=num_classes,
        num_segments=num_segments, overwrite=force, calibrate=calibrate, calibrate_batches=batches,
        calibrate_batch_size=batch_size, calibrate_crop=crop, label_order=label_order, **options,
    )
    if json_out:
        print_json(report)
        return
    table = Table(title=f"convert-1d: {report['backbone']} split after {split}, α={alpha}")
    table.add_column("what")
    table.add_column("detail")
    table.add_column("count / params", justify="right")
    for part, n in report["copied"].items():
        table.add_row("copied", part, f"{n:,}")
    for what, n in report["converted"].items():
        action, kind = what.split(" ", 1)
        table.add_row(action, kind, str(n))
    for part, n in report["initialised_from_stage1"].items():
        table.add_row("from stage 1", part, f"{n:,}")
    for part, n in report["new"].items():
        table.add_row("new", part, f"{n:,}")
    console.print(table)
    cal = report.get("bn_calibration")
    if cal:
        lo, hi = cal["var_ratio_range"]
        console.print(f"recalibrated {len(cal['layers'])} BatchNorm1d layers on {cal['clips']} clips "
                      f"({cal['batches']} batches): new/old running variance {lo:.2f}-{hi:.2f}x per layer")
    console.print(f"read {report['input']}: {report['input_format']}"
                  + "".join(f"; {note}" for note in report["notes"]), highlight=False)
    console.print(f"wrote {report['output']} ({report['params_m']:.1f} M parameters)")
