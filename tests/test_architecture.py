"""The package tree is the architecture: subpackages by concern, layered, no import cycles.

Layers, lowest first; a module may import from its own subpackage and from
subpackages in lower layers, never from a peer or a higher one:

====  ===========================================================
0     ``krios`` (version), ``krios.errors``
1     ``krios.config``     defaults, scenarios, inventory, paths, times
2     ``krios.orbits``     TLEs, Walker shells, geometry, zones, passes, RTT
      ``krios.results``    SQLite store, statistics, report, plots
3     ``krios.kube``       API client, informer, leader election, names, clock
4     ``krios.control``    policies, handover, scheduler, controller
      ``krios.emulation``  emulator, mapping, netem, client workload
5     ``krios.sim``        the simulator
      ``krios.localcluster`` the local control plane and virtual kubelets
      ``krios.lab``        real node containers
6     ``krios.measure``    pod latency, delay proxy, injection, sweep
7     ``krios.bench``      the ``krios bench`` commands
8     ``krios.cli``        the ``krios`` command line
====  ===========================================================
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "krios"

LAYERS: dict[str, int] = {
    "krios": 0, "errors": 0,
    "config": 1,
    "orbits": 2, "results": 2,
    "kube": 3,
    "control": 4, "emulation": 4,
    "sim": 5, "localcluster": 5, "lab": 5,
    "measure": 6,
    "bench": 7,
    "cli": 8,
    "__main__": 9,
}
TOP_LEVEL_MODULES = {"__init__.py", "__main__.py", "errors.py"}


def _unit(module: str) -> str:
    """The layer unit of a dotted module name: its first component below ``krios``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "krios"


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(SRC.parent).with_suffix("").parts).removesuffix(".__init__")


@functools.cache
def _imports() -> dict[str, set[str]]:
    """Module -> the krios modules it imports (``from pkg import submodule`` counts as the submodule)."""
    paths = sorted(SRC.rglob("*.py"))
    known = {_module_name(p) for p in paths}
    graph: dict[str, set[str]] = {}
    for path in paths:
        module = _module_name(path)
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "krios":
                for a in node.names:
                    sub = f"{node.module}.{a.name}"
                    deps.add(sub if sub in known else node.module)
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.split(".")[0] == "krios"}
        graph[module] = deps
    return graph


def test_top_level_holds_only_subpackages_and_a_handful_of_modules():
    loose = {p.name for p in SRC.glob("*.py")} - TOP_LEVEL_MODULES
    assert not loose, f"modules outside a subpackage: {sorted(loose)}"
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages <= set(LAYERS), f"subpackages without a layer: {sorted(packages - set(LAYERS))}"


def test_nothing_imports_upward_or_sideways():
    bad = []
    for module, deps in _imports().items():
        unit = _unit(module)
        for dep in deps:
            target = _unit(dep)
            if dep in ("krios", "krios.__version__") or target == unit:
                continue
            if LAYERS[target] >= LAYERS[unit]:
                bad.append(f"{module} -> {dep}")
    assert not bad, "imports that go up or sideways:\n" + "\n".join(sorted(bad))


def test_no_import_cycles():
    graph = {m: {d for d in deps if d in _imports()} for m, deps in _imports().items()}
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, stack: list[str]) -> bool:
        state[node] = 1
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                cycle.extend([*stack[stack.index(nxt):], nxt] if nxt in stack else [node, nxt])
                return True
            if state.get(nxt) is None and visit(nxt, [*stack, nxt]):
                return True
        state[node] = 2
        return False

    for module in graph:
        if state.get(module) is None and visit(module, [module]):
            break
    assert not cycle, " -> ".join(cycle)
