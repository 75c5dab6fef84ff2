"""The packages engine, surgeon and polyx import each other without cycles.

A cycle makes the import order matter (a half-initialised module hands out names it has not defined yet) and
ties modules together that should be read, tested and rewritten one at a time. The graph is built from the
source with ``ast``, so nothing is imported: every import statement counts, at module level or inside a
function (a lazy import only hides a cycle), except those under ``if TYPE_CHECKING:``, which never run.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("engine", "surgeon", "polyx")


def _module_files() -> dict[str, Path]:
    """Dotted module name -> source file; a package's name maps to its ``__init__.py`` (its face)."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _is_type_checking_block(node: ast.AST) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST):
    """Every Import/ImportFrom in the tree, at any depth, skipping ``if TYPE_CHECKING:`` bodies."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        if _is_type_checking_block(node):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _imported_modules(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules that ``module`` imports. ``from pkg import name`` imports the submodule pkg.name when
    there is one, else the face pkg; importing a package means importing its face only (not its parents)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    targets = set()
    for node in _import_nodes(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
            continue
        if node.level:
            base_parts = package.split(".")
            base_parts = base_parts[: len(base_parts) - (node.level - 1)]
            base = ".".join(base_parts + ([node.module] if node.module else []))
        else:
            base = node.module
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            targets.add(submodule if submodule in modules else base)
    return {target for target in targets if target in modules and target != module}


def import_graph() -> dict[str, set[str]]:
    modules = _module_files()
    return {module: _imported_modules(module, path, modules) for module, path in modules.items()}


def strongly_connected_components(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (the graph is a few hundred modules deep at most, but recursion limits
    should not be a concern of a test)."""
    index: dict[str, int] = {}
    lowlink: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = lowlink[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = lowlink[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    lowlink[node] = min(lowlink[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                lowlink[parent] = min(lowlink[parent], lowlink[node])
            if lowlink[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def test_graph_sees_lazy_and_relative_imports():
    """Guards the parser itself: a known relative, function-level and ``from . import submodule`` edge."""
    graph = import_graph()
    assert "engine.tactics.builtin" in graph["engine.tactics.catalog"]
    assert "engine.enums" in graph["engine.tactics.registry"]
    assert "engine.ops.base" in graph["engine.tactics.reference"]  # imported inside a method
    assert "engine.builder" in graph["engine"]


def test_no_import_cycles():
    graph = import_graph()
    cycles = [component for component in strongly_connected_components(graph) if len(component) > 1]
    details = "\n".join(
        "  " + ", ".join(component) + "\n" + "\n".join(
            f"    {module} -> {', '.join(sorted(graph[module] & set(component)))}" for module in component
        )
        for component in cycles
    )
    assert not cycles, f"import cycles (strongly connected modules, with the edges inside each):\n{details}"


def test_no_module_imports_a_face_of_its_own_package():
    """A face (``__init__``) imports its package's modules to re-export them, so a module importing the face of
    a package it lives in (``from .. import __version__``) closes a cycle as soon as the face imports it."""
    graph = import_graph()
    offenders = [f"{module} -> {target}" for module, targets in sorted(graph.items()) for target in sorted(targets)
                 if module.startswith(target + ".")]
    assert not offenders, "modules importing their own package's face:\n" + "\n".join(offenders)


def test_production_modules_do_not_import_the_conformance_harness():
    """engine.conformance drives the builder and the runtime together, as a user would; the engine itself (and
    the toolkit) must not depend on it."""
    graph = import_graph()
    offenders = [f"{module} -> {target}" for module, targets in sorted(graph.items()) for target in sorted(targets)
                 if target.startswith("engine.conformance") and not module.startswith("engine.conformance")]
    assert not offenders, "\n".join(offenders)
