"""The house rules of ``aknet_cli`` (docs/architecture.md), checked on the whole package.

* **Imports point down.** Every room has a level; a module may import its own room and rooms
  below it, never a room above it, and never a peer on its own level (``data`` and ``models``
  know nothing of each other). Lazy imports inside functions count too: they are how an upward
  import would hide.
* **No circle** between modules, lazy imports included.
* **No function body over 60 lines** (docstring not counted): past that a function holds more
  than one job.
* The rooms split out of the training engine (``engine``, ``checkpoints``, ``convert``) import
  on their own in a fresh interpreter.

The checks read the sources with :mod:`ast`, so the planted-violation tests at the end run the
same checks on an edited copy of the sources and show that each check can fail.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import aknet_cli

PACKAGE = Path(aknet_cli.__file__).parent
PLUGINS = PACKAGE.parent / "backbones"  # the built-in backbone plugins, installed as ``aknet_backbones``

#: Each room's level: a module imports rooms of a lower level (or its own room), never higher.
#: The foundation (``_registry``, ``_atomic``, ``_progress``, ``exceptions``, ...) is level 0.
LEVELS = {
    "cli": 7,
    "analysis": 6,
    "engine": 5,
    "convert": 4,
    "checkpoints": 3,
    "data": 2,
    "models": 2,
    "layers": 1,
    "configs": 0,
}
#: Modules at the top of the package that stand above every room: the public API re-exports
#: (``__init__``) and ``python -m aknet_cli`` (``__main__``).
ENTRY_MODULES = {"aknet_cli", "aknet_cli.__main__"}
#: The built-in backbone plugins stand where a third-party plugin would: they may use the model
#: interface, the layers and the checkpoint format, nothing that trains or parses the CLI.
PLUGIN_LEVEL = 3.5
LONGEST_BODY = 60
ISOLATED_ROOMS = ("engine", "checkpoints", "convert")


def package_sources() -> dict[str, str]:
    """``{dotted module name: source}`` of every module of the package and the built-in plugins."""
    sources = {}
    for root, prefix in ((PACKAGE, "aknet_cli"), (PLUGINS, "aknet_backbones")):
        for path in sorted(root.rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            sources[".".join([prefix, *parts])] = path.read_text(encoding="utf-8")
    return sources


def _is_package(name: str, sources: dict[str, str]) -> bool:
    return any(other.startswith(name + ".") for other in sources)


def imports_of(name: str, source: str, sources: dict[str, str]) -> list[tuple[int, str]]:
    """``(line, module)`` for every import of ``aknet_cli``/``aknet_backbones`` modules in a
    source, relative ones resolved, lazy ones included; ``from pkg import mod`` names the module
    ``pkg.mod`` when ``mod`` is a module."""
    package = name if _is_package(name, sources) else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                candidate = f"{module}.{alias.name}"
                out.append((node.lineno, candidate if candidate in sources else module))
    return [(line, m) for line, m in out if m.split(".")[0] in ("aknet_cli", "aknet_backbones")]


def level_of(module: str) -> float | None:
    """The level of a module's room; ``None`` for the entry modules (above every room)."""
    if module in ENTRY_MODULES:
        return None
    parts = module.split(".")
    if parts[0] == "aknet_backbones":
        return PLUGIN_LEVEL
    return LEVELS.get(parts[1], 0) if len(parts) > 1 else 0


def room_of(module: str) -> str:
    parts = module.split(".")
    return parts[0] if parts[0] == "aknet_backbones" else ".".join(parts[:2])


def upward_imports(sources: dict[str, str]) -> list[str]:
    """Every import of a room above (or beside, at the same level) the importing module's room."""
    wrong = []
    for name, source in sources.items():
        mine = level_of(name)
        if mine is None:
            continue
        for line, module in imports_of(name, source, sources):
            theirs = level_of(module)
            if module in ENTRY_MODULES or room_of(module) == room_of(name):
                continue
            if theirs is None or theirs > mine or (theirs == mine and mine > 0):
                wrong.append(f"{name}:{line} imports {module}")
    return wrong


def import_circles(sources: dict[str, str]) -> list[list[str]]:
    """The strongly connected components (more than one module, or a self-import) of the
    module import graph: each is an import circle."""
    graph = {name: {m for _, m in imports_of(name, src, sources) if m in sources and m not in ENTRY_MODULES}
             for name, src in sources.items() if name not in ENTRY_MODULES}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles = []

    def visit(node: str) -> None:  # Tarjan's algorithm; the graph is ~150 modules deep at most
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                circles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return circles


def long_functions(sources: dict[str, str], longest: int = LONGEST_BODY) -> list[str]:
    """Functions whose body, docstring excluded, spans more than ``longest`` lines."""
    long = []
    for name, source in sources.items():
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            body = node.body
            has_doc = isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                and isinstance(body[0].value.value, str)
            first = body[1] if has_doc and len(body) > 1 else body[0]
            lines = node.end_lineno - first.lineno + 1
            if lines > longest:
                long.append(f"{name}:{node.lineno} {node.name} ({lines} lines)")
    return long


SOURCES = package_sources()


def test_imports_point_down():
    assert upward_imports(SOURCES) == []


def test_every_internal_import_names_a_module_that_exists():
    """A lazy import of a moved module fails only when its function runs; read them all here."""
    missing = [f"{name}:{line} imports {module}" for name, source in SOURCES.items()
               for line, module in imports_of(name, source, SOURCES) if module not in SOURCES]
    assert missing == []


def test_no_import_circle():
    assert import_circles(SOURCES) == []


def test_no_function_body_is_longer_than_60_lines():
    assert long_functions(SOURCES) == []


@pytest.mark.parametrize("module", sorted(m for m in SOURCES if m.split(".")[1:2] and m.split(".")[1] in ISOLATED_ROOMS))
def test_split_rooms_import_in_isolation(module):
    result = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


# The checks can fail: the same functions on the sources with one violation planted.

def _planted(module: str, line: str) -> dict[str, str]:
    edited = dict(SOURCES)
    edited[module] = edited[module] + "\n" + line + "\n"
    return edited


@pytest.mark.parametrize(("module", "line", "named"), [
    ("aknet_cli.models.heatmap", "from ..cli.main import app", "aknet_cli.cli.main"),
    ("aknet_cli.data.dataset", "from ..models import aknet", "aknet_cli.models.aknet"),  # a peer
    ("aknet_cli.checkpoints.reader", "def f():\n    from ..engine import trainer", "aknet_cli.engine.trainer"),
    ("aknet_cli.layers.temporal_shift", "import aknet_cli.analysis.flops", "aknet_cli.analysis.flops"),
    ("aknet_backbones.tsm", "from aknet_cli.engine.trainer import train", "aknet_cli.engine.trainer"),
])
def test_a_planted_upward_import_is_found(module, line, named):
    found = set(upward_imports(_planted(module, line))) - set(upward_imports(SOURCES))
    assert len(found) == 1 and found.pop().endswith(f"imports {named}")


def test_a_planted_circle_is_found():
    edited = _planted("aknet_cli.engine.state", "from .trainer import train")
    assert any({"aknet_cli.engine.state", "aknet_cli.engine.trainer"} <= set(c) for c in import_circles(edited))
    assert not any("aknet_cli.engine.state" in c for c in import_circles(SOURCES))


def test_a_planted_long_function_is_found():
    body = "\n".join(f"    x{i} = {i}" for i in range(LONGEST_BODY + 1))
    edited = _planted("aknet_cli.engine.state", f'def too_long():\n    """Docstring lines do not count."""\n{body}')
    found = set(long_functions(edited)) - set(long_functions(SOURCES))
    assert len(found) == 1 and found.pop().endswith(f" too_long ({LONGEST_BODY + 1} lines)")
    shorter = _planted("aknet_cli.engine.state", f"def long_enough():\n{body[: body.rindex(chr(10))]}")
    assert set(long_functions(shorter)) == set(long_functions(SOURCES))  # 60 lines is allowed
