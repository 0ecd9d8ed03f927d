"""The architecture holds: each layer imports only from the layers below it, and no two
modules import each other, even for typing only (docs/architecture.md, section 1)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Source folder -> package, lowest layer first (vaccel's own subpackages are core too).
LAYERS = [
    ("vaccel", "vaccel"),
    ("protocol", "vaccel.protocol"),
    ("transport", "vaccel.transport"),
    ("client", "vaccel.client"),
    ("plugins", "vaccel.plugins"),
    ("server", "vaccel.server"),
    ("cli", "vaccel.cli"),
]
RANK = {package: i for i, (_, package) in enumerate(LAYERS)}
#: Which of our layers each layer may import besides itself: the "may import" column of
#: the layer table in docs/architecture.md. The core `vaccel` package and `protocol` are
#: the bottom layer, side by side (neither imports the other); every layer above may
#: import the core, which holds what they all use (errors, buffers, compat, config).
ALLOWED = {
    "vaccel": set(),
    "vaccel.protocol": set(),
    "vaccel.transport": {"vaccel", "vaccel.protocol"},
    "vaccel.client": {"vaccel", "vaccel.protocol", "vaccel.transport"},
    "vaccel.plugins": {"vaccel"},
    "vaccel.server": {"vaccel", "vaccel.protocol", "vaccel.transport"},
    # Not plugins: the commands reach them through the runtime's registry, as applications
    # do; not transport: they connect through the client (the load generator speaks the
    # protocol over its own sockets).
    "vaccel.cli": {"vaccel", "vaccel.protocol", "vaccel.client", "vaccel.server"},
}
#: Packages within a layer allowed more than their layer: the rpc plugin is a client.
EXTRA = {"vaccel.plugins.rpc": {"vaccel.client", "vaccel.protocol"}}
ENTRY_POINTS = {"vaccel.__main__"}  # `python -m vaccel` runs the cli by design
#: What else than the standard library the bottom layer imports (the table says so).
THIRD_PARTY = {
    "vaccel.protocol": {"msgpack", "numpy"},
    # compat: Python 3.10's backports; torch only in vaccel.ops.torch, when installed.
    "vaccel": {"numpy", "async_timeout", "tomli", "torch"},
}
#: The standard library of every Python we run on (tomllib is 3.11's; compat tries it first).
STDLIB = sys.stdlib_module_names | {"tomllib"}
#: The protocol layer is sans-IO.
NO_IO = {"asyncio", "socket", "ssl", "selectors"}


def modules() -> dict[str, Path]:
    """Every module of the package, by dotted name."""
    found: dict[str, Path] = {}
    for folder, package in LAYERS:
        base = ROOT / folder
        for path in base.rglob("*.py"):
            rel = path.relative_to(base).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            if folder == "vaccel" and parts and parts[0] in ("protocol",):
                continue
            found[".".join([package, *parts])] = path
    return found


def layer_of(module: str) -> str:
    """The layer a module belongs to (its longest matching package)."""
    best = "vaccel"
    for _, package in LAYERS:
        if (module == package or module.startswith(package + ".")) and len(package) > len(best):
            best = package
    return best


def imports(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Our modules that `module` imports anywhere (top level, functions, TYPE_CHECKING)."""
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import mod` imports the module; `from pkg import name`, the package.
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names
            ]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != module:
                out.add(target)
    return out


def graph() -> dict[str, set[str]]:
    known = modules()
    return {m: imports(m, p, known) for m, p in known.items()}


def allowed(module: str) -> set[str]:
    """The layers `module` may import besides its own."""
    extra = [v for k, v in EXTRA.items() if module == k or module.startswith(k + ".")]
    return ALLOWED[layer_of(module)].union(*extra)


def test_each_layer_imports_only_from_below() -> None:
    wrong = []
    for module, deps in graph().items():
        if module in ENTRY_POINTS:
            continue
        mine = layer_of(module)
        for dep in deps:
            theirs = layer_of(dep)
            if theirs != mine and theirs not in allowed(module):
                wrong.append(f"{module} ({mine}) imports {dep} ({theirs})")
    assert not wrong, "\n".join(sorted(wrong))


def test_every_allowance_is_used() -> None:
    """The table allows nothing the code does not do: when the last import of an allowed
    layer goes, the allowance goes from here and from docs/architecture.md."""
    used: set[tuple[str, str]] = set()
    for module, deps in graph().items():
        if module in ENTRY_POINTS:
            continue
        owners = [k for k in EXTRA if module == k or module.startswith(k + ".")]
        for dep in deps:
            theirs = layer_of(dep)
            if theirs == layer_of(module):
                continue
            special = [k for k in owners if theirs in EXTRA[k]]
            used.add((special[0] if special else layer_of(module), theirs))
    declared = {(a, b) for a, bs in ALLOWED.items() for b in bs}
    declared |= {(a, b) for a, bs in EXTRA.items() for b in bs}
    assert sorted(declared - used) == []


def external_imports(path: Path) -> set[str]:
    """Top-level names of what a module imports from outside the package."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.split(".")[0])
    return found - {"vaccel", "__future__"}


def test_the_bottom_layer_imports_what_the_table_says() -> None:
    wrong = []
    for module, path in modules().items():
        layer = layer_of(module)
        if layer not in THIRD_PARTY:
            continue
        names = external_imports(path)
        others = {n for n in names - STDLIB if n not in THIRD_PARTY[layer]}
        if layer == "vaccel" and "torch" in names and not module.startswith("vaccel.ops.torch"):
            others.add("torch")
        if layer == "vaccel.protocol":
            others |= names & NO_IO
        if others:
            wrong.append(f"{module} imports {sorted(others)}")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_cycles() -> None:
    edges = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    assert not cycles, cycles


def test_the_graph_is_not_empty() -> None:
    edges = graph()
    assert "vaccel.session" in edges and "vaccel.runtime" in edges["vaccel.session"]
    assert (
        "vaccel.server.handler" in edges
        and "vaccel.protocol.connection" in edges["vaccel.server.handler"]
    )
