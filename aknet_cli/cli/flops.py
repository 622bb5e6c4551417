"""``aknet flops``: count GFLOPs and parameters the way the paper's tables do."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..exceptions import ConfigError
from ._common import comma_list, console, print_json


def flops_command(
    backbone: str = typer.Option("tsm_resnet50", "--backbone", "-b", help="Registered backbone (see `aknet backbones`)."),
    split: str = typer.Option("none", help="Where AK-Net splits the backbone: none (plain backbone), res2, res3 or res4."),
    alpha: float = typer.Option(0.3, help="Point sampling rate α in (0, 1]: N = round(α·T·H·W)."),
    frames: int = typer.Option(8, help="Frames (segments) per clip, T."),
    size: int = typer.Option(224, help="Input height and width in pixels."),
    num_classes: int = typer.Option(174, help="Classifier size (Sth-Sth: 174)."),
    mode: str = typer.Option("inference", help="inference (no auxiliary head, as the paper) or train (auxiliary head counted too)."),
    transform_rank: Optional[str] = typer.Option(None, help="Rank r of the transform net (A = I + Q G Pᵀ, the default 'core' form; --set transform=uv for A = I + UVᵀ); 'none' for the paper's full (C+3)² matrix [default: auto: 64 (core: at most C+3; uv: only where 128 < C+3)]."),
    set_: list[str] = typer.Option([], "--set", help="AK-Net option KEY=VALUE, repeatable (e.g. stride_mode=axis, position=embedding, ranking=false)."),
    table: Optional[str] = typer.Option(None, "--table", help="Reproduce a paper table instead: i (per-layer formulas) or ii (ResNet-50 GFLOPs)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write a Fig. 5-style PNG: GFLOPs per split beside the plain backbones."),
    results: Optional[Path] = typer.Option(None, "--results", help="CSV with model/backbone, split, top1 [, gflops]: plot accuracy vs GFLOPs instead."),
    compare: str = typer.Option("tsm_resnet50,tdn_resnet50", help="Backbones in the --plot, comma separated."),
    cin: int = typer.Option(256, help="--table i: input channels C_in."),
    cout: int = typer.Option(256, help="--table i: output channels C_out."),
    ks: int = typer.Option(3, help="--table i: spatial kernel size k_s."),
    kt: int = typer.Option(3, help="--table i: temporal kernel size k_t."),
    kp: int = typer.Option(3, help="--table i: 1-D kernel size k_p."),
    t: int = typer.Option(8, "--t", help="--table i: frames T."),
    h: int = typer.Option(14, "--h", help="--table i: feature height H."),
    w: int = typer.Option(14, "--w", help="--table i: feature width W."),
    n: Optional[int] = typer.Option(None, "--n", help="--table i: points N (default round(0.3·T·H·W))."),
    json_out: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Count GFLOPs and parameters by part, the way the paper's tables do.

    Convention: fvcore's (one multiply-add = one FLOP), per clip, one view, eval mode. Parts:
    stem, stages or their 1-D counterparts, heatmap, selection, transform net, heads.
    Keypoint selection (top-k, sort, gather) is counted, never free.

    Examples:

        aknet flops --backbone tsm_resnet50 --split res4 --alpha 0.3

        aknet flops --table ii --json

        aknet flops --table i --cin 64 --cout 128 --t 8 --h 28 --w 28

        aknet flops --plot fig5.png --results accuracy.csv
    """
    from ..analysis import flops as F
    from ..analysis import plots
    from ..engine.aknet_options import command_options

    # --set split=/alpha= reach the counter's own check (F.validate), which names them.
    options = command_options(set_, dedicated={"transform_rank": transform_rank}, split_and_alpha_in_set=True)

    if table is not None:
        table = table.strip().lower()
        if table not in ("i", "ii"):
            raise ConfigError(f"--table must be i or ii, got {table!r}")
    if results is not None and plot is None:
        raise ConfigError("--results needs --plot FILE.png to draw into")
    if plot is not None:
        from .._atomic import check_output_file

        check_output_file(plot, option="--plot")

    if table == "i":
        cfg = F.LayerConfig(cin=cin, cout=cout, ks=ks, kt=kt, kp=kp, t=t, h=h, w=w, n=n).validate()
        rows = F.table_i(cfg)
        if json_out:
            print_json({"config": {**cfg.__dict__, "n": cfg.points()}, "convention": F.CONVENTION.split(";")[0], "rows": rows})
            return
        _print_table_i(cfg, rows)
        return

    if table == "ii":
        F.validate(split="res4", alpha=alpha, frames=frames, size=size, mode="inference",
                   num_classes=num_classes, options=options)
        rows = F.table_ii(alpha=alpha, frames=frames, size=size, num_classes=num_classes, options=options)
        convention = F.CONVENTION.format(frames=frames, size=size)
        if json_out:
            print_json({"convention": convention, "rows": rows})
            return
        _print_table_ii(rows, convention, alpha, frames, size)
        return

    if plot is not None:
        F.validate(split=split, alpha=alpha, frames=frames, size=size, mode=mode, num_classes=num_classes,
                   options=options)
        names = list(comma_list(compare, "--compare", example="tsm_resnet50,tdn_resnet50"))
        rows = plots.read_results(results) if results is not None else None
        points = plots.plot_splits(plot, names, alpha=alpha, frames=frames, size=size, num_classes=num_classes,
                                   options=options, results=rows)
        if json_out:
            print_json({"plot": str(plot), "points": points})
        else:
            console.print(f"wrote {plot} ({len(points)} points)")
        return

    report = F.count(backbone, split=split, alpha=alpha, frames=frames, size=size, num_classes=num_classes,
                     mode=mode, options=options)
    if json_out:
        print_json(report.as_dict())
        return
    _print_report(report)


def _print_report(report) -> None:
    cfg = report.config
    title = (f"{cfg['backbone']}, plain" if cfg["split"] == "none"
             else f"AK-Net on {cfg['backbone']}, split {cfg['split']}, α={cfg['alpha']}, {cfg['mode']}")
    table = Table(title=f"GFLOPs by part: {title}")
    table.add_column("part")
    table.add_column("GFLOPs", justify="right")
    table.add_column("share", justify="right")
    table.add_column("params (M)", justify="right")
    total = report.flops or 1
    for p in report.parts:
        table.add_row(p.name, f"{p.flops / 1e9:.4f}", f"{100 * p.flops / total:.1f}%", f"{p.params / 1e6:.3f}")
    table.add_section()
    table.add_row("[bold]total[/]", f"[bold]{report.gflops:.3f}[/]", "100%", f"[bold]{report.params / 1e6:.3f}[/]")
    console.print(table)
    if report.params_all != report.params:
        console.print(f"parameters incl. modules this forward does not run: {report.params_all / 1e6:.3f} M")
    console.print(f"convention: {report.convention}")
    for note in report.notes:
        console.print(f"note: {note}")
    ops = ", ".join(f"{k.removeprefix('aten::')}×{v}" for k, v in sorted(report.unsupported_ops.items()))
    console.print(f"not counted (fvcore unsupported ops): {ops or 'none'}")
    console.print(f"uncalled modules: {', '.join(report.uncalled_modules) or 'none'}")


def _print_table_ii(rows, convention: str, alpha: float, frames: int, size: int) -> None:
    table = Table(title=f"Table II: ResNet-50, {frames} frames, {size}², AK-Net split res4, α={alpha}")
    for col, just in (("method", "left"), ("backbone", "left"), ("ours (G)", "right"),
                      ("paper (G)", "right"), ("diff", "right")):
        table.add_column(col, justify=just)
    for r in rows:
        table.add_row(r["method"], r["backbone"] + ("" if r["split"] == "none" else f" / {r['split']}"),
                      f"{r['gflops']:.2f}", f"{r['paper_gflops']:.0f}", f"{100 * r['rel_diff']:+.1f}%")
    console.print(table)
    console.print(f"convention: {convention}")
    before_split = ("stem", "res2", "res3", "res4", "short-term TDM", "features (other)")
    for r in rows:
        if r["split"] != "none":
            f_part = sum(v for k, v in r["by_part"].items() if k in before_split)
            rest = sorted(((k, v) for k, v in r["by_part"].items() if k not in before_split and v > 0), key=lambda kv: -kv[1])
            after = ", ".join(f"{k} {v:.3g}" for k, v in rest)
            console.print(f"{r['method']}: F (up to res4) {f_part:.2f} G; after the split: {after}")


def _print_table_i(cfg, rows) -> None:
    table = Table(title=(f"Table I: C_in={cfg.cin}, C_out={cfg.cout}, k_s={cfg.ks}, k_t={cfg.kt}, k_p={cfg.kp}, "
                         f"T×H×W={cfg.t}×{cfg.h}×{cfg.w}, N={cfg.points()}"))
    for col in ("method", "params (formula)", "params (fvcore)", "GFLOPs (formula)", "GFLOPs (fvcore)", "match"):
        table.add_column(col, justify="left" if col == "method" else "right")
    for r in rows:
        table.add_row(r["method"], f"{r['params_formula']:,}", f"{r['params_fvcore']:,}",
                      f"{r['flops_formula'] / 1e9:.6f}", f"{r['flops_fvcore'] / 1e9:.6f}",
                      "yes" if r["match"] else "[red]no[/]")
    console.print(table)
    console.print("fvcore counts nn.Conv3d, Conv3d (1,k,k)+(k,1,1), nn.Conv2d on T frames, nn.Conv1d on N points; bias off")
    for r in rows:
        if r["note"]:
            console.print(f"note ({r['method']}): {r['note']}")
