"""The layers run one way (STYLE.md): record contract → store → drift (pure) → policy (pure) →
actions → services → scheduler / server / CLI. Drift run and reference persistence lives in
``monitor.persist`` (beside the actions), so the drift engine stays pure (tested below). No
module imports a module of a higher layer — lazy imports inside functions included, since those
are how a cycle hides — and the module graph has no cycle.

The check reads the source with ``ast``; nothing is imported. Imports under ``if TYPE_CHECKING:``
are left out: they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("monitor", "collectors", "reports")

# (layer number, module-name prefixes); the longest matching prefix decides a module's layer.
LAYERS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (0, ("monitor", "monitor.errors")),
    (1, ("collectors.schema", "collectors.codec", "collectors.errors", "collectors.encoding",
         "collectors.spool", "collectors.secrets", "collectors.loops")),
    (2, ("monitor.settings", "monitor.queries", "monitor.store", "monitor.health", "monitor.recordfile",
         "monitor.datasets", "monitor.metrics", "monitor.lake.layout")),
    (3, ("collectors", "collectors.collector", "collectors.sinks", "collectors.spool",
         "collectors.instrument", "collectors.pipeline")),
    (4, ("monitor.drift",)),
    (5, ("monitor.policy", "monitor.windowmetrics")),
    (6, ("monitor.actions", "monitor.webhook", "monitor.outbox", "monitor.persist")),
    (7, ("monitor.registry", "monitor.retrain", "monitor.review", "monitor.enrich", "monitor.opshealth",
         "monitor.jobs", "reports", "monitor.lake",
         "monitor.cloudevents", "monitor.client", "monitor.services", "monitor.windowcheck",
         "monitor.discovery", "monitor.httpserver")),
    (8, ("monitor.scheduler", "monitor.server", "monitor.api", "monitor.cli", "monitor.demo",
         "monitor.operations")),
)


def modules() -> dict[str, Path]:
    found = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def layer_of(name: str) -> int:
    best, layer = -1, None
    for number, prefixes in LAYERS:
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best:
                best, layer = len(prefix), number
    assert layer is not None, f"{name} has no layer: add it to LAYERS"
    return layer


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node but those under ``if TYPE_CHECKING:`` (type-only imports never run)."""
    found: list[ast.AST] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            stack.extend(node.orelse)
            continue
        found.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return found


def imported(path: Path, name: str, known: dict[str, Path]) -> set[str]:
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imported(path, name, known) for name, path in known.items()}


def test_every_module_has_a_layer() -> None:
    for name in modules():
        layer_of(name)


def test_no_import_runs_up_the_layers() -> None:
    upward = sorted(f"{a} (layer {layer_of(a)}) imports {b} (layer {layer_of(b)})"
                    for a, deps in graph().items() for b in deps
                    if layer_of(b) > layer_of(a) and not b.startswith(a + "."))
    assert upward == []


def test_the_module_graph_has_no_cycle() -> None:
    g = graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(g[node]):
            if dep.startswith(node + "."):  # a package re-exporting its own submodules
                continue
            if state.get(dep) == 1:
                cycles.append([*stack[stack.index(dep):], dep])
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[node] = 2

    for node in sorted(g):
        if node not in state:
            visit(node, [node])
    assert cycles == []


#: What a pure layer may import from our own packages: the errors and its own modules.
PURE = {"monitor.drift": ("monitor.errors", "monitor.drift")}
#: Third-party modules that do I/O or serve: a pure layer imports none of them (lazily neither).
IO_MODULES = ("duckdb", "fastapi", "httpx", "evidently", "apscheduler", "starlette", "uvicorn", "requests")


def _third_party(path: Path) -> set[str]:
    out: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            out.add(node.module.split(".")[0])
    return out


def test_drift_is_pure() -> None:
    """``monitor.drift`` imports no store, no record file reader, no server: only numerical code."""
    known = modules()
    bad = []
    for pkg, allowed in PURE.items():
        for name, path in known.items():
            if name != pkg and not name.startswith(pkg + "."):
                continue
            for dep in sorted(imported(path, name, known)):
                if not any(dep == a or dep.startswith(a + ".") for a in allowed):
                    bad.append(f"{name} imports {dep}")
            bad += [f"{name} imports {m}" for m in sorted(_third_party(path) & set(IO_MODULES))]
    assert bad == []
