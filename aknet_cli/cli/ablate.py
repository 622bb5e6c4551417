"""``aknet ablate``: a thin wrapper over :func:`aknet_cli.analysis.ablation.run_table`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ._common import console, print_json


def ablate_command(
    table: str = typer.Option(..., "--table", help="iv (components), v (position information), vi (sampling rate α) or tau (ranking weight τ, beyond the paper)."),
    data: Path = typer.Option(Path("runs/demo/synth"), "--data", help="Prepared dataset (default: make demo's synth-sth)."),
    config: str = typer.Option("demo_aknet_tdn_stage2", "--config", help="Stage-2 base config every row starts from (a file or a shipped name)."),
    stage1_config: str = typer.Option("demo_tdn_stage1", "--stage1-config", help="Config of the shared stage-1 model, trained once in WORK/stage1."),
    stage1: Optional[Path] = typer.Option(None, "--stage1", help="An existing stage-1 checkpoint to share instead (e.g. runs/demo/tdn/best.pt)."),
    set_: list[str] = typer.Option([], "--set", help="Override a key of every row's config, repeatable (e.g. optim.lr=0.002)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Fine-tuning epochs per row [default: the base config's]."),
    work_dir: Path = typer.Option(Path("runs/ablate"), "--work-dir", help="Where the shared stage 1 and every row train."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the runs, their switches and GFLOPs; train nothing."),
    force: bool = typer.Option(False, "--force", help="Redo finished rows."),
    json_out: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Run one of the paper's ablation tables as stage-2 trainings and print it beside the paper's.

    Every row fine-tunes from one shared stage-1 checkpoint with the same seed and schedule.
    Finished rows are reused, interrupted ones resume. Writes results.csv, results.md and a
    plot to WORK/TABLE/. Examples:

        aknet ablate --table iv --dry-run

        aknet ablate --table vi --stage1 runs/demo/tdn/best.pt --epochs 3

        aknet ablate --table v --data data/sthv2 --config tsm_r50_sthv2_stage2 --stage1-config tsm_r50_sthv2_stage1
    """
    from .._atomic import check_output_dir
    from ..analysis.ablation import run_table

    if not dry_run:
        check_output_dir(work_dir, option="--work-dir")

    result = run_table(table, data=data, config=config, stage1_config=stage1_config, stage1=stage1,
                       overrides=list(set_), epochs=epochs, work_dir=work_dir, dry_run=dry_run, force=force,
                       progress=not json_out)
    if json_out:
        print_json(result)
        return
    out = Table(title=result["title"] + (" (dry run)" if dry_run else ""))
    for col in ("row", "switches", "top-1 (ours)", "top-1 (paper)", "GFLOPs", "status"):
        out.add_column(col, justify="right" if col in ("top-1 (ours)", "top-1 (paper)", "GFLOPs") else "left")
    fmt = lambda v: "—" if v is None else f"{v:.2f}"  # noqa: E731
    for row in result["rows"]:
        switches = ", ".join(f"{k}={v}" for k, v in row["switches"].items())
        out.add_row(row["name"], switches, fmt(row["top1"]), fmt(row["paper_top1"]), fmt(row["gflops"]), row["status"])
    console.print(out)
    console.print(f"shared stage 1: {result['stage1']}", highlight=False)
    if not dry_run:
        console.print(f"files: {', '.join(result['files'].values())}", highlight=False, soft_wrap=True)
