"""The layering in the README, enforced: data flows one way through src/journeymap.

Every module is parsed with ``ast`` (nothing is imported). An import of a journeymap module is an edge
wherever it sits: at module level, inside a function (a lazy import is still a dependency), or as
``importlib.import_module("journeymap...")`` with a literal name. Imports under ``if TYPE_CHECKING:``
are not edges: they never run. The checks: no import from a lower layer to a higher one, and no import
circle, neither between modules nor between layers.
"""

from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# Lowest first; a module may import only from its own layer or lower ones. A layer is a top-level
# package (journeymap/engine/) or module (journeymap/errors.py). Layers that do not exist yet are
# ranked all the same, so the first module in them is held to the order.
LAYERS = (
    "errors",
    "events",
    "ingest",
    "identity",
    "journey",
    "engine",
    "state",
    "insights",
    "act",
    "analyses",
    "workspace",
    "demo",
    "report",
    "server",
    "cli",
)
RANK = {layer: rank for rank, layer in enumerate(LAYERS)}
# Layers that may import only themselves and these, whatever their rank: the demo simulator is
# self-contained so that it can generate data without the code it is meant to test.
SELF_CONTAINED = {"demo": {"errors"}}
ROOT = "journeymap"
EXCLUDED = {"journeymap", "journeymap.__main__"}  # the package root re-exports and runs the top


@dataclass(frozen=True)
class Edge:
    source: str  # module that imports
    target: str  # journeymap module (or package) imported
    path: Path  # relative to the source root: journeymap/ingest/store.py
    line: int


def layer_of(module: str) -> str:
    return module.split(".")[1]


def module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _Imports(ast.NodeVisitor):
    """Collects (imported name, line) pairs, leaving out TYPE_CHECKING blocks."""

    def __init__(self, module: str, is_package: bool) -> None:
        self.package = module if is_package else module.rpartition(".")[0]
        self.found: list[tuple[str, int]] = []

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.found += [(alias.name, node.lineno) for alias in node.names]

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:  # relative: resolve against this module's package
            anchor = self.package.split(".")
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join([*anchor, base] if base else anchor)
        # "from a.b import c" may name the module a.b.c or an attribute of a.b; resolve() decides.
        self.found += [(f"{base}.{alias.name}" if alias.name != "*" else base, node.lineno) for alias in node.names]

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if name == "import_module" and node.args and isinstance(node.args[0], ast.Constant):
            if isinstance(node.args[0].value, str):
                self.found.append((node.args[0].value, node.lineno))
        self.generic_visit(node)


def scan(src: Path) -> tuple[set[str], list[Edge]]:
    """The journeymap modules under ``src`` and the import edges between them."""
    files = {module_name(p, src): p for p in sorted((src / ROOT).rglob("*.py"))}
    modules = set(files)
    edges: dict[Edge, None] = {}  # ordered and without repeats ("from m import a, b" is one edge)
    for module, path in files.items():
        if module in EXCLUDED:
            continue
        visitor = _Imports(module, path.name == "__init__.py")
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        for name, line in visitor.found:
            target = resolve(name, modules)
            if target is not None and target != module:
                edges[Edge(module, target, path.relative_to(src), line)] = None
    return modules - EXCLUDED, list(edges)


def resolve(name: str, modules: set[str]) -> str | None:
    """The journeymap module an imported name refers to: itself, or its longest existing prefix."""
    if name != ROOT and not name.startswith(ROOT + "."):
        return None
    parts = name.split(".")
    while len(parts) > 2 and ".".join(parts) not in modules:
        parts.pop()  # an attribute of a module, or a module that does not exist yet
    if len(parts) < 2 or (".".join(parts) not in modules and parts[1] not in RANK):
        return ROOT  # "import journeymap", "from journeymap import __version__"
    return ".".join(parts)


def violations(modules: set[str], edges: list[Edge]) -> list[str]:
    """Upward imports, imports of the package root, and modules in no known layer."""
    found = [f"{m}: layer {layer_of(m)!r} is not in LAYERS" for m in sorted(modules) if layer_of(m) not in RANK]
    for e in edges:
        where = f"{e.path}:{e.line}: {e.source} imports {e.target}"
        if e.target == ROOT:
            found.append(f"{where}: the package root imports the top layers; import the module itself")
            continue
        low, high = layer_of(e.source), layer_of(e.target)
        if low not in RANK or high not in RANK:
            continue  # a module in no known layer: reported above, once
        if low in SELF_CONTAINED and high != low and high not in SELF_CONTAINED[low]:
            found.append(f"{where}: layer {low!r} may import only {sorted(SELF_CONTAINED[low])}, not {high!r}")
        elif RANK[high] > RANK[low]:
            found.append(f"{where}: layer {low!r} (rank {RANK[low]}) imports higher layer {high!r} (rank {RANK[high]})")
    return found


def components(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one node (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set(stack[stack.index(node):])
            del stack[stack.index(node):]
            if len(component) > 1:
                found.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def shortest_circle(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """The shortest circle through the component's first node, that node at both ends."""
    start = min(component)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:  # breadth first, staying inside the component
        reached = []
        for node in frontier:
            for nxt in sorted(graph[node] & component):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if nxt not in previous:
                    previous[nxt] = node
                    reached.append(nxt)
        frontier = reached
    raise AssertionError(f"no circle in {component}")


def circles(edges: list[Edge]) -> list[str]:
    """Import circles between modules and between layers: one circle with the lines that close it, and
    every member when more modules (or layers) are tangled in it."""
    found = []
    for kind, key in (("modules", lambda m: m), ("layers", layer_of)):
        graph: dict[str, set[str]] = {}
        first: dict[tuple[str, str], Edge] = {}
        for e in edges:
            if e.target == ROOT:  # reported by violations(); the root is in no layer
                continue
            a, b = key(e.source), key(e.target)
            if a != b:
                graph.setdefault(a, set()).add(b)
                first.setdefault((a, b), e)
        for component in components(graph):
            circle = shortest_circle(graph, component)
            steps = [first[a, b] for a, b in zip(circle, circle[1:])]
            detail = "; ".join(f"{e.path}:{e.line} {e.source} -> {e.target}" for e in steps)
            others = sorted(component - set(circle))
            also = f"; also tangled in it: {', '.join(others)}" if others else ""
            found.append(f"circle between {kind}: {' -> '.join(circle)} ({detail}{also})")
    return found


def test_no_import_goes_up_a_layer():
    modules, edges = scan(SRC)
    found = violations(modules, edges)
    assert not found, "\n".join(["imports against the layering (README, Development):", *found])


def test_no_import_circles():
    _, edges = scan(SRC)
    found = circles(edges)
    assert not found, "\n".join(["import circles:", *found])


def test_scan_sees_the_real_tree():
    # Guards the two tests above against passing because nothing was scanned.
    modules, edges = scan(SRC)
    assert len(modules) > 50 and len(edges) > 200
    assert {"journeymap.errors", "journeymap.workspace", "journeymap.cli.main"} <= modules
    assert ("journeymap.workspace", "journeymap.ingest.store") in {(e.source, e.target) for e in edges}


# -- the checker itself, on a planted tree -----------------------------------------------------------

PLANTED = {
    "__init__.py": "from journeymap.cli.main import app\n",  # the package root: excluded
    "errors.py": "",
    "events/__init__.py": "",
    "events/schema.py": "import journeymap\n",  # the root pulls in every layer
    "ingest/__init__.py": "",
    "ingest/store.py": """\
        from typing import TYPE_CHECKING

        from journeymap.errors import JourneymapError

        if TYPE_CHECKING:
            from journeymap.workspace import Workspace  # never runs: not an edge
        else:
            from journeymap.events import schema


        def open_store():
            from journeymap.journey.load import load, parse  # lazy and upward: still an edge
        """,
    "journey/__init__.py": "",
    "journey/load.py": "from journeymap.ingest import store\n",  # closes a circle with ingest/store.py
    "engine/__init__.py": "",
    "engine/a.py": "from . import b\n",
    "engine/b.py": "from .a import thing\n",  # a circle within one layer
    "workspace.py": "import importlib\n\nimportlib.import_module('journeymap.state.marks')\n",
    "demo/__init__.py": "from journeymap.ingest.store import open_store\n",  # demo is self-contained
    "extras/tool.py": "from journeymap.errors import JourneymapError\n",  # a package with no rank
    "cli/__init__.py": "",
    "cli/main.py": "from journeymap.demo import simulate\nfrom journeymap.workspace import Workspace\n",
}


@pytest.fixture()
def planted(tmp_path: Path) -> tuple[set[str], list[Edge]]:
    for name, text in PLANTED.items():
        path = tmp_path / ROOT / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return scan(tmp_path)


def test_checker_reads_every_kind_of_import(planted):
    _, edges = planted
    pairs = {(e.source, e.target) for e in edges}
    assert ("journeymap.ingest.store", "journeymap.workspace") not in pairs  # TYPE_CHECKING
    assert ("journeymap.ingest.store", "journeymap.events.schema") in pairs  # its else branch runs
    assert ("journeymap.engine.b", "journeymap.engine.a") in pairs  # relative, a name in the module
    assert ("journeymap.workspace", "journeymap.state") in pairs  # import_module, a layer with no files yet
    assert ("journeymap.cli.main", "journeymap.demo") in pairs
    assert sum(e.source == "journeymap.ingest.store" and e.target == "journeymap.journey.load" for e in edges) == 1


def test_checker_catches_planted_upward_imports(planted):
    assert sorted(violations(*planted)) == [
        "journeymap.extras.tool: layer 'extras' is not in LAYERS",
        "journeymap/demo/__init__.py:1: journeymap.demo imports journeymap.ingest.store: "
        "layer 'demo' may import only ['errors'], not 'ingest'",
        "journeymap/events/schema.py:1: journeymap.events.schema imports journeymap: "
        "the package root imports the top layers; import the module itself",
        "journeymap/ingest/store.py:12: journeymap.ingest.store imports journeymap.journey.load: "
        "layer 'ingest' (rank 2) imports higher layer 'journey' (rank 4)",
    ]


def test_checker_catches_planted_circles(planted):
    _, edges = planted
    assert sorted(circles(edges)) == [
        "circle between layers: ingest -> journey -> ingest (journeymap/ingest/store.py:12 journeymap.ingest.store -> "
        "journeymap.journey.load; journeymap/journey/load.py:1 journeymap.journey.load -> journeymap.ingest.store)",
        "circle between modules: journeymap.engine.a -> journeymap.engine.b -> journeymap.engine.a "
        "(journeymap/engine/a.py:1 journeymap.engine.a -> journeymap.engine.b; "
        "journeymap/engine/b.py:1 journeymap.engine.b -> journeymap.engine.a)",
        "circle between modules: journeymap.ingest.store -> journeymap.journey.load -> journeymap.ingest.store "
        "(journeymap/ingest/store.py:12 journeymap.ingest.store -> journeymap.journey.load; "
        "journeymap/journey/load.py:1 journeymap.journey.load -> journeymap.ingest.store)",
    ]


def test_circle_names_every_module_tangled_in_it():
    edges = [Edge(f"journeymap.engine.{a}", f"journeymap.engine.{b}", Path("x.py"), 1)
             for a, b in [("a", "b"), ("b", "a"), ("b", "c"), ("c", "a")]]
    (found,) = circles(edges)
    assert found.startswith("circle between modules: journeymap.engine.a -> journeymap.engine.b -> journeymap.engine.a")
    assert found.endswith("also tangled in it: journeymap.engine.c)")
