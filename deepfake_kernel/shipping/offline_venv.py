"""A virtual environment that sees only what a Kaggle GPU image has: torch, torchvision (and their requirements)
and pip linked in as preinstalled, nothing else of this interpreter, pip's configuration off."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from .common import PREINSTALLED, canonical, packaging_classes, run_command


def _dist_files(dist) -> set[str]:
    """Top-level names (packages, modules, .dist-info, .libs) a distribution put into site-packages."""
    tops = {str(f).split("/")[0] for f in (dist.files or []) if not str(f).startswith("..")}
    if not tops:  # no RECORD: fall back to top_level.txt and the metadata folder
        tops = set((dist.read_text("top_level.txt") or "").split()) | {Path(str(dist._path)).name}
    return {t for t in tops if t != "__pycache__" and not t.endswith(".pth")}


def installed_closure(names, skip=()) -> dict[str, object]:
    """This interpreter's distributions ``names`` and everything they require (extras followed), less ``skip``."""
    from importlib import metadata

    _, Requirement = packaging_classes()

    skip = {canonical(n) for n in skip}
    found: dict[str, object] = {}
    todo = [(n, frozenset()) for n in names]
    seen = set()
    while todo:
        name, extras = todo.pop()
        key = canonical(name)
        if (key, extras) in seen or key in skip:
            continue
        seen.add((key, extras))
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # an optional requirement this interpreter lacks; pip will say if it matters
        found[key] = dist
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in ("", *sorted(extras))):
                todo.append((req.name, frozenset(req.extras)))
    return found


def link_installed(shim: Path, names, skip=()) -> list[str]:
    """Make ``names`` (and their requirements) of this interpreter importable from ``shim`` by symlinks.

    A venv whose site-packages holds a ``.pth`` naming ``shim`` then sees exactly those distributions as
    installed (pip too), like the packages a Kaggle image ships; nothing else of this interpreter leaks in.
    """
    shim.mkdir(parents=True, exist_ok=True)
    linked = []
    for key, dist in sorted(installed_closure(names, skip).items()):
        base = Path(str(dist.locate_file("")))
        for top in sorted(_dist_files(dist)):
            target, link = base / top, shim / top
            if target.exists() and not link.exists() and not link.is_symlink():
                link.symlink_to(target)
        linked.append(key)
    return linked


def isolated_env(venv: Path) -> dict[str, str]:
    """Environment for the check: pip's configuration off (no extra index, no find-links), no PYTHONPATH."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PIP_") and k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONNOUSERSITE="1",
               VIRTUAL_ENV=str(venv), PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    env.setdefault("HF_HUB_OFFLINE", "1")
    return env


def make_offline_venv(venv: Path, wheels: Path) -> Path:
    """A venv without system site-packages; torch, torchvision (+ requirements) and pip linked in as if
    preinstalled, except what the wheels folder itself provides. Returns its site-packages."""
    run_command([sys.executable, "-m", "venv", "--without-pip", str(venv)], "create a clean virtual environment")
    python = venv / "bin" / "python"
    site = Path(run_command([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     "locate site-packages", quiet=True).stdout.strip())
    provided = {canonical(w.name.split("-")[0]) for w in wheels.glob("*.whl")}
    linked = link_installed(venv / "preinstalled", (*PREINSTALLED, "pip"), skip=provided)
    (site / "_kaggle_preinstalled.pth").write_text(str(venv / "preinstalled") + "\n")
    print(f"  preinstalled (linked, as on Kaggle): {', '.join(linked)}", flush=True)
    return site


