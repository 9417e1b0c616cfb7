"""Which wheels the folder ships: pip's own resolver for the target interpreter, torch and torchvision pinned to
the image's, then ``pip download --no-deps`` of everything reachable from deepfake_kernel without passing
through them."""
from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .common import (DEFAULT_PLATFORM, DEFAULT_PYTHON, NEVER_SHIP, PACKAGE, PREINSTALLED, BuildError, canonical,
                     packaging_classes, run_command)

_LEGACY_MANYLINUX = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}

@dataclass
class Target:
    """The interpreter the wheels are for: ``python_version`` like ``3.11``, pip ``--platform`` tags."""

    python_version: str = DEFAULT_PYTHON
    platforms: list[str] = field(default_factory=lambda: [DEFAULT_PLATFORM])

    def pip_options(self) -> list[str]:
        options = ["--only-binary=:all:", "--implementation", "cp", "--python-version", self.python_version]
        for platform in expand_platforms(self.platforms):
            options += ["--platform", platform]
        return options

    @property
    def machine(self) -> str:
        for arch in ("x86_64", "aarch64"):
            if any(p.endswith(arch) for p in self.platforms):
                return arch
        return "x86_64"

    def marker_environment(self) -> dict[str, str]:
        """PEP 508 marker values on the target (pip's report gives this interpreter's, not the target's)."""
        return {"implementation_name": "cpython", "platform_python_implementation": "CPython",
                "python_version": self.python_version, "python_full_version": f"{self.python_version}.0",
                "implementation_version": f"{self.python_version}.0", "os_name": "posix",
                "sys_platform": "linux", "platform_system": "Linux", "platform_machine": self.machine}

    def matches_this_interpreter(self) -> bool:
        import sysconfig

        here = sysconfig.get_platform().replace("-", "_")  # linux_x86_64
        return (self.python_version == f"{sys.version_info.major}.{sys.version_info.minor}"
                and sys.platform == "linux" and here.endswith(self.machine))


def expand_platforms(platforms: list[str]) -> list[str]:
    """``manylinux_2_35_x86_64`` → every older glibc tag and the legacy aliases, as a pip on that host accepts
    (``pip download --platform`` takes tags literally)."""
    out: list[str] = []
    for platform in platforms:
        match = re.fullmatch(r"manylinux_2_(\d+)_(\w+)", platform)
        if not match:
            out.append(platform)
            continue
        glibc, arch = int(match.group(1)), match.group(2)
        for minor in range(glibc, 4, -1):
            out.append(f"manylinux_2_{minor}_{arch}")
            legacy = _LEGACY_MANYLINUX.get(minor) if arch in ("x86_64", "i686") or minor == 17 else None
            if legacy:
                out.append(f"{legacy}_{arch}")
    return list(dict.fromkeys(out))


def build_package_wheel(source: Path, dest: Path) -> Path:
    """``deepfake_kernel-<version>-py3-none-any.whl`` from a copy of the checkout (no build/ left in the tree)."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dfk-src-") as tmp:
        copy = Path(tmp) / "src"
        copy.mkdir()
        for name in ("setup.py", "setup.cfg", "pyproject.toml", "README.md", "MANIFEST.in"):
            if (source / name).is_file():
                shutil.copy2(source / name, copy / name)
        shutil.copytree(source / PACKAGE, copy / PACKAGE, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        run_command([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dest),
              str(copy)], "build the deepfake_kernel wheel")
    wheels = sorted(dest.glob(f"{PACKAGE}-*.whl"))
    if len(wheels) != 1:
        raise BuildError(f"expected one {PACKAGE} wheel in {dest}, found {[w.name for w in wheels]}")
    return wheels[0]


def installed_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name).split("+")[0]
    except metadata.PackageNotFoundError:
        return None


def constraint_lines(source: Path | None, constraints: str | Path | None, pins: dict[str, str]) -> list[str]:
    """requirements.txt (or ``constraints``) without its torch/torchvision lines, plus the image's torch pins."""
    InvalidRequirement, Requirement = packaging_classes()

    lines = []
    path = Path(constraints) if constraints else (source / "requirements.txt" if source else None)
    if path is not None and path.is_file():
        for raw in path.read_text().splitlines():
            line = raw.split("#", 1)[0].strip()
            if not line or line.startswith("-"):
                continue
            try:
                req = Requirement(line)
            except InvalidRequirement:
                continue
            if canonical(req.name) not in pins:
                lines.append(line)
    elif constraints:
        raise BuildError(f"constraints file {constraints} does not exist")
    return lines + [f"{name}=={version}" for name, version in pins.items() if version]


def resolve(package_wheel: Path, target: Target, constraints: list[str], work: Path) -> dict:
    """Run pip's resolver for the target; return its ``--report`` (every package, torch's stack included)."""
    cons = work / "constraints.txt"
    cons.write_text("\n".join(constraints) + "\n")
    report = work / "report.json"
    try:
        run_command([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--target",
              str(work / "never-written"), "--report", str(report), "-q", *target.pip_options(), "-c", str(cons),
              str(package_wheel)], f"resolve the dependencies for Python {target.python_version} "
                                   f"{target.platforms[0]}")
    except BuildError as exc:
        pinned = ", ".join(line for line in constraints if line.startswith(("torch==", "torchvision==")))
        raise BuildError(f"{exc}\nThe resolver assumed the image has {pinned}: pass --torch-version and "
                         f"--torchvision-version with versions the package index has for the target.") from None
    return json.loads(report.read_text())


def shipped_packages(report: dict, target: Target, preinstalled=PREINSTALLED) -> dict[str, str]:
    """``{name: version}`` reachable from deepfake_kernel without passing through a preinstalled package.

    torch's own requirements (nvidia-*, triton, sympy, …) are left out unless something else needs them.
    """
    _, Requirement = packaging_classes()

    env = target.marker_environment()
    items = {canonical(i["metadata"]["name"]): i for i in report["install"]}
    stop = {canonical(n) for n in preinstalled}
    keep: dict[str, str] = {}
    todo: list[tuple[str, frozenset]] = [(canonical(PACKAGE), frozenset())]
    seen: set[tuple[str, frozenset]] = set()
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen or name in stop or name not in items:
            continue
        seen.add((name, extras))
        meta = items[name]["metadata"]
        keep[name] = meta["version"]
        for spec in meta.get("requires_dist") or []:
            req = Requirement(spec)
            if req.marker is not None and not any(req.marker.evaluate({**env, "extra": e})
                                                  for e in ("", *sorted(extras))):
                continue
            todo.append((canonical(req.name), frozenset(req.extras)))
    keep.pop(canonical(PACKAGE), None)
    bad = sorted(n for n in keep if NEVER_SHIP.match(n))
    if bad:
        raise BuildError(f"{bad} would be shipped: something other than torch requires them. Kaggle's images "
                         f"have their own; find the requirement (pip's report) and relax it.")
    return dict(sorted(keep.items()))


def download_wheels(packages: dict[str, str], target: Target, dest: Path) -> list[Path]:
    """``pip download --no-deps --only-binary=:all:`` of the exact versions the resolver chose."""
    pins = [f"{name}=={version}" for name, version in packages.items()]
    run_command([sys.executable, "-m", "pip", "download", "--no-deps", "-q", *target.pip_options(), "--dest", str(dest),
          *pins], f"download {len(pins)} wheels")
    wheels = sorted(dest.glob("*.whl"))
    have = {canonical(w.name.split("-")[0]) for w in wheels}
    missing = sorted(set(packages) - have)
    if missing:
        raise BuildError(f"pip download did not produce wheels for {missing}")
    shipped_by_mistake = sorted(n for n in have if NEVER_SHIP.match(n))
    if shipped_by_mistake:
        raise BuildError(f"{shipped_by_mistake} landed in {dest}; they must come from the Kaggle image")
    return wheels
