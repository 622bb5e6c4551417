"""``aknet eval``: a thin wrapper over :func:`aknet_cli.engine.evaluate.evaluate`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ._common import console, print_json


def eval_command(
    checkpoint: Path = typer.Argument(..., help="Checkpoint: aknet stage 1 or stage 2 (best.pt/last.pt), official TSM/TDN, or mmaction2 1.x TSM/TSN (the format is recognised and named)."),
    data: Path = typer.Option(..., "--data", help="Prepared dataset folder (from `aknet prepare`)."),
    split: str = typer.Option("val", "--split", help="Split to evaluate: val or test (test lists may be unlabelled: predictions only)."),
    views: str = typer.Option("1x1", "--views", help="CLIPSxCROPS: 1x1 = one centre crop (the paper), 1x3 = 3 full-resolution crops (TDN's 8x3x1), 2x3 = 2 clips × 3 full-resolution crops (TSM's accurate)."),
    protocol: Optional[str] = typer.Option(None, "--protocol", help="tsm, tdn, mmaction2 or aknet: frame sampling, resize, crop offsets and view averaging as that code base tests [default: the checkpoint's: official TSM/TDN/mmaction2 their own, aknet the one it trained with].", show_default=False),
    batch_size: int = typer.Option(8, "--batch-size", help="Videos per batch."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder [default: beside the checkpoint, eval_SPLIT_VIEWS]."),
    compare: Optional[Path] = typer.Option(None, "--compare", help="A second checkpoint, evaluated the same way and plotted beside the first per class."),
    device: str = typer.Option("auto", "--device", help="cpu, cuda or auto."),
    workers: int = typer.Option(2, "--workers", help="Data loader worker processes."),
    backend: Optional[str] = typer.Option(None, "--backend", help="Video decoder: torchcodec, decord or pyav [default: the fastest exact one installed: torchcodec where FFmpeg's libraries are found, else decord].", show_default=False),
    amp: bool = typer.Option(False, "--amp/--no-amp", help="Mixed precision on CUDA."),
    backbone: Optional[str] = typer.Option(None, "--backbone", help="Checked against the checkpoint (another code base's is read from its weights)."),
    num_segments: Optional[int] = typer.Option(None, "--num-segments", help="Frames per clip T, for a checkpoint that records it neither in its metadata nor in its file name."),
    label_order: Optional[str] = typer.Option(None, "--label-order", help="file or sorted: the class order of another code base's checkpoint [default: mmaction2 file; TSM/TDN sorted on Sth-Sth]."),
    fuse: bool = typer.Option(False, "--fuse", help="Fold every BatchNorm into its conv first (the deployment path of `aknet export`)."),
    json_out: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Evaluate a checkpoint: top-1, top-5, mean class accuracy, GFLOPs, per-class plots.

    Clips are sampled, resized and cropped, and several views' scores averaged, under the
    checkpoint's protocol (TSM's test_models.py, TDN's test scripts, mmaction2's test_pipeline,
    or the one an aknet checkpoint trained with), or --protocol. Writes metrics.json (the
    protocol and the official file and function of each of its rules), per_class.csv,
    per_class.png (Fig. 4 style), confusion.png and predictions.csv. Examples:

        aknet eval work_dirs/tsm_r50_sthv1_stage1/best.pt --data data/sthv1

        aknet eval aknet.pt --data data/sthv1 --views 2x3 --compare tsm.pt --json

        aknet eval TSM_something_RGB_resnet50_shift8_blockres_avg_segment8_e45.pth --data data/sthv1

        aknet eval tsm_imagenet-pretrained-r50_8xb16-1x1x8-50e_sthv2-rgb.pth --data data/sthv2_file_order
    """
    from ..engine.distributed import teardown
    from ..engine.evaluate import evaluate

    try:
        result = evaluate(checkpoint, data, split=split, views=views, batch_size=batch_size, out=out,
                          compare=compare, device=device, num_workers=workers, backend=backend, amp=amp,
                          backbone=backbone, num_segments=num_segments, fuse=fuse, progress=not json_out,
                          label_order=label_order, protocol=protocol)
    finally:  # under torchrun: leave the process group cleanly (NCCL warns otherwise)
        teardown()
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun rank 0 reports for every rank
        return
    if json_out:
        print_json(result)
        return
    console.print(result_table(result, title=f"{data} / {split}, {result['views']} views "
                                             f"({result['num_views']} per video)"))
    for r in [result] + ([result["compare"]] if "compare" in result else []):
        console.print(f"{r['name']} ({r['checkpoint']}): {r['checkpoint_format']}"
                      + "".join(f"; {note}" for note in r["checkpoint_notes"]), highlight=False, soft_wrap=True)
        console.print(protocol_line(r), highlight=False, soft_wrap=True)
    if "paired" in result:
        console.print(paired_line(result["paired"]), highlight=False, soft_wrap=True)
    console.print(f"{result['num_clips']} clips; top-1 intervals: {result['ci_method']}; files in {result['out']}",
                  highlight=False, soft_wrap=True)


def _fmt(value) -> str:
    return "—" if value is None else f"{value:.2f}"


def result_table(result: dict, *, title: str) -> Table:
    """The models of an evaluation, one row each, top-1 with its 95% interval."""
    rows = [result] + ([result["compare"]] if "compare" in result else [])
    table = Table(title=title)
    for col in ("model", "top-1", "95% CI", "top-5", "mean class", "reversed pairs", "GFLOPs/view", "GFLOPs"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for r in rows:
        ci = r.get("top1_ci")
        table.add_row(r["name"], _fmt(r["top1"]), f"{ci[0]:.1f}–{ci[1]:.1f}" if ci else "—", _fmt(r["top5"]),
                      _fmt(r["mean_class_acc"]), _fmt(r.get("reversed_pairs_top1")), f"{r['gflops_per_view']:.2f}",
                      f"{r['gflops']:.2f}")
    return table


def protocol_line(result: dict) -> str:
    """``protocol tsm: TSM (…), mean logit over the views; …``: which protocol scored a model."""
    rules = result["protocol_rules"]
    return (f"protocol {result['protocol']}: {rules['code']}, {result['scores']}"
            + "".join(f"; {note}" for note in rules["notes"]) + " (the official source of each rule: metrics.json)")


def paired_line(paired: dict) -> str:
    """``a − b: +1.50 points (95% CI …, paired bootstrap over N clips); McNemar …``."""
    low, high = paired["ci"]
    return (f"{paired['a']} − {paired['b']}: {paired['difference']:+.2f} points (95% CI {low:+.2f} to {high:+.2f}, "
            f"paired bootstrap over {paired['clips']} clips); McNemar exact p = {paired['mcnemar_p']:.3g} "
            f"({paired['a_only']} clips right only for {paired['a']}, {paired['b_only']} only for {paired['b']})")
