"""``aknet backbones``: list the registered backbone plugins."""

from __future__ import annotations

import typer
from rich.table import Table

from .._registry import list_backbones
from ._common import console, print_json


def backbones_command(
    json_out: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """List the registered backbone plugins and the package providing each.

    Reads the entry-point group aknet.backbones without importing any plugin. Example:

        aknet backbones --json
    """
    rows = list_backbones()
    if json_out:
        print_json([{"name": r.name, "target": r.target, "package": r.package, "version": r.version} for r in rows])
        return
    table = Table(title="Registered backbones (entry-point group aknet.backbones)")
    for col in ("name", "provided by", "version", "entry point"):
        table.add_column(col)
    for r in rows:
        table.add_row(r.name, r.package, r.version, r.target)
    console.print(table)
