"""Every third-party module the package imports, at module level or inside a function, is declared in setup.py.

``evaluate`` imported matplotlib inside a function and nothing declared it: importing the modules did not catch it,
a fresh install failed after minutes of prediction. This test reads the source instead of importing it.
"""
import ast
import re
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "deepfake_kernel"
# extras that a user installs for a feature of the package; "test" is not one of them
RUNTIME_EXTRAS_EXCLUDED = {"test"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    return canonical(re.split(r"[\s<>=!~;\[]", requirement.strip(), maxsplit=1)[0])


def declared_requirements() -> tuple[set[str], set[str]]:
    """(install_requires, runtime extras) of setup.py, read from its ``setup(...)`` call."""
    tree = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    call = next(node for node in ast.walk(tree) if isinstance(node, ast.Call)
                and getattr(node.func, "id", "") == "setup")
    keywords = {k.arg: k.value for k in call.keywords}
    required = {requirement_name(r) for r in ast.literal_eval(keywords["install_requires"])}
    extras = ast.literal_eval(keywords.get("extras_require", ast.Constant({})))
    optional = {requirement_name(r) for name, reqs in extras.items() if name not in RUNTIME_EXTRAS_EXCLUDED
                for r in reqs}
    return required, optional


def imported_modules(path: Path) -> dict[str, int]:
    """Top-level names of the absolute imports in ``path`` (anywhere in the file), with a line of each."""
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.setdefault(alias.name.split(".")[0], node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.setdefault(node.module.split(".")[0], node.lineno)
    return found


def test_the_scanner_sees_imports_inside_functions(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("import os\nfrom . import x\n\ndef f():\n    import matplotlib.pyplot as plt\n"
                      "    from sklearn.svm import LinearSVC\n")
    assert set(imported_modules(source)) == {"os", "matplotlib", "sklearn"}


def distributions_of(module: str, known: dict[str, list[str]]) -> set[str]:
    """The distributions that install top-level ``module``: ``top_level.txt`` first, else the RECORD files
    (dlib-bin names only ``_dlib_pybind11`` in its top_level.txt, yet installs ``dlib/``)."""
    if module in known:
        return set(known[module])
    import importlib.util

    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin or spec.origin in ("built-in", "frozen"):
        return set()
    site = Path(spec.origin).resolve().parent
    site = site.parent if Path(spec.origin).name == "__init__.py" else site
    owners = set()
    for record in site.glob("*.dist-info/RECORD"):
        text = record.read_text(encoding="utf-8", errors="replace")
        if re.search(rf"^{re.escape(module)}(/|\.|,)", text, re.M):
            owners.add(metadata.Distribution.at(record.parent).metadata["Name"])
    return owners


def test_every_third_party_import_of_the_package_is_declared_in_setup_py():
    required, optional = declared_requirements()
    known = metadata.packages_distributions()
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for module, line in imported_modules(path).items():
            if module in stdlib or module == PACKAGE.name:
                continue
            owners = {canonical(d) for d in distributions_of(module, known)}
            where = f"{path.relative_to(ROOT)}:{line} imports {module}"
            if not owners:
                missing.append(f"{where}, which no installed distribution provides")
            elif not owners & (required | optional):
                missing.append(f"{where} (from {', '.join(sorted(owners))}), not in setup.py's install_requires "
                               f"or a runtime extra")
    assert not missing, "undeclared dependencies:\n" + "\n".join(missing)


def test_requirements_txt_pins_every_declared_requirement():
    """The exact pins behind the README's numbers cover everything setup.py asks for."""
    required, optional = declared_requirements()
    pinned = {requirement_name(line) for line in (ROOT / "requirements.txt").read_text().splitlines()
              if line.strip() and not line.lstrip().startswith("#")}
    assert not (required | optional) - pinned, f"not pinned in requirements.txt: {(required | optional) - pinned}"
