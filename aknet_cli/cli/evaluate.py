"""``aknet eval``: a thin wrapper over :func:`aknet_cli.engine.evaluate.evaluate`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ._common import console, print_json


def eval_command(
    checkpoint: Path = typer.Argument(..., help="Checkpoint: aknet stage 1 or stage 2 (best.pt/last.pt), or a state dict of the official TSM/TDN code."),
    data: Path = typer.Option(..., "--data", help="Prepared dataset folder (from `aknet prepare`)."),
    split: str = typer.Option("val", "--split", help="Split to evaluate: val or test (test lists may be unlabelled: predictions only)."),
    views: str = typer.Option("1x1", "--views", help="CLIPSxCROPS: 1x1 = one centre crop (the paper), 2x3 = 2 clips × 3 full-resolution crops (TSM/TDN accurate)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Videos per batch."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder [default: beside the checkpoint, eval_SPLIT_VIEWS]."),
    compare: Optional[Path] = typer.Option(None, "--compare", help="A second checkpoint, evaluated the same way and plotted beside the first per class."),
    device: str = typer.Option("auto", "--device", help="cpu, cuda or auto."),
    workers: int = typer.Option(2, "--workers", help="Data loader worker processes."),
    backend: Optional[str] = typer.Option(None, "--backend", help="Video decoder: torchcodec, decord or pyav [default: the fastest exact one installed: torchcodec where FFmpeg's libraries are found, else decord].", show_default=False),
    amp: bool = typer.Option(False, "--amp/--no-amp", help="Mixed precision on CUDA."),
    backbone: Optional[str] = typer.Option(None, "--backbone", help="For a plain state dict (official TSM/TDN code): the backbone name."),
    num_segments: Optional[int] = typer.Option(None, "--num-segments", help="For a plain state dict: frames per clip T."),
    fuse: bool = typer.Option(False, "--fuse", help="Fold every BatchNorm into its conv first (the deployment path of `aknet export`)."),
    json_out: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Evaluate a checkpoint: top-1, top-5, mean class accuracy, GFLOPs, per-class plots.

    Scores of several views are averaged after softmax. Writes metrics.json, per_class.csv,
    per_class.png (Fig. 4 style), confusion.png and predictions.csv. Examples:

        aknet eval work_dirs/tsm_r50_sthv1_stage1/best.pt --data data/sthv1

        aknet eval aknet.pt --data data/sthv1 --views 2x3 --compare tsm.pt --json

        aknet eval TSM_something_RGB_resnet50_shift8_blockres_avg_segment8_e45.pth --data data/sthv1 --backbone tsm_resnet50 --num-segments 8
    """
    from ..engine.distributed import teardown
    from ..engine.evaluate import evaluate

    try:
        result = evaluate(checkpoint, data, split=split, views=views, batch_size=batch_size, out=out,
                          compare=compare, device=device, num_workers=workers, backend=backend, amp=amp,
                          backbone=backbone, num_segments=num_segments, fuse=fuse, progress=not json_out)
    finally:  # under torchrun: leave the process group cleanly (NCCL warns otherwise)
        teardown()
    if json_out:
        print_json(result)
        return
    rows = [result] + ([result["compare"]] if "compare" in result else [])
    table = Table(title=f"{data} / {split}, {result['views']} views ({result['num_views']} per video)")
    for col in ("checkpoint", "top-1", "top-5", "mean class", "reversed pairs", "GFLOPs/view", "GFLOPs"):
        table.add_column(col, justify="left" if col == "checkpoint" else "right")
    fmt = lambda v: "—" if v is None else f"{v:.2f}"  # noqa: E731
    for r in rows:
        table.add_row(r["checkpoint"], fmt(r["top1"]), fmt(r["top5"]), fmt(r["mean_class_acc"]),
                      fmt(r.get("reversed_pairs_top1")), f"{r['gflops_per_view']:.2f}", f"{r['gflops']:.2f}")
    console.print(table)
    console.print(f"{result['num_clips']} clips; files in {result['out']}", highlight=False)
