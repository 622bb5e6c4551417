"""The engine's shape (DESIGN.md): every module imports on its own, none imports from
``analysis/`` or ``cli/`` (imports point down only), none is part of an import circle, and no
function is long enough to hold several jobs."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import aknet_cli

ENGINE = Path(aknet_cli.__file__).parent / "engine"
MODULES = sorted(p.stem for p in ENGINE.glob("*.py") if p.stem != "__init__")
LONGEST = 80


def _imports(path: Path) -> list[str]:
    """Every module a file imports, relative imports resolved to ``aknet_cli.…`` (lazy ones too)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = ["aknet_cli", "engine"][: 3 - node.level] if node.level <= 2 else []
                out.append(".".join(base + ([node.module] if node.module else [])))
            else:
                out.append(node.module or "")
        elif isinstance(node, ast.Import):
            out.extend(alias.name for alias in node.names)
    return out


@pytest.mark.parametrize("module", MODULES)
def test_every_engine_module_imports_in_isolation(module):
    result = subprocess.run([sys.executable, "-c", f"import aknet_cli.engine.{module}"], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_no_engine_module_imports_upward():
    upward = {p.stem: [m for m in _imports(p) if m.startswith(("aknet_cli.analysis", "aknet_cli.cli"))]
              for p in ENGINE.glob("*.py")}
    assert {k: v for k, v in upward.items() if v} == {}


def test_no_import_circle_inside_the_engine():
    graph = {}
    for p in ENGINE.glob("*.py"):
        graph[p.stem] = {m.split(".")[2] for m in _imports(p)
                         if m.startswith("aknet_cli.engine.") and m.split(".")[2] in MODULES}
    for name in MODULES:
        seen, stack = set(), list(graph.get(name, ()))
        while stack:
            node = stack.pop()
            assert node != name, f"{name} imports itself through {sorted(seen)}"
            if node not in seen:
                seen.add(node)
                stack.extend(graph.get(node, ()))


def test_no_engine_function_is_longer_than_80_lines():
    long = []
    for p in ENGINE.glob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines >= LONGEST:
                    long.append(f"{p.name}:{node.lineno} {node.name} ({lines} lines)")
    assert long == []
