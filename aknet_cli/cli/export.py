"""``aknet export``: a checkpoint → ONNX or a ``torch.export`` program, checked against eager."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ._common import console, print_json


def export_command(
    checkpoint: Path = typer.Argument(..., help="A checkpoint: aknet (backbone or AK-Net), official TSM/TDN or mmaction2 (see `aknet eval --help`)."),
    format: str = typer.Option(..., "--format", "-f", help="onnx or torch-export."),
    out: Path = typer.Option(..., "--out", "-o", help="File to write (.onnx, or .pt2 for torch-export)."),
    batch: str = typer.Option("1", help="Batch size baked into the graph, or 'dynamic' for any batch."),
    size: int = typer.Option(224, help="Input height and width in pixels (fixed in the graph)."),
    fuse: bool = typer.Option(True, "--fuse/--no-fuse", help="Fold BatchNorms into the convolutions first."),
    num_segments: Optional[int] = typer.Option(None, "--num-segments", help="Frames per clip T, for a published checkpoint that records it neither in its metadata nor in its file name."),
    force: bool = typer.Option(False, "--force", help="Replace --out if it exists."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Export a trained model for deployment and check it against eager PyTorch.

    The graph takes `clips` in the backbone's layout and returns `logits` (and, for AK-Net,
    `keypoints` (B, N, 3) as (t, y, x) in ranked order). BatchNorms are folded first. The
    exported model is run on a random clip and compared with PyTorch. Examples:

        aknet export aknet.pt --format onnx --out aknet.onnx

        aknet export aknet.pt --format torch-export --out aknet.pt2 --batch dynamic
    """
    from .._atomic import check_output_file
    from ..convert.export import export_model
    from ..checkpoints.reader import model_from_checkpoint

    check_output_file(out, option="--out")
    model, _ = model_from_checkpoint(checkpoint, num_segments=num_segments)
    report = export_model(model, out, format=format, batch=batch, size=size, fuse=fuse, overwrite=force)
    if json_out:
        print_json(report.as_dict())
        return
    table = Table(title=f"export {checkpoint} → {report.format}")
    table.add_column("what")
    table.add_column("value")
    table.add_row("output", report.output)
    table.add_row("batch", report.batch + ("" if report.mode in ("static", "batched") else f" ({report.mode})"))
    table.add_row("outputs", ", ".join(report.outputs))
    table.add_row("checked on input", str(tuple(report.input_shape)))
    table.add_row("max |logits − eager|", f"{report.max_abs_logit_diff:.2e}")
    if report.keypoints_equal is not None:
        table.add_row("keypoints equal to eager", "yes" if report.keypoints_equal else "NO")
    console.print(table)
