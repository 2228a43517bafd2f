"""The package's layout holds: no import cycle, layers import only the layers above them.

Read from the source with ``ast`` (imports under ``TYPE_CHECKING`` included),
so a cycle that only the type checker would follow still fails here. The
layers are DESIGN section 2's table: crypto and store know nothing of
requests; the core (the protocol, without I/O) knows nothing of WSGI; the
shells and adapters only translate.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "sessionshare"

#: Each layer, and the layers it may import (besides itself and the package's leaves).
LEAVES = {"sessionshare.errors"}
LAYERS: dict[str, set[str]] = {
    "sessionshare.crypto": set(),
    "sessionshare.store": set(),
    "sessionshare.core": {"sessionshare.crypto", "sessionshare.store"},
    "sessionshare.wsgi": {"sessionshare.core", "sessionshare.crypto", "sessionshare.store"},
    "sessionshare.asgi": {"sessionshare.core", "sessionshare.crypto", "sessionshare.store"},
    "sessionshare.contrib": {
        "sessionshare.core", "sessionshare.wsgi", "sessionshare.asgi", "sessionshare.store",
    },
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.with_suffix("").relative_to(PACKAGE.parent).parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _imports(name: str) -> set[str]:
    """The package modules ``name`` imports, anywhere in its source."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for candidate in [target, *(f"{target}.{alias.name}" for alias in node.names)]:
                if candidate in MODULES and candidate != name:
                    targets.add(candidate)
        elif isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names if alias.name in MODULES}
    return targets


GRAPH = {name: _imports(name) for name in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_not_even_for_the_type_checker() -> None:
    assert GRAPH["sessionshare.wsgi.idp"], "the import reader found nothing: this proves nothing"
    assert GRAPH["sessionshare.asgi.idp"]
    assert _cycles(GRAPH) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    # The control: a planted cycle is reported.
    planted = {**GRAPH, "sessionshare.core.steps": GRAPH["sessionshare.core.steps"] | {
        "sessionshare.core.side"}}
    assert any("sessionshare.core.steps" in cycle for cycle in _cycles(planted))


def _layer(name: str) -> str | None:
    return next((layer for layer in LAYERS if name == layer or name.startswith(layer + ".")), None)


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_a_layer_imports_only_the_layers_above_it(layer: str) -> None:
    wrong = {
        (name, target)
        for name, targets in GRAPH.items() if _layer(name) == layer
        for target in targets
        if _layer(target) not in (layer, None) and _layer(target) not in LAYERS[layer]
        or (_layer(target) is None and target not in LEAVES and target != "sessionshare")
    }
    assert wrong == set()


def test_only_the_command_line_imports_the_demo() -> None:
    """The demo (``sessionshare/demo/``) is an application of the library, not a part of
    it: nothing of the library imports it but the command that starts it."""
    demo = {name for name in MODULES if name.split(".")[:2] == ["sessionshare", "demo"]}
    assert {"sessionshare.demo", "sessionshare.demo.app", "sessionshare.demo.panel",
            "sessionshare.demo.timeline"} <= demo, sorted(demo)
    importers = {name for name, targets in GRAPH.items() if name not in demo and targets & demo}
    assert importers == {"sessionshare.cli"}


#: Names with a leading underscore that their library documents as public: werkzeug's
#: LocalProxy._get_current_object (the proxied object) and os._exit (how a forked child
#: ends without running the parent's cleanup).
_DOCUMENTED = {"_get_current_object", "_exit"}
_PRIVATE = re.compile(r"(?<![\w.])(?!self\b|cls\b)([a-z_][a-z0-9_]*)\._[a-z][a-z0-9_]*\b")


def test_no_module_reads_another_modules_private_names() -> None:
    """``x._name`` where ``x`` is not ``self``/``cls``: a reach into someone's privates."""
    offenders = []
    root = PACKAGE.parent
    sources = [*PACKAGE.rglob("*.py"), *(root / "tests").rglob("*.py"),
               *(root / "benchmarks").rglob("*.py"), *(root / "examples").rglob("*.py")]
    for path in sources:
        if path.name == "test_layout.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            for match in _PRIVATE.finditer(code):
                if match.group(0).split(".", 1)[1] in _DOCUMENTED:
                    continue
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{number}: {match.group(0)}")
    assert offenders == []
