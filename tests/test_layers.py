"""The house's import graph: layers in the order a sample travels, no arrow up, no circle, no tool in the runtime.

Read from the source (every ``import``, also those inside functions), so a lazy import cannot hide an arrow.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("realtime", "models", "export")

#: Lower layers may not import higher ones. The package facade ``realtime/__init__`` re-exports the API.
LAYERS: list[tuple[str, ...]] = [
    # ground floor: definitions, errors, safe file writes
    ("realtime.config", "realtime.errors", "realtime.paths", "realtime.fileio", "realtime.jitcache"),
    ("realtime.dsp",),            # ring buffers, windows, STFT, features, noise, block kernels
    ("realtime.engine",),         # engine, model loading, contract, parameters, statistics, watchdog
    ("realtime.io",),             # sounddevice stream, hosts, offline files, CPU wake
    ("realtime.api", "realtime"),  # Effect / Chain / live (and the package facade that re-exports them)
    ("realtime.gui",),            # the panel
    ("models",),                  # VAE, prior, data, training, metrics (torch lives here)
    ("export",),                  # torch -> ONNX, quantisation, the train-then-export pipeline
    ("realtime.tools",),          # bench, soak, baselines, microbench, the JACK test server
    ("realtime.cli",),            # the front door: parses, calls, prints
]
RUNTIME = ("realtime.config", "realtime.errors", "realtime.paths", "realtime.fileio", "realtime.jitcache",
           "realtime.dsp", "realtime.engine",
           "realtime.io", "realtime.api", "realtime.gui")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> int:
    best, best_len = -1, -1
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best_len:
                best, best_len = i, len(p)
    assert best >= 0, f"{module} belongs to no layer: add it to LAYERS"
    return best


def imports(path: Path, top_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    nodes = tree.body if top_level_only else ast.walk(tree)
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # ``from realtime.engine import params`` names a module: count it as that module.
            found |= {f"{node.module}.{a.name}" for a in node.names
                      if (ROOT / node.module.replace(".", "/") / f"{a.name}.py").exists()}
    return {m for m in found if m.split(".")[0] in PACKAGES}


def sources() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def test_every_module_has_a_layer():
    for mod in sources():
        layer_of(mod)


def test_no_import_points_up():
    wrong = []
    for mod, path in sources().items():
        for target in imports(path):
            if target == "realtime":  # the package itself (``__version__``): imported with any submodule anyway
                continue
            if layer_of(target) > layer_of(mod):
                wrong.append(f"{mod} -> {target}")
    assert not wrong, "imports from a lower layer to a higher one:\n" + "\n".join(sorted(wrong))


def test_runtime_never_imports_a_tool():
    wrong = [f"{mod} -> {t}" for mod, path in sources().items() if mod.startswith(RUNTIME)
             for t in imports(path) if t.startswith(("realtime.tools", "realtime.cli", "models", "export"))]
    assert not wrong, wrong


def test_models_never_import_export():
    wrong = [f"{mod} -> {t}" for mod, path in sources().items() if mod.startswith("models")
             for t in imports(path) if t.startswith("export")]
    assert not wrong, wrong


def test_no_import_cycle():
    graph = {mod: {t for t in imports(path, top_level_only=True) if t in sources() and t != mod}
             for mod, path in sources().items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(trail[trail.index(nxt):] + [node, nxt]
                                                                     if nxt in trail else [node, nxt]))
            if nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = 2

    for mod in graph:
        if mod not in state:
            visit(mod, [])


def test_the_checker_sees_a_wrong_arrow(tmp_path):
    """The checks above can fail: a dsp module importing the engine is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from realtime.engine.engine import Engine\n")
    assert "realtime.engine.engine" in imports(bad)
    assert layer_of("realtime.engine.engine") > layer_of("realtime.dsp.stft")
