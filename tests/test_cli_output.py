"""The human-readable output paths of the CLI: `--version`, the backbones table, the flops
breakdowns and Tables I and II. Each is checked against the same command's `--json` output,
so a table that drops, renames or misprints a value fails."""

from __future__ import annotations

import json
import re
from importlib.metadata import version

import pytest
from typer.testing import CliRunner

import aknet_cli
from aknet_cli.analysis import flops
from aknet_cli.cli.main import app

runner = CliRunner()


def _run(*args: str):
    res = runner.invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return res.output


def _row(text: str, *cells: str) -> bool:
    """Some table line holds these cells, in this order, each in its own column."""
    pattern = r"[│┃]\s*" + r"\s*[│┃]\s*".join(re.escape(c) for c in cells) + r"\s*[│┃]"
    return any(re.search(pattern, line) for line in text.splitlines())


def _joined(text: str) -> str:
    """The text with Rich's soft line wrapping undone (for long lines)."""
    return re.sub(r"\s*\n\s*", " ", text)


def test_version():
    out = _run("--version")
    assert out == f"aknet {version('aknet')}\n"
    assert aknet_cli.__version__ == version("aknet")


def test_backbones_table_lists_every_registered_backbone():
    rows = json.loads(_run("backbones", "--json"))
    text = _run("backbones")
    assert "Registered backbones" in text
    assert {"resnet18", "tsm_resnet50", "tdn_resnet50"} <= {r["name"] for r in rows}
    for r in rows:
        assert _row(text, r["name"], r["package"], r["version"], r["target"]), r


ARGS_PLAIN = ("flops", "--backbone", "resnet18", "--size", "64", "--frames", "2")
ARGS_AKNET = ("flops", "--backbone", "resnet18", "--split", "res3", "--size", "64", "--frames", "2",
              "--transform-rank", "4", "--num-classes", "10")


@pytest.mark.parametrize("args", [ARGS_PLAIN, ARGS_AKNET], ids=["plain", "aknet"])
def test_flops_breakdown_table(args):
    data = json.loads(_run(*args, "--json"))
    text = _run(*args)
    total = sum(p["gflops"] for p in data["by_part"].values())
    assert total == pytest.approx(data["gflops"])
    for name, part in data["by_part"].items():
        share = 100 * part["gflops"] / data["gflops"]
        assert _row(text, name, f"{part['gflops']:.4f}", f"{share:.1f}%", f"{part['params_m']:.3f}"), name
    assert _row(text, "total", f"{data['gflops']:.3f}", "100%", f"{data['params_m']:.3f}")
    flat = _joined(text)
    assert f"convention: {data['convention']}" in flat
    ops = ", ".join(f"{k.removeprefix('aten::')}×{v}" for k, v in sorted(data["unsupported_ops"].items()))
    assert f"not counted (fvcore unsupported ops): {ops}" in flat
    assert f"uncalled modules: {', '.join(data['uncalled_modules']) or 'none'}" in flat
    if "--split" in args:
        assert "AK-Net on resnet18, split res3, α=0.3, inference" in flat
        assert "note: inference excludes the auxiliary head" in flat
        assert f"parameters incl. modules this forward does not run: {data['params_all_m']:.3f} M" in flat
        assert "aux_head" in data["uncalled_modules"]
    else:
        assert "GFLOPs by part: resnet18, plain" in flat


def test_table_i_table():
    args = ("flops", "--table", "i", "--cin", "8", "--cout", "16", "--t", "2", "--h", "5", "--w", "5")
    rows = json.loads(_run(*args, "--json"))["rows"]
    text = _run(*args)
    assert "Table I: C_in=8, C_out=16, k_s=3, k_t=3, k_p=3, T×H×W=2×5×5, N=15" in text
    for r in rows:
        assert _row(text, r["method"], f"{r['params_formula']:,}", f"{r['params_fvcore']:,}",
                    f"{r['flops_formula'] / 1e9:.6f}", f"{r['flops_fvcore'] / 1e9:.6f}",
                    "yes" if r["match"] else "no"), r["method"]
    assert [r["match"] for r in rows] == [True, False, True, True]  # (2+1)D: C_in ≠ C_out
    assert "note ((2+1)D CNN): formula assumes C_in = C_out" in _joined(text)


def test_table_ii_table(monkeypatch):
    small = {k: (bb.replace("50", "18"), split, paper) for k, (bb, split, paper) in flops.PAPER_TABLE_II.items()}
    monkeypatch.setattr(flops, "PAPER_TABLE_II", small)
    args = ("flops", "--table", "ii", "--size", "64", "--frames", "4", "--num-classes", "10")
    rows = json.loads(_run(*args, "--json"))["rows"]
    text = _run(*args)
    flat = _joined(text)
    assert "4 frames, 64²" in flat  # the title states the configuration counted
    for r in rows:
        where = r["backbone"] + ("" if r["split"] == "none" else f" / {r['split']}")
        assert _row(text, r["method"], where, f"{r['gflops']:.2f}", f"{r['paper_gflops']:.0f}",
                    f"{100 * r['rel_diff']:+.1f}%"), r["method"]
    assert "convention: " + flops.CONVENTION.format(frames=4, size=64) in flat
    for r in rows[2:]:
        f_part = sum(v for k, v in r["by_part"].items() if k in ("stem", "res2", "res3", "res4", "short-term TDM"))
        assert f"{r['method']}: F (up to res4) {f_part:.2f} G; after the split: " in flat
        assert f"transform net {r['by_part']['transform net']:.3g}" in flat
