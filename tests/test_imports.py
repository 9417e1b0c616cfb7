"""The package's import graph: no cycle (imports inside functions count), and no module imports a command line.

A command-line module is one with an ``if __name__ == "__main__":`` block; everything else is a library module.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "deepfake_kernel"
NAME = PACKAGE.name


def module_name(path: Path) -> str:
    parts = (NAME,) + path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Package modules that ``path`` imports, anywhere in it (top level, functions, ``TYPE_CHECKING`` blocks)."""
    this = module_name(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == NAME}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                base = ".".join(base + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base.split(".")[0] != NAME:
                continue
            for alias in node.names:  # "from . import x" names a module when x is one
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in known else base)
    return {m for m in found if m in known and m != this}


def import_graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports_of(path, set(found)) for name, path in found.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(node: str) -> None:
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
            if len(component) > 1:
                out.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def cli_modules() -> set[str]:
    out = set()
    for name, path in modules().items():
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
                    and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__"):
                out.add(name)
    return out


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_imports_inside_functions():
    graph = import_graph()
    # training.data imports the cropper inside a function only
    assert "deepfake_kernel.pipeline.faces" in graph["deepfake_kernel.training.data"]
    assert "deepfake_kernel.detectors.registry" in graph["deepfake_kernel.detectors.zoo"]


def test_no_import_cycle_in_the_package():
    assert cycles(import_graph()) == []


def test_the_registry_is_a_leaf():
    graph = import_graph()
    assert graph["deepfake_kernel.detectors.registry"] == set()
    detectors = {m for m in graph if m.startswith("deepfake_kernel.detectors")}
    for name in detectors:
        assert not {m for m in graph[name] if m.startswith(("deepfake_kernel.training", "deepfake_kernel.pipeline"))}, \
            f"{name} reaches outside the detectors: {sorted(graph[name])}"


def test_no_module_imports_a_command_line_module():
    clis = cli_modules()
    assert {"deepfake_kernel.predict", "deepfake_kernel.train", "deepfake_kernel.evaluate", "deepfake_kernel.bench",
            "deepfake_kernel.kaggle"} <= clis
    offenders = {name: sorted(deps & clis) for name, deps in import_graph().items() if deps & clis}
    assert offenders == {}


DOCS = PACKAGE.parent / "docs"


def top_level_names(path: Path) -> set[str]:
    """Names a module defines or imports at its top level (what ``from module import name`` can take)."""
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def broken_package_imports(script: Path) -> list[str]:
    """``from deepfake_kernel.x import y`` lines of ``script`` whose module or name the package does not have."""
    known = modules()
    broken = []
    for node in ast.walk(ast.parse(script.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").split(".")[0] == NAME:
            path = known.get(node.module)
            missing = ([a.name for a in node.names] if path is None else
                       [a.name for a in node.names if a.name not in top_level_names(path)
                        and f"{node.module}.{a.name}" not in known])
            broken += [f"{script.name}:{node.lineno} {node.module}.{name}" for name in missing]
    return broken


def test_the_import_checker_catches_a_moved_name(tmp_path):
    script = tmp_path / "old.py"
    script.write_text("from deepfake_kernel.weights import read_manifest\n"
                      "from deepfake_kernel.training.engine import video_metrics, no_such_thing\n")
    assert broken_package_imports(script) == ["old.py:1 deepfake_kernel.weights.read_manifest",
                                              "old.py:2 deepfake_kernel.training.engine.no_such_thing"]


def test_the_scripts_in_docs_import_what_the_package_has():
    scripts = sorted(DOCS.rglob("*.py"))
    assert scripts, "docs/ holds the scripts behind recorded numbers"
    assert [line for s in scripts for line in broken_package_imports(s)] == []
