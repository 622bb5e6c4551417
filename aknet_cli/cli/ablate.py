"""``aknet ablate``: a thin wrapper over :func:`aknet_cli.analysis.ablation.run_table`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ._common import comma_list, console, print_json


def ablate_command(
    table: str = typer.Option(..., "--table", help="iv (components), v (position information), vi (sampling rate α), or beyond the paper: tau (ranking weight τ), transform (the transform net's forms: uv r=64, core r=64, core r=16, full, no position)."),
    data: Path = typer.Option(Path("runs/demo/synth"), "--data", help="Prepared dataset (default: make demo's synth-sth)."),
    config: str = typer.Option("demo_aknet_tdn_stage2", "--config", help="Stage-2 base config every row starts from (a file or a shipped name)."),
    stage1_config: str = typer.Option("demo_tdn_stage1", "--stage1-config", help="Config of the shared stage-1 model, trained once in WORK/stage1."),
    stage1: Optional[Path] = typer.Option(None, "--stage1", help="An existing stage-1 checkpoint to share instead (e.g. runs/demo/tdn/best.pt)."),
    seeds: str = typer.Option("0", "--seeds", help="Training seeds, comma separated: every row trains once per seed (train.seed) and reports mean ± std."),
    rows: Optional[str] = typer.Option(None, "--rows", help="Train only these rows (names, comma separated), e.g. to add a seed to the rows a conclusion rests on."),
    set_: list[str] = typer.Option([], "--set", help="Override a key of every row's config, repeatable (e.g. optim.lr=0.002)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Fine-tuning epochs per row [default: the base config's]."),
    work_dir: Path = typer.Option(Path("runs/ablate"), "--work-dir", help="Where the shared stage 1 and every row train."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the runs, their switches and GFLOPs, after every check the real run makes before it trains (data, configs, --stage1); train nothing."),
    force: bool = typer.Option(False, "--force", help="Redo finished runs."),
    json_out: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Run one of the paper's ablation tables as stage-2 trainings and print it beside the paper's.

    Every row fine-tunes from one shared stage-1 checkpoint with the same schedule, once per
    seed. best.pt is chosen on val; each run is then scored on the held-out test split (where
    the dataset has one), and each row reports mean ± std over its seeds and its paired
    difference to the table's baseline row with a 95% CI. Finished runs are reused, interrupted
    ones resume; a row's summary covers every seed found in WORK. Writes runs.csv, results.csv,
    results.md and a plot to WORK/TABLE/. Examples:

        aknet ablate --table iv --dry-run

        aknet ablate --table vi --stage1 runs/demo/tdn/best.pt --epochs 2 --seeds 0,1

        aknet ablate --table vi --stage1 runs/demo/tdn/best.pt --epochs 2 --seeds 2 --rows "baseline α=0.3,ours α=0.3"

        aknet ablate --table v --data data/sthv2 --config tsm_r50_sthv2_stage2 --stage1-config tsm_r50_sthv2_stage1
    """
    from .._atomic import check_output_dir
    from ..analysis.ablation import run_table, summary_frame

    check_output_dir(work_dir, option="--work-dir")  # creates nothing: a dry run checks it too
    chosen = comma_list(rows, "--rows", example='"Q only,all"') if rows is not None else None
    # repeats kept: run_table refuses them with its own message
    seed_list = comma_list(seeds, "--seeds", int, kind="integers", example="0,1,2", unique=False)
    result = run_table(table, data=data, config=config, stage1_config=stage1_config, stage1=stage1,
                       overrides=list(set_), epochs=epochs, seeds=seed_list, rows=chosen, work_dir=work_dir,
                       dry_run=dry_run, force=force, progress=not json_out)
    if json_out:
        print_json(result)
        return
    frame = summary_frame(result["rows"])
    out = Table(title=result["title"] + (" (dry run)" if dry_run else f", {result['split']} split"))
    for col in frame.columns:
        out.add_column(col, justify="left" if col in ("row", "seeds") or col.startswith("paired") else "right")
    fmt = lambda v: "—" if v is None or (isinstance(v, float) and v != v) else (f"{v:.2f}" if isinstance(v, float) else str(v))  # noqa: E731
    for _, r in frame.iterrows():
        out.add_row(*(fmt(v) for v in r.tolist()))
    console.print(out)
    console.print(f"shared stage 1: {result['stage1']}; runs: {len(result['runs'])} "
                  f"({', '.join(sorted({r['status'] for r in result['runs']}))})", highlight=False)
    if result["split"] != "test" and not dry_run:
        console.print("[yellow]note:[/] the dataset has no held-out test split: these are val numbers, the split "
                      "best.pt was selected on", soft_wrap=True)
    if not dry_run:
        console.print(f"files: {', '.join(result['files'].values())}", highlight=False, soft_wrap=True)
