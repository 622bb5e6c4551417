"""``aknet bench``: measured latency of the plain backbone and AK-Net, beside their FLOPs."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..exceptions import ConfigError
from ._common import comma_list, console, err_console, print_json


def bench_command(
    backbone: str = typer.Option("tsm_resnet50", "--backbone", "-b", help="Registered backbone (see `aknet backbones`)."),
    split: str = typer.Option("none,res2,res3,res4", "--split", help="Comma-separated splits to time AK-Net at; the plain backbone is always timed (it is the reference)."),
    alpha: float = typer.Option(0.3, help="Point sampling rate α in (0, 1]."),
    batch: str = typer.Option("1", "--batch", help="Comma-separated batch sizes, e.g. 1,8."),
    frames: int = typer.Option(8, help="Frames (segments) per clip, T."),
    size: int = typer.Option(224, help="Input height and width in pixels."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    threads: Optional[int] = typer.Option(None, help="CPU threads for torch (default: torch's choice, printed)."),
    amp: bool = typer.Option(False, "--amp", help="Autocast on CUDA, as training and evaluation use it: bfloat16 where the GPU runs it natively, else float16."),
    runs: int = typer.Option(7, help="Timed rounds (each round runs every model once)."),
    warmup: int = typer.Option(2, help="Rounds run first and discarded."),
    num_classes: int = typer.Option(174, help="Classifier size."),
    transform_rank: Optional[str] = typer.Option(None, help="Rank r of the transform net (A = I + Q G Pᵀ, the default 'core' form; --set transform=uv for A = I + UVᵀ); 'none' for the paper's full (C+3)² matrix [default: auto: 64 (core: at most C+3; uv: only where 128 < C+3)]."),
    set_: list[str] = typer.Option([], "--set", help="AK-Net option KEY=VALUE, repeatable (e.g. position=embedding, stride_mode=axis)."),
    breakdown: bool = typer.Option(True, "--breakdown/--no-breakdown", help="Time AK-Net's parts (F, heatmap, selection, transform, 1-D subnet, head)."),
    memory: bool = typer.Option(True, "--memory/--no-memory", help="Measure peak tensor memory (one extra forward per model)."),
    fuse: bool = typer.Option(False, "--fuse", help="Fold every BatchNorm into its conv first (fuse_for_inference), the backbone's and AK-Net's alike."),
    runtime: str = typer.Option("torch", "--runtime", help="torch (eager PyTorch) or onnxruntime (every model exported to ONNX, checked against eager, and run by ONNX Runtime's CPU provider; needs pip install 'aknet[export]')."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Also draw latency ratio, floor and FLOPs ratio per split into this PNG."),
    json_out: bool = typer.Option(False, "--json", help="Print machine-readable JSON (one row per model and batch)."),
) -> None:
    """Time the plain backbone and AK-Net at each split, interleaved, beside their FLOPs.

    Every round runs each model once (and F alone, the layers up to each split), in an order
    that rotates round by round, so machine noise hits all of them alike; the median and the
    quartiles of the rounds after warm-up are reported. F's latency ratio is the floor AK-Net
    cannot go below; the after-split ms per GFLOP compares AK-Net's own layers with the
    backbone's layers they replace. Examples:

        aknet bench --backbone tsm_resnet50 --split none,res2,res3,res4 --batch 1

        aknet bench --split res4 --transform-rank none --batch 1,8 --json

        aknet bench --device cuda --amp --batch 1,32

        aknet bench --runtime onnxruntime --split none,res4 --batch 1,8
    """
    from ..engine.aknet_options import command_options

    options = command_options(set_, dedicated={"transform_rank": transform_rank})
    splits = comma_list(split, "--split", str.lower, example="none,res4")
    batches = comma_list(batch, "--batch", int, kind="integers")
    if plot is not None:
        from .._atomic import check_output_file

        check_output_file(plot, option="--plot")
        if plot.suffix.lower() != ".png":
            raise ConfigError(f"--plot expects a .png file name, got {plot}")

    from ..analysis import bench as B

    cfg = B.BenchConfig(backbone=backbone, splits=splits, alpha=alpha, batches=batches, frames=frames, size=size,
                        device=device, threads=threads, amp=amp, runs=runs, warmup=warmup,
                        num_classes=num_classes, options=options, breakdown=breakdown, memory=memory,
                        fuse=fuse, runtime=runtime.strip().lower()).validate()

    from .._progress import LoopBar

    with LoopBar(None if json_out else err_console, unit="round", rate=False) as prog:
        task = prog.add_task("bench", total=B.rounds(cfg))
        result = B.run_bench(cfg, progress=lambda desc, n: prog.update(task, description=desc, advance=n))

    if plot is not None:
        from ..analysis.plots import plot_bench

        plot_bench(plot, result)
    if json_out:
        print_json(result)
        return
    _print(result)
    if plot is not None:
        console.print(f"wrote {plot}")


def _f(v, fmt: str) -> str:
    return "–" if v is None else format(v, fmt)


def _print(result: dict) -> None:
    env, cfg = result["environment"], result["config"]
    amp = f", autocast {env['amp']}" if env["amp"] else ""
    dev = env.get("gpu") or f"{env['cpu']}, {env['cpu_kernels']} kernels"
    from ..analysis.bench import describe_runtime

    console.print(f"{describe_runtime(env)}; device {env['device']} ({dev}), {env['threads']} CPU threads, torch {env['torch']}{amp}; "
                  f"input {cfg['frames']}×{cfg['size']}², {cfg['runs']} rounds after {cfg['warmup']} warm-up")
    table = Table(title=f"Latency: {cfg['backbone']} and AK-Net (α={cfg['alpha']})")
    for name in ("model", "batch", "GFLOPs/clip", "ms median", "p25–p75", "clips/s", "peak MB"):
        table.add_column(name, justify="left" if name == "model" else "right")
    for r in result["rows"]:
        name = "plain backbone" if r["split"] == "none" else f"AK-Net {r['split']}"
        table.add_row(name, str(r["batch"]), f"{r['gflops']:.2f}", f"{r['latency_ms_median']:.1f}",
                      f"{r['latency_ms_p25']:.1f}–{r['latency_ms_p75']:.1f}", f"{r['clips_per_s']:.2f}",
                      _f(r["peak_mem_mb"], ".0f"))
    console.print(table)
    ratios = [r for r in result["rows"] if r["split"] != "none"]
    if ratios:
        rt = Table(title="Against the plain backbone: the floor (F alone) and the time per GFLOP after the split")
        for name in ("split", "batch", "latency ratio", "F floor", "FLOPs ratio", "F FLOPs",
                     "ms/GFLOP after: AK-Net", "backbone", "factor"):
            rt.add_column(name, justify="left" if name == "split" else "right")
        for r in ratios:
            rt.add_row(r["split"], str(r["batch"]), f"{r['latency_ratio']:.2f}", _f(r["floor_ratio"], ".2f"),
                       f"{r['flops_ratio']:.2f}", _f(r["f_flops_ratio"], ".2f"),
                       _f(r["ms_per_gflop_after_split"], ".1f"), _f(r["backbone_ms_per_gflop_after_split"], ".1f"),
                       "×" + _f(r["after_split_factor"], ".2f"))
        console.print(rt)
    parts_rows = [r for r in result["rows"] if r.get("parts_ms")]
    if parts_rows:
        from ..analysis.bench import PARTS

        labels = [p for p in PARTS if any(p in r["parts_ms"] for r in parts_rows)]
        bt = Table(title="AK-Net per part (ms, median of hooked forwards)")
        bt.add_column("split")
        bt.add_column("batch", justify="right")
        for p in labels:
            bt.add_column(p, justify="right")
        bt.add_column("hooked total", justify="right")
        for r in parts_rows:
            bt.add_row(r["split"], str(r["batch"]), *(_f(r["parts_ms"].get(p), ".1f") for p in labels),
                       f"{r['hooked_total_ms']:.1f}")
        console.print(bt)
    console.print("F floor: F alone (the backbone's layers up to the split, which AK-Net runs unchanged) over the "
                  "plain backbone; AK-Net's latency ratio cannot go below it. See docs/bench.md.")
